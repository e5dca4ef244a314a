"""Where sinks may send alerts: URL rules checked at start, an address deny-list at connect time.

The policy has two switches (``sinks_policy:`` in the YAML file):

* ``allow_http`` (default off): plain ``http`` only to loopback hosts unless switched on;
* ``deny_private_networks`` (default off): refuse every destination that is not a public
  address -- private, loopback, link-local (cloud metadata at 169.254.169.254), shared,
  reserved, multicast, and IPv6 forms that embed such an IPv4 address. Host names are checked
  against the addresses they resolve to *when connecting* (:class:`GuardedResolver`,
  :func:`guarded_connection`), so a name that resolved to a public address at start and to an
  internal one later (DNS rebinding) is still refused.

Credentials in a URL (``https://user:pass@host``) are always refused: secrets come from the
environment (``secret_env``, ``url_env``, ``bot_token_env``, ``smtp_password_env``). Messages
never repeat a URL's user info, path or query.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
LOCALHOST_NAMES: Final = frozenset({"localhost", "localhost.", "ip6-localhost"})


class DestinationDenied(OSError):
    """A sink's destination resolved to an address the policy refuses."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_denied_ip(value: str | IpAddress) -> bool:
    """Whether an address is anything but a public unicast address (or unparseable)."""
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0] if isinstance(value, str) else value)
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return is_denied_ip(inner)
    return not ip.is_global or ip.is_multicast


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback IP address."""
    if not host:
        return False
    if host.lower() in LOCALHOST_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ip_literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def host_problem(host: str, *, deny_private_networks: bool) -> str | None:
    """Why ``host`` (a name or an IP literal) is refused before any lookup, or None."""
    if not deny_private_networks:
        return None
    if host.lower() in LOCALHOST_NAMES:
        return f"{host} is loopback, denied by sinks_policy.deny_private_networks"
    literal = _ip_literal(host)
    if literal is not None and is_denied_ip(literal):
        return (f"{host} is not a public address, denied by "
                "sinks_policy.deny_private_networks")
    return None


def url_problem(url: str, *, allow_http: bool, deny_private_networks: bool) -> str | None:
    """Why a sink URL is refused (never quoting its credentials, path or query), or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http(s) URL with a host"
    if parts.username is not None or parts.password is not None:
        return ("credentials in the URL are refused: give secrets through the environment "
                "(secret_env, url_env)")
    if parts.scheme == "http" and not allow_http and not is_loopback_host(host):
        return (f"plain http to {host} is refused (alerts would travel unencrypted): use "
                "https, or set sinks_policy.allow_http: true")
    return host_problem(host, deny_private_networks=deny_private_networks)


def check_addresses(host: str, addresses: list[str]) -> None:
    """Raise :class:`DestinationDenied` if any address ``host`` resolved to is denied."""
    for address in addresses:
        if is_denied_ip(address):
            raise DestinationDenied(f"{host} resolves to {address}, not a public address "
                                    "(sinks_policy.deny_private_networks)")


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses names resolving to denied addresses (at connect time)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        """Resolve with the default resolver, then check every address."""
        results = await self._inner.resolve(host, port, family)
        check_addresses(host, [r["host"] for r in results])
        return results

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()


def guarded_connection(host: str, port: int, timeout: float | None,
                       source_address: Any = None) -> socket.socket:
    """Resolve ``host``, refuse denied addresses, connect to the checked ones (blocking)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    check_addresses(host, [str(info[4][0]) for info in infos])
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error if error is not None else OSError(f"no address found for {host}")
