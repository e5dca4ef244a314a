"""Chat sinks: Slack incoming webhooks, Discord webhooks and Telegram bots.

Every message says what an investigator needs to act: the exact amount (via
:func:`~monitor.sinks.console.format_amount`, never a float), rule, severity, case and watched
wallet, chain and block, and the transaction, sender and receiver -- as links into the
chain's block explorer when ``explorer_url`` is configured for the chain, as plain hashes
otherwise -- plus the taint path and list hits when the rule gave them as evidence.

* **Slack**: ``POST <incoming-webhook URL>`` with ``{"text", "blocks"}`` (``text`` is the
  notification fallback; ``mrkdwn`` escapes ``& < >``, links are ``<url|text>``).
* **Discord**: ``POST <webhook URL>`` with ``{"content", "embeds", "allowed_mentions"}``
  (mentions disabled, so a label like ``@everyone`` pings nobody).
* **Telegram**: ``POST <api_url>/bot<token>/sendMessage`` with ``{"chat_id", "text",
  "parse_mode"}`` (``HTML`` or ``MarkdownV2``, each with its own escaping).

The webhook URLs (they embed the credential) and the bot token come from environment
variables and never appear in logs, ``repr`` or errors: Slack and Discord URLs are shown as
``scheme://host/***``, the Telegram token as ``bot***``. Every sink retries with the shared
policy of :mod:`monitor.sinks.retrying`, honouring ``Retry-After`` on 429 and the JSON hints
(Discord's ``retry_after``, Telegram's ``parameters.retry_after``).
"""

from __future__ import annotations

import abc
import html
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Self
from urllib.parse import quote, urlsplit

import aiohttp

from monitor.egress import GuardedResolver
from monitor.errors import ConfigError
from monitor.records import Alert, Severity
from monitor.settings import SinkConfig, SinksPolicy, redact_url
from monitor.sinks.base import Secret, Sink, SinkContext, register_sink
from monitor.sinks.console import clean_text, format_amount
from monitor.sinks.retrying import (
    DEFAULT_BACKOFF_INITIAL_SECONDS,
    DEFAULT_BACKOFF_MAX_SECONDS,
    DEFAULT_RETRY_AFTER_MAX_SECONDS,
    Outcome,
    RetryPolicy,
    deliver_with_retries,
    is_loopback,
    post_json,
)

log = logging.getLogger(__name__)

USER_AGENT = "chainwatch-chat/1"
_HASH = re.compile(r"0x[0-9a-fA-F]{1,128}")
_MAX_PATH_ADDRESSES = 8
_MAX_LIST_HITS = 5
_DIRECTION_WORDS: Final[dict[str, str]] = {
    "out": "out of", "in": "into", "self": "within",
}
SEVERITY_COLOURS: Final[dict[str, int]] = {
    "info": 0x95A5A6, "low": 0x3498DB, "medium": 0xF1C40F, "high": 0xE67E22,
    "critical": 0xE74C3C,
}
"""Discord embed colour per severity."""


# --------------------------------------------------------------------------- the message
@dataclass(frozen=True, slots=True)
class Part:
    """A piece of a field's value: text, optionally a link target and/or monospace."""

    text: str
    url: str | None = None
    code: bool = False


