"""A real JSON-RPC server on 127.0.0.1 that answers from recorded node responses.

``RpcReplay(responses)`` serves ``{(method, canonical params JSON): result}``;
:meth:`RpcReplay.from_fixtures` loads what ``tests/fixtures`` holds: the Erigon recordings of
mainnet (``mainnet-rpc/*.json.gz``: block 18,000,000 with full transactions and its
``eth_getBlockReceipts``, a ``trace_block`` and a ``debug_traceBlockByNumber`` answer) and
ethereum-etl's ``web3_response.<method>_<params>.json`` files (blocks, per-transaction
receipts, parity and geth traces).

Answers, for single requests and batches alike:

- a recorded ``(method, params)`` → its result (params compared with hex strings lower-cased
  and, for ``debug_trace*``, the tracer options reduced to ``tracer``/``tracerConfig``);
- ``eth_getBlockByNumber(n, false)`` and ``eth_getBlockByHash`` derived from a recorded full
  block; ``latest``/``safe``/``finalized`` → the head block if recorded;
- ``eth_blockNumber`` → the highest recorded block (or ``head=``), ``eth_chainId`` →
  ``chain_id`` (1), ``net_version``;
- blocks, transactions and receipts not recorded → ``null`` (as a node that does not know
  them); ``eth_call`` → error -32000 (so token metadata decodes to ``None``); any other
  unrecorded request → error -32601 (so the connector falls back from
  ``eth_getBlockReceipts`` to per-transaction receipts).

Use it inside a running loop (``async with RpcReplay(...) as rpc``) or from synchronous
tests and subprocesses through a background thread (``with RpcReplay.from_fixtures() as
rpc: ... rpc.url``).
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tests.support.loopback import LoopThread, serve_in_thread

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

Key = tuple[str, str]

_HEX = re.compile(r"0[xX][0-9a-fA-F]*")
_NULL_WHEN_UNKNOWN = frozenset({"eth_getBlockByNumber", "eth_getBlockByHash",
                                "eth_getTransactionByHash", "eth_getTransactionReceipt"})
_HEAD_TAGS = frozenset({"latest", "safe", "finalized"})
_TRACERS = {"calltracer": "callTracer", "prestatetracer": "prestateTracer",
            "4bytetracer": "4byteTracer"}


@dataclass(frozen=True)
class RecordedError:
    """A recorded JSON-RPC error object, served instead of a result."""

    code: int
    message: str


def _canonical(value: Any) -> Any:
    if isinstance(value, str) and _HEX.fullmatch(value):
        return value.lower()
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def _reduce_tracer_options(method: str, params: list[Any]) -> list[Any]:
    """Keep only the options that shape a debug trace's answer."""
    if not method.startswith("debug_trace"):
        return params
    return [{k: v for k, v in p.items() if k in ("tracer", "tracerConfig")}
            if isinstance(p, dict) else p for p in params]


def request_key(method: str, params: Any) -> Key:
    """The index key of a request: method and canonical JSON of its parameters."""
    items = list(params) if isinstance(params, list | tuple) else ([] if params is None
                                                                   else [params])
    items = _reduce_tracer_options(method, _canonical(items))
    return method, json.dumps(items, sort_keys=True, separators=(",", ":"))


def _load_json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _params_from_name(args: str) -> list[Any] | None:
    """Parameters of an ethereum-etl ``web3_response.<method>_<args>.json`` file name."""
    tokens = args.split("_")
    params: list[Any] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("true", "false"):
            params.append(token == "true")
        elif token == "tracer" and i + 1 < len(tokens):
            params.append({"tracer": _TRACERS.get(tokens[i + 1], tokens[i + 1])})
            i += 1
        elif _HEX.fullmatch(token):
            params.append(token)
        else:
            return None
        i += 1
    return params


