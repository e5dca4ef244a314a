"""Raw JSON-RPC over web3.py HTTP providers, with batching, failover rotation and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import orjson
from web3.providers.rpc import AsyncHTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from connectors.retry import RetryPolicy
from monitor.errors import ConnectorError, RpcResponseError
from monitor.metrics import RPC_ERRORS, RPC_LATENCY, RPC_REQUESTS

log = logging.getLogger(__name__)

# web3's providers log the full endpoint URI (which may hold an API key): keep them quiet.
QUIET_LOGGER = logging.getLogger("connectors.rpc.web3-provider")
"""Logger given to web3 providers: they would log full endpoint URIs (API keys)."""
QUIET_LOGGER.addFilter(lambda record: False)  # drop every record, whatever handler is attached
QUIET_LOGGER.setLevel(logging.CRITICAL + 1)
QUIET_LOGGER.propagate = False

METHOD_NOT_FOUND_CODES = frozenset({-32601, -32004})
DEFAULT_CHUNK_SIZE = 100

Call = tuple[str, Sequence[Any]]


def redact_url(url: str) -> str:
    """Return ``scheme://host:port`` of ``url``: no path, query or credentials (API keys)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if port is None:
        port = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme, 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


class RpcMethodNotFound(RpcResponseError):
    """The node does not offer a JSON-RPC method (-32601); retrying cannot help."""


