"""``chainwatch demo``: the whole pipeline on a local devnet, with a scripted seized wallet.

Starts anvil (1-second blocks) and the embedded Kafka broker, writes a configuration for the
devnet (with a small label list naming one address an exchange deposit), runs ``up``
(connector + worker + API), watches the seized wallet, replays the scenario of
:mod:`monitor.demo.scenario` and prints alerts as they fire: the seized wallet's movements,
the movements of the funds it tainted (follow the money), and the freeze-request trigger when
tainted funds reach the exchange deposit.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import sys
import time
import urllib.request
from collections.abc import Callable

import click
import yaml

from monitor.alertfeed import collect_alerts
from monitor.demo.devnet import DevnetDriver, SentTransfer
from monitor.demo.scenario import DEMO_CASE_ID, SEIZED_WALLET_LABEL, run_demo_scenario
from monitor.devservices import LocalAnvil, free_ports
from monitor.errors import ServiceError
from monitor.launcher import Launcher
from monitor.records import WatchEntry
from monitor.settings import EnvSettings, load_config
from monitor.sinks.console import format_alert, format_amount
from monitor.topics import Topics
from monitor.watchlist import WatchlistWriter

DEPOSIT_LABEL = f"{DEMO_CASE_ID}:split-3"  # the scenario's third payout goes here
DEMO_RULES = ["watched-address", "exchange-deposit", "mixer-deposit", "bridge-entry"]


def demo_config(rpc_url: str, ws_url: str, api_port: int, metrics_port: int) -> dict[str, object]:
    """Configuration of the demo: one devnet chain, label list, console sink, API."""
    return {
        "app_id": "chainwatch-demo",
        "chains": [{
            "name": "devnet", "chain_id": 31337, "rpc_urls": [rpc_url], "ws_url": ws_url,
            "confirmations": 1, "start_block": 0, "traces": "parity", "batch_size": 20,
            "poll_interval_seconds": 0.5, "metrics_port": metrics_port,
        }],
        "rules": [{"name": name} for name in DEMO_RULES],
        "lists": [{"name": "demo-exchange-deposits", "path": "exchange-deposits.json",
                   "format": "label-json", "category": "exchange-deposit",
                   "source": "chainwatch demo (made up)", "published": "2026-01-01"}],
        "sinks": [{"name": "console", "type": "console"}],
        "api": {"host": "127.0.0.1", "port": api_port},
    }


def expected_alerts(seized: str, deposit: str, splitter: str,
                    sent: list[SentTransfer]) -> set[tuple[str, str]]:
    """(rule, transfer id) of every alert the scenario must raise, worked out independently.

    The seized wallet's own movements; the splitter's payouts, because the seized wallet's
    ether made the splitter tainted (hop 1); and the payout into the exchange deposit, which
    is the freeze-request trigger.
    """
    expected: set[tuple[str, str]] = set()
    for t in sent:
        if seized in (t.from_address, t.to_address):
            expected.add(("watched-address", t.record_id("devnet")))
        elif t.from_address == splitter and t.kind == "internal":
            expected.add(("watched-address", t.record_id("devnet")))
            if t.to_address == deposit:
                expected.add(("exchange-deposit", t.record_id("devnet")))
    return expected


def _get(url: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url)  # noqa: S310 - loopback URL built here
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read()
    except OSError:
        return 0, b""


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise ServiceError(f"timed out after {timeout:.0f} s waiting for {what}")


def _metric_lines(body: bytes, names: tuple[str, ...]) -> list[str]:
    return [line for line in body.decode().splitlines()
            if line.startswith(names) and not line.startswith("#")]


def run_demo(env: EnvSettings, stay: bool, timeout: float) -> int:
    """Run the demo; returns the process exit code (0 when every expected alert arrived)."""
    state = env.state_dir / "demo"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    token = secrets.token_urlsafe(24)
    env = env.model_copy(update={"state_dir": state, "kafka_bootstrap": None})
    api_port, metrics_port = free_ports(2)
    anvil = LocalAnvil(block_time=1, log_path=state / "logs" / "anvil.log")
    click.echo("starting anvil devnet (1-second blocks) ...")
    anvil.start()
    launcher: Launcher | None = None
    try:
        driver = DevnetDriver(anvil.http_url)
        seized = driver.new_wallet(SEIZED_WALLET_LABEL)
        deposit = driver.new_wallet(DEPOSIT_LABEL)
        (state / "exchange-deposits.json").write_text(json.dumps(
            [{"address": deposit, "name": "Demo Exchange: deposit address"}]))
        config_path = state / "chainwatch.yaml"
        config_path.write_text(yaml.safe_dump(demo_config(anvil.http_url, anvil.ws_url,
                                                          api_port, metrics_port)))
        config = load_config(config_path)
        click.echo("starting Kafka (the first run resolves the official jars with Maven) ...")
        launcher = Launcher(str(config_path), config, env, log_dir=state / "logs",
                            extra_env={"CHAINWATCH_API_TOKEN": token})
        launcher.start()
        api = f"http://127.0.0.1:{api_port}"
        click.echo(f"connector and worker started; API on {api} (logs in {state / 'logs'})")
        _wait_for(lambda: _get(f"{api}/health")[0] == 200, "the worker to become ready", 180)

        entry = WatchEntry(chain="devnet", address=seized, case_id=DEMO_CASE_ID,
                           label="wallet seized by court order", category="seized",
                           source="demo", added_at=int(time.time()))
        asyncio.run(_watch(launcher.bootstrap, Topics.from_config(config).watchlist, [entry]))
        _wait_for(lambda: json.loads(_get(f"{api}/watchlist", token)[1] or b"{}")
                  .get("count") == 1, "the watch entry to reach the worker", 60)
        click.echo(f"watching seized wallet {seized} for case {DEMO_CASE_ID}; "
                   f"{deposit} is labelled an exchange deposit")

        scenario = run_demo_scenario(driver, seized)
        sent = [*scenario.setup_transfers, *scenario.transfers]
        expected = expected_alerts(seized, deposit, scenario.splitter, sent)
        click.echo(f"scenario sent {len(sent)} transfers; expecting {len(expected)} alerts:\n")
        alerts = asyncio.run(collect_alerts(
            launcher.bootstrap, Topics.from_config(config).alerts, len(expected), timeout,
            on_alert=lambda a: click.echo(format_alert(a))))
        got = {(a.rule, a.transfer_id) for a in alerts}
        freeze = [a for a in alerts if a.rule == "exchange-deposit"]
        for alert in freeze:
            amount = format_amount(alert.amount, alert.asset.decimals, alert.asset.symbol)
            click.echo(f"\nfreeze request: {amount} of case {DEMO_CASE_ID} funds reached "
                       f"exchange deposit {alert.to_address} in {alert.evidence.get('hops')} "
                       "hops:")
            for tx_hash, frm, to, amount, number in alert.evidence.get("path", []):
                click.echo(f"  block {number} {tx_hash} {frm} -> {to} {amount}")
        time.sleep(1.5)  # let the connector's metrics catch the last blocks
        _print_metrics(api, metrics_port)
        missing = sorted(expected - got)
        if missing:
            click.echo(f"\nmissing {len(missing)} alert(s): {missing}", err=True)
            return 1
        click.echo(f"\nall {len(expected)} expected alerts raised for case {DEMO_CASE_ID}.")
        if stay:
            (state / "api-token").write_text(token)
            (state / "api-token").chmod(0o600)
            click.echo(f"still running: API {api}, bearer token in {state / 'api-token'}; "
                       "Ctrl-C stops")
            try:
                while True:
                    time.sleep(1)
                    launcher.supervise_once()
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        click.echo("stopping ...", err=True)
        if launcher is not None:
            launcher.stop()
        anvil.stop()
        sys.stdout.flush()


def _print_metrics(api: str, metrics_port: int) -> None:
    click.echo("\nmetrics:")
    connector = _get(f"http://127.0.0.1:{metrics_port}/metrics")[1]
    worker = _get(f"{api}/metrics")[1]
    for line in _metric_lines(connector, ("chainwatch_blocks_ingested_total",
                                          "chainwatch_transfers_ingested_total")):
        click.echo(f"  connector  {line}")
    for line in _metric_lines(worker, ("chainwatch_alerts_raised_total",
                                       "chainwatch_transfers_screened_total",
                                       "chainwatch_sink_deliveries_total")):
        click.echo(f"  worker     {line}")


async def _watch(bootstrap: str, topic: str, entries: list[WatchEntry]) -> None:
    writer = WatchlistWriter(bootstrap, topic)
    await writer.start()
    try:
        await writer.put_many(entries)
    finally:
        await writer.stop()