@dataclass(frozen=True, slots=True)
class Field:
    """One labelled line of an alert message (``Amount: 1.5 ETH out of Seized wallet A``)."""

    label: str
    parts: tuple[Part, ...]
    short: bool = False  # fits beside another field (Slack fields, Discord inline)


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert laid out for people, independent of any markup."""

    alert_id: str
    severity: str
    headline: str
    fields: tuple[Field, ...]
    tx_url: str | None
    block_time: int


def explorer_link(base: str | None, kind: str, value: str) -> str | None:
    """``<base>/<kind>/<value>`` for a hex hash/address or a block number, else None.

    >>> explorer_link("https://etherscan.io/", "tx", "0xab12")
    'https://etherscan.io/tx/0xab12'
    >>> explorer_link("https://etherscan.io", "address", "not-a-hash") is None
    True
    >>> explorer_link(None, "tx", "0xab12") is None
    True
    """
    if not base:
        return None
    if not (_HASH.fullmatch(value) or (kind == "block" and value.isascii() and value.isdigit())):
        return None
    return f"{base.rstrip('/')}/{kind}/{quote(value, safe='')}"


def short_hash(value: str) -> str:
    """``0xd90f…0612`` for long hex strings; anything else cleaned and returned."""
    text = clean_text(value, 80)
    return f"{text[:6]}…{text[-4:]}" if _HASH.fullmatch(value) and len(value) > 14 else text


def _asset_name(alert: Alert) -> str | None:
    asset = alert.asset
    return asset.symbol or ("native" if asset.kind == "native" else asset.address)


def _path_parts(evidence: Mapping[str, Any], explorer: str | None) -> tuple[Part, ...]:
    """The addresses funds went through, origin first, as short explorer links."""
    path = evidence.get("path")
    if not isinstance(path, list) or len(path) < 2:
        return ()
    addresses: list[str] = []
    origin = evidence.get("origin")
    if isinstance(origin, str):
        addresses.append(origin)
    for hop in path:
        if isinstance(hop, list | tuple) and len(hop) >= 3 and isinstance(hop[2], str):
            addresses.append(hop[2])
    if len(addresses) < 2:
        return ()
    shown = addresses if len(addresses) <= _MAX_PATH_ADDRESSES else (
        [*addresses[:_MAX_PATH_ADDRESSES - 1], "…", addresses[-1]])
    parts: list[Part] = []
    for i, address in enumerate(shown):
        if i:
            parts.append(Part(" → "))
        if address == "…":
            parts.append(Part("…"))
        else:
            parts.append(Part(short_hash(address), explorer_link(explorer, "address", address),
                              code=True))
    parts.append(Part(f" ({len(path)} hop{'s' if len(path) != 1 else ''})"))
    return tuple(parts)


def _list_hit_parts(evidence: Mapping[str, Any]) -> tuple[Part, ...]:
    hits = evidence.get("list_hits")
    if not isinstance(hits, list) or not hits:
        return ()
    texts = []
    for hit in hits[:_MAX_LIST_HITS]:
        if isinstance(hit, dict):
            label = clean_text(str(hit.get("label") or hit.get("address") or "?"), 96)
            source = clean_text(str(hit.get("list") or ""), 64)
            version = clean_text(str(hit.get("version") or hit.get("published") or ""), 32)
            texts.append(f"{label} ({source}{' ' + version if version else ''})"
                         if source else label)
    more = f" and {len(hits) - _MAX_LIST_HITS} more" if len(hits) > _MAX_LIST_HITS else ""
    return (Part("; ".join(texts) + more),) if texts else ()


def alert_view(alert: Alert, explorers: Mapping[str, str] | None = None) -> AlertView:
    """Lay out ``alert`` for people; links use ``explorers[alert.chain]`` when known."""
    explorer = (explorers or {}).get(alert.chain)
    amount = format_amount(alert.amount, alert.asset.decimals, _asset_name(alert))
    watch = alert.watch
    case = clean_text(watch.case_id, 128)
    label = clean_text(watch.label, 128) if watch.label else short_hash(watch.address)
    rule = clean_text(alert.rule, 64)
    direction = _DIRECTION_WORDS.get(alert.direction, clean_text(alert.direction, 16))
    headline = f"{alert.severity.upper()} {rule}: {amount} {direction} {label} (case {case})"

    def address(value: str) -> tuple[Part, ...]:
        mark = (Part(" (watched)"),) if value == watch.address else ()
        return (Part(clean_text(value, 80), explorer_link(explorer, "address", value),
                     code=True), *mark)

    status = clean_text(alert.status, 16)
    if alert.status == "confirmed":
        status += f", {alert.confirmations} confirmation{'s' if alert.confirmations != 1 else ''}"
    fields = [
        Field("Amount", (Part(amount), Part(f" {direction} the watched wallet")), short=True),
        Field("Severity", (Part(alert.severity.upper()),), short=True),
        Field("Rule", (Part(rule, code=True),
                       *((Part(" — " + clean_text(alert.title, 200)),) if alert.title else ())),
              short=True),
        Field("Case", (Part(case),
                       Part(f" · {label}" + (f" ({clean_text(watch.category, 32)})"
                                            if watch.category else ""))), short=True),
        Field("Chain", (Part(f"{clean_text(alert.chain, 64)} · block "),
                        Part(f"{alert.block_number:,}",
                             explorer_link(explorer, "block", str(alert.block_number))),
                        Part(f" · {status}"))),
        Field("Transaction", (Part(clean_text(alert.tx_hash, 80),
                                   explorer_link(explorer, "tx", alert.tx_hash), code=True),)),
        Field("From", address(alert.from_address)),
        Field("To", address(alert.to_address)),
    ]
    path = _path_parts(alert.evidence, explorer)
    if path:
        fields.append(Field("Path", path))
    hits = _list_hit_parts(alert.evidence)
    if hits:
        fields.append(Field("Lists", hits))
    fields.append(Field("Alert", (Part(clean_text(alert.id, 80), code=True),)))
    return AlertView(alert_id=clean_text(alert.id, 80), severity=alert.severity,
                     headline=headline, fields=tuple(fields),
                     tx_url=explorer_link(explorer, "tx", alert.tx_hash),
                     block_time=alert.block_time)


# --------------------------------------------------------------------------- markup
Renderer = Callable[[Part], str]


def render_value(parts: Iterable[Part], render: Renderer) -> str:
    """Concatenate rendered parts."""
    return "".join(render(part) for part in parts)


def plain_part(part: Part) -> str:
    """Plain text: links as ``text <url>`` (when the text is not the URL itself)."""
    return f"{part.text} <{part.url}>" if part.url else part.text


def render_plain(view: AlertView) -> str:
    """The whole message as plain text, one ``Label: value`` per line."""
    lines = [view.headline, ""]
    lines += [f"{f.label}: {render_value(f.parts, plain_part)}" for f in view.fields]
    return "\n".join(lines)


def slack_escape(text: str) -> str:
    """Escape Slack ``mrkdwn`` control characters (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_part(part: Part) -> str:
    """One part in Slack ``mrkdwn``: ``<url|text>`` links, backtick code."""
    text = slack_escape(part.text)
    if part.url:
        return f"<{slack_escape(part.url)}|{text}>"
    return f"`{text}`" if part.code else text


_DISCORD_SPECIAL = re.compile(r"([\\*_~`|>\[\]()#-])")


def discord_escape(text: str) -> str:
    r"""Escape Discord markdown: a backslash before each of ``\*_~`|>[]()#-``."""
    return _DISCORD_SPECIAL.sub(r"\\\1", text)


def discord_part(part: Part) -> str:
    """One part in Discord markdown: ``[text](url)`` links, backtick code."""
    code = part.code and "`" not in part.text
    text = f"`{part.text}`" if code else discord_escape(part.text)
    if part.url:
        return f"[{text}]({part.url.replace(')', '%29')})"
    return text


def telegram_html_part(part: Part) -> str:
    """One part in Telegram HTML: ``<a href>`` links, ``<code>``; ``& < > "`` escaped."""
    text = html.escape(part.text, quote=False)
    if part.code:
        text = f"<code>{text}</code>"
    if part.url:
        return f'<a href="{html.escape(part.url, quote=True)}">{text}</a>'
    return text


_MDV2_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")


def mdv2_escape(text: str) -> str:
    r"""Escape Telegram MarkdownV2 text: every one of ``_*[]()~`>#+-=|{}.!\`` gets a backslash.

    >>> mdv2_escape("1.5 ETH (case C-1)")
    '1\\.5 ETH \\(case C\\-1\\)'
    """
    return _MDV2_SPECIAL.sub(r"\\\1", text)


def telegram_mdv2_part(part: Part) -> str:
    """One part in Telegram MarkdownV2: code escapes only backslash and backtick."""
    if part.code:
        text = "`" + part.text.replace("\\", "\\\\").replace("`", "\\`") + "`"
    else:
        text = mdv2_escape(part.text)
    if part.url:
        url = part.url.replace("\\", "\\\\").replace(")", "\\)")
        return f"[{text}]({url})"
    return text


# --------------------------------------------------------------------------- sinks
def _secret_env(config: SinkConfig, environ: Mapping[str, str], var: str | None,
                what: str) -> str:
    """The stripped value of ``environ[var]``; ConfigError names the variable, never a value."""
    if not var:
        raise ConfigError(f"sink {config.name!r}: needs the name of the environment variable "
                          f"holding its {what}", sink=config.name)
    value = (environ.get(var) or "").strip()
    if not value:
        state = "is not set" if var not in environ else "is empty"
        raise ConfigError(f"sink {config.name!r}: environment variable {var} (its {what}) "
                          f"{state}", sink=config.name)
    return value


class ChatSink(Sink, abc.ABC):
    """Base of the chat sinks: one aiohttp session, the shared retry policy, explorer links."""

    kind: str = "chat"

    def __init__(
        self,
        name: str,
        *,
        min_severity: Severity = "info",
        explorers: Mapping[str, str] | None = None,
        timeout_seconds: float = 5.0,
        max_attempts: int = 6,
        backoff_initial_seconds: float = DEFAULT_BACKOFF_INITIAL_SECONDS,
        backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS,
        retry_after_max_seconds: float = DEFAULT_RETRY_AFTER_MAX_SECONDS,
    ) -> None:
        super().__init__(name, min_severity=min_severity)
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self.timeout_seconds = timeout_seconds
        self.policy = RetryPolicy(max_attempts, backoff_initial_seconds, backoff_max_seconds,
                                  retry_after_max_seconds)
        self.explorers: dict[str, str] = dict(explorers or {})
        self._session: aiohttp.ClientSession | None = None
        self.policy_of_destinations = SinksPolicy(allow_http=True)  # set by bind()

    def bind(self, context: SinkContext) -> None:
        """Check the target against ``sinks_policy``; use the chains' explorer URLs for links."""
        problem = context.policy.url_problem(self._target_url())  # never quotes path/query
        if problem:
            raise ConfigError(f"{self.kind} sink {self.name!r}: {problem}", sink=self.name)
        self.policy_of_destinations = context.policy
        self.explorers = {**context.explorers, **self.explorers}

    @property
    @abc.abstractmethod
    def safe_target(self) -> str:
        """Where messages go, fit for logs (no credential)."""

    @abc.abstractmethod
    def _target_url(self) -> str:
        """The real URL to POST to (holds the credential: never log it)."""

    @abc.abstractmethod
    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON body for ``alert``."""

    def _redact(self, text: str) -> str:
        """Remove the credential from text quoted from an answer."""
        return text

    def _accept(self, status: int, body: bytes) -> str | None:
        """Refuse a 2xx answer by returning why; None accepts (the default)."""
        return None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, target={self.safe_target!r}, "
                f"min_severity={self.min_severity!r})")

    async def start(self) -> None:
        """Open the HTTP session (idempotent)."""
        await self._open_session()

    async def _open_session(self) -> aiohttp.ClientSession:
        if self._session is not None and not self._session.closed:
            return self._session
        guarded = self.policy_of_destinations.deny_private_networks
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            headers={"User-Agent": USER_AGENT},
            connector=aiohttp.TCPConnector(resolver=GuardedResolver()) if guarded else None,
        )
        parts = urlsplit(self._target_url())
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            log.warning("%s sink %s posts alerts over plain http to %s: contents and "
                        "credentials travel unencrypted", self.kind, self.name, self.safe_target)
        return self._session

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def deliver(self, alert: Alert) -> None:
        """Post the message for ``alert``; retry transient failures; SinkError when spent."""
        session = await self._open_session()
        body = json.dumps(self.payload(alert), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}

        async def attempt() -> Outcome:
            return await post_json(session, self._target_url(), body, headers,
                                   timeout_seconds=self.timeout_seconds, redact=self._redact,
                                   accept=self._accept)

        await deliver_with_retries(attempt, self.policy, sink=self.name, alert_id=alert.id,
                                   kind=self.kind, where=self.safe_target)


def _check_http_url(name: str, kind: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Never echo the URL: the whole of it is the credential.
        raise ConfigError(f"{kind} sink {name!r}: the webhook URL must be http(s) with a host",
                          sink=name)


class _WebhookUrlSink(ChatSink):
    """A chat sink whose credential is the whole webhook URL (Slack, Discord)."""

    def __init__(self, name: str, url: str | Secret, **options: Any) -> None:
        super().__init__(name, **options)
        secret = url if isinstance(url, Secret) else Secret(url.encode("utf-8"))
        _check_http_url(name, self.kind, secret.reveal().decode("utf-8"))
        self._url = secret
        self._safe = redact_url(secret.reveal().decode("utf-8"))

    @classmethod
    def from_config(cls, config: SinkConfig, environ: Mapping[str, str]) -> Self:
        """Build from configuration; the webhook URL comes from ``environ[url_env]``."""
        url = _secret_env(config, environ, config.url_env, "webhook URL")
        _check_http_url(config.name, cls.kind, url)
        return cls(config.name, Secret(url.encode("utf-8")), min_severity=config.min_severity,
                   timeout_seconds=config.timeout_seconds, max_attempts=config.max_attempts)

    @property
    def safe_target(self) -> str:
        """``scheme://host[:port]/***``."""
        return self._safe

    def _target_url(self) -> str:
        return self._url.reveal().decode("utf-8")

    def _redact(self, text: str) -> str:
        return text.replace(self._target_url(), self._safe)


@register_sink
class SlackSink(_WebhookUrlSink):
    """Post alerts to a Slack incoming webhook: ``text`` fallback plus Block Kit ``blocks``."""

    type_name = "slack"
    kind = "slack"

    def payload(self, alert: Alert) -> dict[str, Any]:
        """``{"text", "blocks": [header, section fields, section, context]}``."""
        view = alert_view(alert, self.explorers)
        short = [f for f in view.fields if f.short]
        long = [f for f in view.fields if not f.short and f.label != "Alert"]
        return {
            "text": slack_escape(view.headline),
            "blocks": [
                {"type": "header",
                 "text": {"type": "plain_text", "text": view.headline[:150], "emoji": False}},
                {"type": "section",
                 "fields": [{"type": "mrkdwn",
                             "text": f"*{f.label}*\n{render_value(f.parts, slack_part)}"}
                            for f in short]},
                {"type": "section",
                 "text": {"type": "mrkdwn",
                          "text": "\n".join(f"*{f.label}:* {render_value(f.parts, slack_part)}"
                                            for f in long)}},
                {"type": "context",
                 "elements": [{"type": "mrkdwn",
                               "text": f"chainwatch alert `{slack_escape(view.alert_id)}`"}]},
            ],
            "unfurl_links": False,
            "unfurl_media": False,
        }


@register_sink
class DiscordSink(_WebhookUrlSink):
    """Post alerts to a Discord webhook: short ``content`` plus one embed with fields."""

    type_name = "discord"
    kind = "discord"

    def payload(self, alert: Alert) -> dict[str, Any]:
        """``{"content", "embeds": [{title, url, color, fields, footer, timestamp}]}``."""
        view = alert_view(alert, self.explorers)
        embed: dict[str, Any] = {
            "title": view.headline[:256],
            "color": SEVERITY_COLOURS.get(view.severity, 0),
            "fields": [{"name": f.label, "value": render_value(f.parts, discord_part)[:1024],
                        "inline": f.short}
                       for f in view.fields if f.label != "Alert"],
            "footer": {"text": f"chainwatch alert {view.alert_id}"},
            "timestamp": datetime.fromtimestamp(view.block_time, UTC).isoformat(),
        }
        if view.tx_url:
            embed["url"] = view.tx_url
        return {
            "content": discord_escape(view.headline)[:2000],
            "embeds": [embed],
            "allowed_mentions": {"parse": []},
        }


_TELEGRAM_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,200}")


