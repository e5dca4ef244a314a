"""Real loopback receivers for the chat sinks: Slack, Discord and the Telegram Bot API.

:class:`ChatReceiver` serves, on one ephemeral 127.0.0.1 port,

* ``POST /slack/{path}``: an incoming webhook; answers ``200 ok`` or ``400 invalid_payload``;
* ``POST /discord/{id}/{token}``: a Discord webhook; answers ``204`` or ``400`` with the error;
* ``POST /bot{token}/sendMessage``: the Bot API; answers ``{"ok": true, "result": ...}`` or
  ``{"ok": false, "error_code", "description"}`` like Telegram (401 for a wrong token).

Each endpoint checks the payload shape its service documents (required keys, types, length
limits; Telegram's HTML tags and MarkdownV2 escaping are parsed the way Telegram does), can be
scripted to answer 429/5xx first (with ``Retry-After`` headers or the JSON hints Discord and
Telegram send), and records every accepted message and every attempt.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from types import TracebackType
from typing import Any, Self

from aiohttp import web

SLACK_BLOCK_TYPES = {"header", "section", "context", "divider", "actions", "image"}
TELEGRAM_HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code",
                      "pre", "span", "tg-spoiler", "blockquote", "tg-emoji"}
MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")


@dataclass(frozen=True)
class Reply:
    """A scripted answer: status, headers and an optional JSON body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    @classmethod
    def slack_rate_limited(cls, retry_after: str) -> Reply:
        """Slack: 429 with a ``Retry-After`` header (seconds)."""
        return cls(429, {"Retry-After": retry_after}, None)

    @classmethod
    def discord_rate_limited(cls, retry_after: float) -> Reply:
        """Discord: 429 with ``retry_after`` (float seconds) in the JSON body, no header."""
        return cls(429, {}, {"message": "You are being rate limited.",
                             "retry_after": retry_after, "global": False})

    @classmethod
    def telegram_rate_limited(cls, retry_after: int) -> Reply:
        """Telegram: 429 with ``parameters.retry_after`` in the JSON body, no header."""
        return cls(429, {}, {"ok": False, "error_code": 429,
                             "description": f"Too Many Requests: retry after {retry_after}",
                             "parameters": {"retry_after": retry_after}})


@dataclass(frozen=True)
class ChatMessage:
    """One accepted message: which service, the parsed payload, headers and arrival time."""

    service: str
    payload: dict[str, Any]
    headers: dict[str, str]
    received_at: float  # time.monotonic()


@dataclass(frozen=True)
class ChatAttempt:
    """Any request that reached an endpoint, with what was answered."""

    service: str
    status: int
    received_at: float


class PayloadError(ValueError):
    """The payload breaks the service's documented format."""


# --------------------------------------------------------------------------- shape checks
def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PayloadError(message)


def check_slack(payload: Any) -> None:
    """An incoming-webhook message: ``text`` and/or Block Kit ``blocks``."""
    _require(isinstance(payload, dict), "payload is not an object")
    _require(isinstance(payload.get("text"), str) and payload["text"].strip() != "",
             "missing 'text' (the notification fallback)")
    blocks = payload.get("blocks", [])
    _require(isinstance(blocks, list) and len(blocks) <= 50, "'blocks' must be a list <= 50")
    for i, block in enumerate(blocks):
        _require(isinstance(block, dict) and block.get("type") in SLACK_BLOCK_TYPES,
                 f"blocks[{i}]: unknown block type")
        if block["type"] == "header":
            text = block.get("text", {})
            _require(text.get("type") == "plain_text" and 0 < len(text.get("text", "")) <= 150,
                     f"blocks[{i}]: header needs plain_text of 1-150 characters")
        elif block["type"] == "section":
            _require("text" in block or "fields" in block, f"blocks[{i}]: empty section")
            if "text" in block:
                _check_slack_text(block["text"], 3000, f"blocks[{i}].text")
            fields = block.get("fields", [])
            _require(len(fields) <= 10, f"blocks[{i}]: more than 10 fields")
            for j, item in enumerate(fields):
                _check_slack_text(item, 2000, f"blocks[{i}].fields[{j}]")
        elif block["type"] == "context":
            elements = block.get("elements")
            _require(isinstance(elements, list) and 0 < len(elements) <= 10,
                     f"blocks[{i}]: context needs 1-10 elements")