class RpcReplay:
    """A JSON-RPC endpoint on an ephemeral loopback port that answers from recordings."""

    def __init__(self, responses: Mapping[Key, Any] | None = None, *, head: int | None = None,
                 chain_id: int = 1) -> None:
        self.responses: dict[Key, Any] = {}
        self.chain_id = chain_id
        self._head = head
        self._lock = threading.Lock()
        self._requests: list[tuple[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._serving: LoopThread | None = None
        for (method, params_json), result in (responses or {}).items():
            self.add(method, json.loads(params_json), result)

    # --- recordings ---------------------------------------------------------------------------

    def add(self, method: str, params: Any, result: Any) -> None:
        """Record ``result`` (or a :class:`RecordedError`) for ``method(params)``."""
        self.responses[request_key(method, params)] = result
        if method in ("eth_getBlockByNumber", "eth_getBlockByHash") and isinstance(result, dict):
            self._derive_block_forms(result)

    def _derive_block_forms(self, block: dict[str, Any]) -> None:
        number, block_hash = block.get("number"), block.get("hash")
        txs = block.get("transactions")
        if not isinstance(number, str) or not isinstance(block_hash, str) \
                or not isinstance(txs, list):
            return
        full = bool(txs) and all(isinstance(tx, dict) for tx in txs)
        forms = [(full, block)]
        if full:
            forms.append((False, {**block, "transactions": [tx["hash"] for tx in txs]}))
        for flag, form in forms:
            for method, ref in (("eth_getBlockByNumber", number),
                                ("eth_getBlockByHash", block_hash)):
                self.responses.setdefault(request_key(method, [ref, flag]), form)
        if not txs:  # an empty block is the same in both forms
            for method, ref in (("eth_getBlockByNumber", number),
                                ("eth_getBlockByHash", block_hash)):
                self.responses.setdefault(request_key(method, [ref, True]), block)
                self.responses.setdefault(request_key(method, [ref, False]), block)

    @classmethod
    def from_fixtures(cls, root: Path = FIXTURES, **options: Any) -> RpcReplay:
        """Load every recorded response under ``root`` (see the module docstring)."""
        replay = cls(**options)
        for path in sorted((root / "mainnet-rpc").glob("*.json*")):
            replay.add_recordings(_load_json(path))
        for path in sorted(root.glob("ethereum-etl/**/web3_response.*.json")):
            replay.add_web3_response(path)
        return replay

    def add_recordings(self, recordings: Iterable[Mapping[str, Any]]) -> None:
        """Add ``[{"request": {...}, "response": {...}}]`` pairs (Erigon rpc-tests format)."""
        for item in recordings:
            request, response = item["request"], item["response"]
            if "error" in response and response["error"] is not None:
                error = response["error"]
                result: Any = RecordedError(int(error.get("code", -32000)),
                                            str(error.get("message", "")))
            else:
                result = response.get("result")
            self.add(request["method"], request.get("params", []), result)

    def add_web3_response(self, path: Path) -> bool:
        """Add one ethereum-etl ``web3_response.<method>_<params>.json``; False if unreadable."""
        name = path.name.removeprefix("web3_response.").removesuffix(".json")
        method, sep, rest = name.partition("_0x")
        if not sep:
            return False
        params = _params_from_name("0x" + rest)
        if params is None:
            return False
        self.add(method, params, _load_json(path).get("result"))
        return True

    @property
    def head(self) -> int:
        """``eth_blockNumber``: the given head, else the highest recorded block (0 if none)."""
        if self._head is not None:
            return self._head
        numbers = [int(result["number"], 16) for (method, _), result in self.responses.items()
                   if method == "eth_getBlockByNumber" and isinstance(result, dict)
                   and isinstance(result.get("number"), str)]
        return max(numbers, default=0)

    @property
    def requests(self) -> list[tuple[str, Any]]:
        """Every ``(method, params)`` served so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def methods(self) -> list[str]:
        """Methods of the requests served so far, in arrival order."""
        return [method for method, _ in self.requests]

    # --- answering ------------------------------------------------------------------------------

    def _result(self, method: str, params: list[Any]) -> Any:
        key = request_key(method, params)
        if key in self.responses:
            return self.responses[key]
        if method == "eth_blockNumber":
            return hex(self.head)
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "net_version":
            return str(self.chain_id)
        if method == "eth_getBlockByNumber" and params and params[0] in _HEAD_TAGS:
            return self._result(method, [hex(self.head), *params[1:]])
        if method in _NULL_WHEN_UNKNOWN:
            return None
        if method == "eth_call":
            return RecordedError(-32000, "execution reverted (eth_call not recorded)")
        return RecordedError(-32601, f"the method {method} does not exist/is not available "
                                     "(not recorded)")

    def answer(self, request: Any) -> dict[str, Any] | None:
        """The response object for one request object (``None`` for a notification)."""
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return {"jsonrpc": "2.0", "id": None,
                    "error": {"code": -32600, "message": "invalid request"}}
        method = request["method"]
        params = request.get("params", [])
        with self._lock:
            self._requests.append((method, params))
        if "id" not in request:
            return None
        result = self._result(method, params if isinstance(params, list) else [params])
        response: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        if isinstance(result, RecordedError):
            response["error"] = {"code": result.code, "message": result.message}
        else:
            response["result"] = result
        return response

    def answer_payload(self, payload: Any) -> Any:
        """The response to a whole HTTP body: one object, or a list for a batch."""
        if isinstance(payload, list):
            if not payload:
                return {"jsonrpc": "2.0", "id": None,
                        "error": {"code": -32600, "message": "empty batch"}}
            answers = [self.answer(item) for item in payload]
            return [a for a in answers if a is not None]
        return self.answer(payload)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return web.json_response({"jsonrpc": "2.0", "id": None,
                                      "error": {"code": -32700, "message": "parse error"}})
        answer = self.answer_payload(payload)
        if answer is None or answer == []:
            return web.Response(status=204)
        return web.json_response(answer)

    # --- serving in the caller's loop -----------------------------------------------------------

    async def start(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1 in the running loop."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(runner.addresses[0][1])
        self._runner = runner

    async def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The endpoint URL, e.g. ``http://127.0.0.1:41234/``."""
        if self._port is None:
            raise RuntimeError("RpcReplay is not started")
        return f"http://127.0.0.1:{self._port}/"

    # --- serving from a background thread -------------------------------------------------------

    def start_thread(self) -> None:
        """Serve from a background thread with its own loop; returns once the URL is known."""
        self._serving = serve_in_thread("rpc-replay", self.start)

    def stop_thread(self) -> None:
        """Stop the server and its thread (idempotent)."""
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop(self.close)

    def __enter__(self) -> Self:
        self.start_thread()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_thread()