@register_sink
class TelegramSink(ChatSink):
    """Send alerts with a Telegram bot: Bot API ``sendMessage`` in HTML or MarkdownV2."""

    type_name = "telegram"
    kind = "telegram"

    def __init__(self, name: str, token: str | Secret, chat_id: int | str, *,
                 parse_mode: str = "HTML", api_url: str = "https://api.telegram.org",
                 **options: Any) -> None:
        super().__init__(name, **options)
        secret = token if isinstance(token, Secret) else Secret(token.encode("utf-8"))
        if not _TELEGRAM_TOKEN.fullmatch(secret.reveal().decode("utf-8")):
            raise ConfigError(f"telegram sink {name!r}: the bot token does not look like "
                              "'<digits>:<letters>' (value not shown)", sink=name)
        if parse_mode not in ("HTML", "MarkdownV2"):
            raise ValueError(f"telegram sink {name!r}: parse_mode must be HTML or MarkdownV2")
        _check_http_url(name, "telegram", api_url)
        self._token = secret
        self.chat_id = chat_id
        self.parse_mode = parse_mode
        self.api_url = api_url.rstrip("/")

    @classmethod
    def from_config(cls, config: SinkConfig, environ: Mapping[str, str]) -> Self:
        """Build from configuration; the bot token comes from ``environ[bot_token_env]``."""
        token = _secret_env(config, environ, config.bot_token_env, "bot token")
        if config.chat_id is None:
            raise ConfigError(f"sink {config.name!r}: a telegram sink needs 'chat_id'",
                              sink=config.name)
        return cls(config.name, Secret(token.encode("utf-8")), config.chat_id,
                   parse_mode=config.parse_mode, api_url=config.api_url,
                   min_severity=config.min_severity, timeout_seconds=config.timeout_seconds,
                   max_attempts=config.max_attempts)

    @property
    def safe_target(self) -> str:
        """``<api_url>/bot***/sendMessage``."""
        return f"{redact_url(self.api_url)}/bot***/sendMessage"

    def _target_url(self) -> str:
        return f"{self.api_url}/bot{self._token.reveal().decode('utf-8')}/sendMessage"

    def _redact(self, text: str) -> str:
        return text.replace(self._token.reveal().decode("utf-8"), "***")

    def _accept(self, status: int, body: bytes) -> str | None:
        """Telegram answers ``{"ok": true, ...}``; anything else is a refusal."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return f"HTTP {status} with an answer that is not JSON"
        if isinstance(data, dict) and data.get("ok") is True:
            return None
        description = data.get("description") if isinstance(data, dict) else None
        return f"HTTP {status} ok=false: {description or 'no description'}"

    def render_text(self, alert: Alert) -> str:
        """The message text in the configured parse mode."""
        view = alert_view(alert, self.explorers)
        if self.parse_mode == "MarkdownV2":
            head = f"*{mdv2_escape(view.headline)}*"
            lines = [f"*{mdv2_escape(f.label)}:* {render_value(f.parts, telegram_mdv2_part)}"
                     for f in view.fields]
        else:
            head = f"<b>{html.escape(view.headline, quote=False)}</b>"
            lines = [f"<b>{html.escape(f.label)}:</b> "
                     f"{render_value(f.parts, telegram_html_part)}" for f in view.fields]
        return "\n".join([head, "", *lines])

    def payload(self, alert: Alert) -> dict[str, Any]:
        """``{"chat_id", "text", "parse_mode", "link_preview_options"}``."""
        return {
            "chat_id": self.chat_id,
            "text": self.render_text(alert),
            "parse_mode": self.parse_mode,
            "link_preview_options": {"is_disabled": True},
        }