def _check_slack_text(obj: Any, limit: int, where: str) -> None:
    _require(isinstance(obj, dict) and obj.get("type") in ("mrkdwn", "plain_text"),
             f"{where}: not a text object")
    text = obj.get("text")
    _require(isinstance(text, str) and 0 < len(text) <= limit, f"{where}: 1-{limit} characters")
    if obj["type"] == "mrkdwn":  # & < > must be escaped except in <url|label> links
        stripped = text
        while "<" in stripped:
            start = stripped.index("<")
            end = stripped.find(">", start)
            _require(end > start and "|" in stripped[start:end] and
                     stripped[start + 1:].startswith("http"),
                     f"{where}: unescaped '<' outside a link")
            stripped = stripped[:start] + stripped[end + 1:]
        _require(">" not in stripped, f"{where}: unescaped '>'")


def check_discord(payload: Any) -> None:
    """An execute-webhook body: ``content`` and/or ``embeds`` within Discord's limits."""
    _require(isinstance(payload, dict), "payload is not an object")
    content = payload.get("content")
    embeds = payload.get("embeds", [])
    _require(bool(content) or bool(embeds), "Cannot send an empty message")
    _require(content is None or (isinstance(content, str) and len(content) <= 2000),
             "content: at most 2000 characters")
    _require(isinstance(embeds, list) and len(embeds) <= 10, "embeds: at most 10")
    total = 0
    for i, embed in enumerate(embeds):
        _require(isinstance(embed, dict), f"embeds[{i}]: not an object")
        title = embed.get("title", "")
        _require(len(title) <= 256, f"embeds[{i}].title: at most 256")
        _require(len(embed.get("description", "")) <= 4096, f"embeds[{i}].description")
        _require(isinstance(embed.get("color", 0), int) and 0 <= embed.get("color", 0)
                 <= 0xFFFFFF, f"embeds[{i}].color: an RGB integer")
        fields = embed.get("fields", [])
        _require(len(fields) <= 25, f"embeds[{i}].fields: at most 25")
        for j, item in enumerate(fields):
            _require(0 < len(item.get("name", "")) <= 256, f"embeds[{i}].fields[{j}].name")
            _require(0 < len(item.get("value", "")) <= 1024, f"embeds[{i}].fields[{j}].value")
            total += len(item["name"]) + len(item["value"])
        if "url" in embed:
            _require(str(embed["url"]).startswith(("http://", "https://")), "embed url")
        total += len(title) + len(embed.get("footer", {}).get("text", ""))
    _require(total <= 6000, "embeds: more than 6000 characters in total")