class _AttemptFailed(Exception):
    """One request to one endpoint failed; ``detail`` never contains the URL."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _OrjsonHTTPProvider(AsyncHTTPProvider):
    """web3's HTTP provider with answers parsed by orjson instead of ``json``.

    Parsing the node's JSON was the connector's largest CPU cost (a 1 MB batch of full blocks
    and receipts: 12 ms with ``json``, 3.5 ms with orjson). A body that is not JSON (or not
    UTF-8) raises ``orjson.JSONDecodeError``, a ``ValueError``, as before.
    """

    @staticmethod
    def decode_rpc_response(raw_response: bytes) -> RPCResponse:
        """Parse a response body."""
        return cast(RPCResponse, orjson.loads(raw_response))


class _Endpoint:
    """One node URL with its provider, its own keep-alive HTTP session and its metric label."""

    def __init__(self, url: str, label: str, timeout: float) -> None:
        self.label = label
        self.provider = _OrjsonHTTPProvider(
            url,
            request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)},
            exception_retry_configuration=None,  # retries are ours, with failover
        )
        self.provider.logger = QUIET_LOGGER
        self.provider._request_session_manager.logger = QUIET_LOGGER
        self.session: aiohttp.ClientSession | None = None

    async def ready(self) -> AsyncHTTPProvider:
        """Return the provider, attaching a keep-alive session on first use."""
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(
                raise_for_status=True, connector=aiohttp.TCPConnector(limit=32)
            )
            await self.provider.cache_async_session(self.session)
        return self.provider

    async def close(self) -> None:
        """Close the HTTP session."""
        if self.session is not None and not self.session.closed:
            await self.session.close()
        self.session = None


def _describe(calls: Sequence[Call]) -> str:
    """Name the methods of a batch without their parameters, e.g. ``eth_call x12``."""
    counts: dict[str, int] = {}
    for method, _ in calls:
        counts[method] = counts.get(method, 0) + 1
    return ", ".join(m if n == 1 else f"{m} x{n}" for m, n in counts.items())


class RpcPool:
    """JSON-RPC client over several endpoints of one chain: sticky, rotating on failure."""

    def __init__(
        self,
        chain: str,
        urls: list[str],
        timeout: float,
        policy: RetryPolicy,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if not urls:
            raise ConnectorError("no JSON-RPC endpoint configured", chain=chain)
        self.chain = chain
        self.policy = policy
        self.timeout = timeout
        self.chunk_size = max(1, chunk_size)
        labels = [redact_url(u) for u in urls]
        self._endpoints = [
            _Endpoint(url, label if labels.count(label) == 1 else f"{label}#{i}", timeout)
            for i, (url, label) in enumerate(zip(urls, labels, strict=True))
        ]
        self._current = 0

    @property
    def endpoints(self) -> list[str]:
        """Redacted endpoint labels, in rotation order."""
        return [e.label for e in self._endpoints]

    async def close(self) -> None:
        """Close every endpoint's HTTP session."""
        for endpoint in self._endpoints:
            await endpoint.close()

    async def call(self, method: str, params: Sequence[Any], *, nullable: bool = True) -> Any:
        """Call one method; retried on the next endpoint on failure, ConnectorError at the end."""
        return (await self._with_failover([(method, params)], nullable, False, single=True))[0]

    async def batch(
        self,
        calls: Sequence[Call],
        *,
        nullable: bool = True,
        errors_as_none: bool = False,
    ) -> list[Any]:
        """Results of ``calls`` in order, sent as JSON-RPC batches of at most ``chunk_size``.

        Any error object, missing id, non-JSON body, HTTP error or timeout fails the chunk,
        which is retried on the next endpoint. ``nullable=False`` also treats a ``null``
        result as a failure (the node is behind); ``errors_as_none=True`` turns per-call
        error objects into ``None`` instead (for best-effort calls such as token metadata).
        """
        if not calls:
            return []
        chunks = [calls[i:i + self.chunk_size] for i in range(0, len(calls), self.chunk_size)]
        if len(chunks) == 1:
            return await self._with_failover(chunks[0], nullable, errors_as_none)
        tasks = [
            asyncio.ensure_future(self._with_failover(c, nullable, errors_as_none))
            for c in chunks
        ]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [result for part in parts for result in part]

    async def _with_failover(
        self, calls: Sequence[Call], nullable: bool, errors_as_none: bool, single: bool = False
    ) -> list[Any]:
        tried: list[str] = []
        last = "no attempt"
        for attempt in range(self.policy.max_attempts):
            index = self._current
            endpoint = self._endpoints[index]
            if endpoint.label not in tried:
                tried.append(endpoint.label)
            try:
                return await self._attempt(endpoint, calls, nullable, errors_as_none, single)
            except _AttemptFailed as exc:
                last = f"{exc.detail} from {endpoint.label}"
                RPC_ERRORS.labels(self.chain, endpoint.label, exc.reason).inc()
                if self._current == index:
                    self._current = (index + 1) % len(self._endpoints)
                log.warning(
                    "chain %s: JSON-RPC %s failed on %s (attempt %d/%d): %s",
                    self.chain, _describe(calls), endpoint.label, attempt + 1,
                    self.policy.max_attempts, exc.detail,
                )
            if attempt + 1 < self.policy.max_attempts:
                await asyncio.sleep(self.policy.delay(attempt))
        raise ConnectorError(
            f"JSON-RPC failed after {self.policy.max_attempts} attempt(s); last error: {last}",
            chain=self.chain,
            endpoints=", ".join(tried),
            method=_describe(calls),
        )

    async def _attempt(
        self,
        endpoint: _Endpoint,
        calls: Sequence[Call],
        nullable: bool,
        errors_as_none: bool,
        single: bool,
    ) -> list[Any]:
        RPC_REQUESTS.labels(self.chain, endpoint.label).inc()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                provider = await endpoint.ready()
                if single:
                    method, params = calls[0]
                    raw: Any = [await provider.make_request(RPCEndpoint(method), list(params))]
                else:
                    raw = await provider.make_batch_request(
                        [(RPCEndpoint(m), list(p)) for m, p in calls]
                    )
        except TimeoutError:
            raise _AttemptFailed("timeout", f"timed out after {self.timeout:g}s") from None
        except aiohttp.ClientResponseError as exc:
            raise _AttemptFailed("http", f"HTTP {exc.status}") from None
        except aiohttp.ClientError as exc:
            raise _AttemptFailed("connection", f"connection error ({type(exc).__name__})") from None
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            raise _AttemptFailed("malformed", "response body is not JSON") from None
        except (AttributeError, TypeError, KeyError):  # web3 sorting a batch of non-objects
            raise _AttemptFailed("malformed", "batch response is not a list of JSON-RPC "
                                              "objects with comparable ids") from None
        finally:
            RPC_LATENCY.labels(self.chain, endpoint.label).observe(time.perf_counter() - started)
        return self._results(endpoint, calls, raw, nullable, errors_as_none)

    def _results(
        self,
        endpoint: _Endpoint,
        calls: Sequence[Call],
        raw: Any,
        nullable: bool,
        errors_as_none: bool,
    ) -> list[Any]:
        if isinstance(raw, dict):  # a batch answered by one error object
            self._raise_error_object(endpoint, calls[0][0], raw.get("error"))
            raise _AttemptFailed("malformed", "batch answered by a single object")
        if not isinstance(raw, list) or len(raw) != len(calls):
            got = len(raw) if isinstance(raw, list) else type(raw).__name__
            raise _AttemptFailed("malformed", f"expected {len(calls)} responses, got {got}")
        previous: int | None = None
        results: list[Any] = []
        for (method, _), response in zip(calls, raw, strict=True):
            if not isinstance(response, dict):
                raise _AttemptFailed("malformed", f"{method}: response is not an object")
            rid = response.get("id")
            if not isinstance(rid, int) or (previous is not None and rid != previous + 1):
                raise _AttemptFailed("malformed", f"{method}: missing or unexpected response id")
            previous = rid
            if response.get("error") is not None:
                if errors_as_none:
                    results.append(None)
                    continue
                self._raise_error_object(endpoint, method, response["error"])
            if "result" not in response:
                raise _AttemptFailed("malformed", f"{method}: response without result")
            if response["result"] is None and not nullable:
                raise _AttemptFailed("null", f"{method}: null result (node behind?)")
            results.append(response["result"])
        return results

    def _raise_error_object(self, endpoint: _Endpoint, method: str, error: Any) -> None:
        code = error.get("code") if isinstance(error, dict) else None
        message = str(error.get("message", ""))[:200] if isinstance(error, dict) else ""
        if code in METHOD_NOT_FOUND_CODES:
            RPC_ERRORS.labels(self.chain, endpoint.label, "rpc").inc()
            raise RpcMethodNotFound(
                f"node does not support {method}: {message}",
                chain=self.chain, endpoint=endpoint.label, method=method, code=code,
            )
        raise _AttemptFailed("rpc", f"{method}: JSON-RPC error {code}: {message}")
