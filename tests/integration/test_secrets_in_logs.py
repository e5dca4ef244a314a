"""Secrets never reach a log: a real worker and connector run with secrets and failing peers.

The worker and the connector run as ``chainwatch`` subprocesses against the session's Kafka
broker and a real anvil node, with every kind of secret in their environment or URLs: API
tokens, a webhook HMAC secret, an RPC URL carrying an API key in its path and query, a Slack
webhook URL, a Telegram bot token and an SMTP password. Then errors are provoked: the first RPC
endpoint refuses connections, the webhook answers 500, Slack, Telegram and SMTP are down, a
client sends a wrong token. Every captured log line, and ``chainwatch config check``'s output,
is searched for each secret value.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.demo.devnet import DevnetDriver
from monitor.devservices import free_ports
from tests.integration.harness import API_TOKEN, WEBHOOK_SECRET_ENV, Pipeline
from tests.support.receivers import ThreadedWebhookReceiver

pytestmark = pytest.mark.integration

RPC_PATH_KEY = "rpcpathkey7f3e9a1c5b"
RPC_QUERY_KEY = "rpcquerykey2d8c4b6e0f"
REFUSED_RPC_KEY = "refusedrpckey9a8b7c6d"
WEBHOOK_SECRET = "whsec-never-logged-4b1d"
WEBHOOK_QUERY_TOKEN = "hookquerytoken5e6f7a8b"
READ_TOKEN = "read-token-never-logged-77aa"
SLACK_SECRET = "slacksecretpart3c4d5e6f"
TELEGRAM_TOKEN = "4242424242:AAtelegramsecret1234567890abcd"
SMTP_PASSWORD = "smtp-password-never-logged-9e9e"
SECRETS = [API_TOKEN, READ_TOKEN, RPC_PATH_KEY, RPC_QUERY_KEY, REFUSED_RPC_KEY, WEBHOOK_SECRET,
           WEBHOOK_QUERY_TOKEN, SLACK_SECRET, TELEGRAM_TOKEN.split(":")[1], SMTP_PASSWORD]
CHAIN = "devnet"
ETHER = 10**18


class _KeyedRpcProxy(http.server.BaseHTTPRequestHandler):
    """Forwards JSON-RPC POSTs on any path (``/v3/<key>?apikey=<key>``) to anvil."""

    upstream = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = urllib.request.Request(self.upstream, data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            data = answer.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture()
def keyed_rpc(anvil: Any) -> Iterator[str]:
    handler = type("Handler", (_KeyedRpcProxy,), {"upstream": anvil.http_url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v3/{RPC_PATH_KEY}?apikey={RPC_QUERY_KEY}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SecretPipeline(Pipeline):
    """The harness pipeline with more secrets in its environment."""

    more_env: dict[str, str] | None = None

    def env(self) -> dict[str, str]:
        """The harness environment plus this test's secrets."""
        return {**super().env(), **(self.more_env or {})}


def test_no_secret_appears_in_any_log(tmp_path: Path, kafka_bootstrap: str, anvil: Any,
                                      keyed_rpc: str, unique_prefix: str) -> None:
    closed_rpc, closed_chat, closed_smtp = free_ports(3)  # nothing listens there
    driver = DevnetDriver(anvil.http_url)
    seized = driver.new_wallet("seized")
    receiver_wallet = driver.new_wallet("receiver")
    driver.fund(seized, 10 * ETHER)
    env = {"CHAINWATCH_API_READ_TOKEN": READ_TOKEN, "SLACK_URL":
           f"http://127.0.0.1:{closed_chat}/services/T000/B000/{SLACK_SECRET}",
           "TG_TOKEN": TELEGRAM_TOKEN, "SMTP_PASSWORD": SMTP_PASSWORD}
    with ThreadedWebhookReceiver(WEBHOOK_SECRET, always_fail=500) as hook:
        sinks = [
            {"name": "console", "type": "console"},
            {"name": "hook", "type": "webhook", "url": f"{hook.url}?token={WEBHOOK_QUERY_TOKEN}",
             "secret_env": WEBHOOK_SECRET_ENV, "max_attempts": 3},
            {"name": "slack", "type": "slack", "url_env": "SLACK_URL", "max_attempts": 2},
            {"name": "tg", "type": "telegram", "bot_token_env": "TG_TOKEN", "chat_id": 42,
             "api_url": f"http://127.0.0.1:{closed_chat}", "max_attempts": 2},
            {"name": "mail", "type": "email", "smtp_host": "127.0.0.1",
             "smtp_port": closed_smtp, "smtp_tls": "none", "smtp_username": "cw",
             "smtp_password_env": "SMTP_PASSWORD", "mail_from": "cw@example.org",
             "mail_to": ["unit@example.org"], "max_attempts": 2},
        ]
        pipeline = SecretPipeline(
            tmp_path / "pipeline", kafka_bootstrap, unique_prefix, keyed_rpc,
            webhook_secret=WEBHOOK_SECRET, more_env=env, extra={"sinks": sinks},
            chain={"rpc_urls": [f"http://127.0.0.1:{closed_rpc}/rpc/{REFUSED_RPC_KEY}",
                                keyed_rpc]})
        try:
            pipeline.start("worker")
            pipeline.start("connector")
            pipeline.wait_ready()
            pipeline.watch([{"chain": CHAIN, "address": seized, "case_id": "CASE-S"}])
            assert pipeline.request("POST", "/watchlist", {}, token="wrong-token")[0] == 401
            driver.send_native(seized, receiver_wallet, ETHER)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                logs = pipeline.logs()
                if len(hook.attempts) >= 3 and "sink mail" in logs and "sink tg" in logs \
                        and "sink slack" in logs and "JSON-RPC" in logs:
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"the failures were not provoked\n{pipeline.logs()}")
        finally:
            pipeline.stop()
        check = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "config", "check", str(pipeline.config_path)],
            env=pipeline.env(), capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stderr
    assert "/***" in check.stdout  # the keyed RPC URL is shown, redacted
    captured = {p.name: p.read_text(errors="replace") for p in tmp_path.rglob("*.log")}
    captured["config check"] = check.stdout + check.stderr
    assert any("HTTP 500" in text for text in captured.values())
    leaks = [(secret, name) for secret in SECRETS for name, text in captured.items()
             if secret in text]
    assert not leaks, f"secrets found in logs: {leaks}"