class _TelegramHtml(HTMLParser):
    """Telegram's HTML subset: known tags, balanced, ``a`` with an href."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        _require(tag in TELEGRAM_HTML_TAGS, f"Unsupported start tag \"{tag}\"")
        if tag == "a":
            _require(any(k == "href" and v for k, v in attrs), "a tag without href")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        _require(bool(self.stack) and self.stack[-1] == tag, f"Unmatched end tag \"{tag}\"")
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def telegram_html_text(text: str) -> str:
    """Parse Telegram HTML like the Bot API does; return the visible text."""
    for i, char in enumerate(text):  # a bare '<' or '&' that is not an entity is refused
        if char == "&":
            end = text.find(";", i)
            _require(end != -1 and text[i + 1:end].replace("#", "").isalnum(),
                     f"Can't parse entities: unescaped '&' at byte offset {i}")
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    _require(not parser.stack, f"Can't find end tag corresponding to start tag {parser.stack}")
    return "".join(parser.text)


def telegram_mdv2_text(text: str) -> str:
    """Parse Telegram MarkdownV2 like the Bot API does; return the visible text."""
    out: list[str] = []
    i = 0
    bold = False
    while i < len(text):
        char = text[i]
        if char == "\\":
            _require(i + 1 < len(text), "a trailing backslash")
            out.append(text[i + 1])
            i += 2
        elif char == "*":
            bold = not bold
            i += 1
        elif char == "`":
            end = i + 1
            while end < len(text) and text[end] != "`":
                end += 2 if text[end] == "\\" else 1
            _require(end < len(text), "Can't find end of Code entity")
            out.append(text[i + 1:end].replace("\\`", "`").replace("\\\\", "\\"))
            i = end + 1
        elif char == "[":
            close = i + 1
            depth_text: list[str] = []
            while close < len(text) and text[close] != "]":
                if text[close] == "\\":
                    depth_text.append(text[close + 1])
                    close += 2
                else:
                    depth_text.append(text[close])
                    close += 1
            _require(close + 1 < len(text) and text[close + 1] == "(",
                     "Can't find end of text URL entity")
            end = close + 2
            while end < len(text) and text[end] != ")":
                end += 2 if text[end] == "\\" else 1
            _require(end < len(text), "Can't find end of URL")
            out.append(telegram_mdv2_text("".join(depth_text)) if "`" not in depth_text
                       else "".join(depth_text))
            i = end + 1
        elif char in MDV2_RESERVED:
            raise PayloadError(f"Character '{char}' is reserved and must be escaped with the "
                               f"preceding '\\'")
        else:
            out.append(char)
            i += 1
    _require(not bold, "Can't find end of Bold entity")
    return "".join(out)


def check_telegram(payload: Any) -> str:
    """A ``sendMessage`` call; return the visible text after parsing its markup."""
    _require(isinstance(payload, dict), "payload is not an object")
    _require(isinstance(payload.get("chat_id"), int | str), "chat_id is required")
    text = payload.get("text")
    _require(isinstance(text, str) and text.strip() != "", "message text is empty")
    mode = payload.get("parse_mode")
    _require(mode in (None, "HTML", "MarkdownV2"), f"unsupported parse_mode {mode!r}")
    visible = (telegram_html_text(text) if mode == "HTML" else
               telegram_mdv2_text(text) if mode == "MarkdownV2" else text)
    _require(len(visible) <= 4096, "message is too long")
    return visible


# --------------------------------------------------------------------------- the server
class ChatReceiver:
    """Slack, Discord and Telegram endpoints on one loopback port, in the test's loop."""

    def __init__(self, *, telegram_token: str = "123456789:AAtest-token_0123456789abcdef",
                 discord_wait: bool = False) -> None:
        self.telegram_token = telegram_token
        self.discord_wait = discord_wait
        self.script: dict[str, list[Reply]] = {"slack": [], "discord": [], "telegram": []}
        self.always_fail: dict[str, Reply | None] = {"slack": None, "discord": None,
                                                     "telegram": None}
        self.messages: list[ChatMessage] = []
        self.attempts: list[ChatAttempt] = []
        self.refusals: list[str] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        """Bind 127.0.0.1 on an ephemeral port."""
        app = web.Application()
        app.router.add_post("/slack/{path:.+}", self._slack)
        app.router.add_post("/discord/{id}/{token}", self._discord)
        app.router.add_post("/bot{token}/sendMessage", self._telegram)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- addresses -------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._port is None:
            raise RuntimeError("receiver not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def slack_url(self) -> str:
        """An incoming-webhook URL (the path plays Slack's secret)."""
        return f"{self.base}/slack/services/T000/B000/slacksecretXYZ"

    @property
    def discord_url(self) -> str:
        """A webhook URL (the last segment plays Discord's token)."""
        return f"{self.base}/discord/112233/discordtokenXYZ"

    def of(self, service: str) -> list[ChatMessage]:
        """Accepted messages of one service."""
        return [m for m in self.messages if m.service == service]

    def tries(self, service: str) -> list[ChatAttempt]:
        """Requests that reached one service's endpoint."""
        return [a for a in self.attempts if a.service == service]

    async def wait_for(self, service: str, n: int, timeout: float = 10.0) -> list[ChatMessage]:
        """Wait until ``n`` messages of ``service`` were accepted."""
        deadline = time.monotonic() + timeout
        while len(self.of(service)) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{service}: {len(self.of(service))} of {n} message(s); "
                                   f"refusals: {self.refusals}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue
        return self.of(service)

    # -- endpoints -------------------------------------------------------------------------
    def _scripted(self, service: str) -> Reply | None:
        if self.script[service]:
            return self.script[service].pop(0)
        return self.always_fail[service]

    def _answer(self, service: str, reply: Reply) -> web.Response:
        self.attempts.append(ChatAttempt(service, reply.status, time.monotonic()))
        self._arrived.set()
        if reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers,
                                text=f"scripted {reply.status}")
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    def _accept(self, service: str, payload: dict[str, Any], request: web.Request) -> None:
        self.messages.append(ChatMessage(service, payload, dict(request.headers),
                                         time.monotonic()))

    async def _json(self, request: web.Request) -> Any:
        if not request.content_type == "application/json":
            raise PayloadError(f"Content-Type {request.content_type!r} is not JSON")
        return json.loads(await request.text())

    async def _slack(self, request: web.Request) -> web.StreamResponse:
        scripted = self._scripted("slack")
        if scripted is not None:
            return self._answer("slack", scripted)
        try:
            payload = await self._json(request)
            check_slack(payload)
        except (PayloadError, ValueError) as exc:
            self.refusals.append(f"slack: {exc}")
            return self._answer_text("slack", 400, "invalid_payload")
        self._accept("slack", payload, request)
        return self._answer_text("slack", 200, "ok")

    def _answer_text(self, service: str, status: int, text: str) -> web.Response:
        self.attempts.append(ChatAttempt(service, status, time.monotonic()))
        self._arrived.set()
        return web.Response(status=status, text=text)

    async def _discord(self, request: web.Request) -> web.StreamResponse:
        scripted = self._scripted("discord")
        if scripted is not None:
            return self._answer("discord", scripted)
        try:
            payload = await self._json(request)
            check_discord(payload)
        except (PayloadError, ValueError) as exc:
            self.refusals.append(f"discord: {exc}")
            return self._answer("discord", Reply(400, body={"code": 50006,
                                                            "message": str(exc)}))
        self._accept("discord", payload, request)
        if self.discord_wait:
            return self._answer("discord", Reply(200, body={"id": str(len(self.messages))}))
        self.attempts.append(ChatAttempt("discord", 204, time.monotonic()))
        self._arrived.set()
        return web.Response(status=204)

    async def _telegram(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.telegram_token:
            return self._answer("telegram", Reply(401, body={
                "ok": False, "error_code": 401, "description": "Unauthorized"}))
        scripted = self._scripted("telegram")
        if scripted is not None:
            return self._answer("telegram", scripted)
        try:
            payload = await self._json(request)
            visible = check_telegram(payload)
        except (PayloadError, ValueError) as exc:
            self.refusals.append(f"telegram: {exc}")
            return self._answer("telegram", Reply(400, body={
                "ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}))
        self._accept("telegram", {**payload, "_visible_text": visible}, request)
        return self._answer("telegram", Reply(200, body={
            "ok": True, "result": {"message_id": len(self.messages),
                                   "chat": {"id": payload["chat_id"]},
                                   "date": int(time.time()), "text": visible}}))
