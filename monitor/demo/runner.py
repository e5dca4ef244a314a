"""``chainwatch demo``: the whole pipeline on a local devnet, with a scripted seized wallet.

Starts anvil (1-second blocks) and the embedded Kafka broker, writes a configuration for the
devnet, runs ``up`` (connector + worker + API), watches the seized wallet and a known money
mule, replays the scenario of :mod:`monitor.demo.scenario` and prints alerts as they fire.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import sys
import time
import urllib.request

import click
import yaml

from monitor.alertfeed import collect_alerts
from monitor.demo.devnet import DevnetDriver
from monitor.demo.scenario import DEMO_CASE_ID, SEIZED_WALLET_LABEL, run_demo_scenario
from monitor.devservices import LocalAnvil, free_ports
from monitor.errors import ServiceError
from monitor.launcher import Launcher
from monitor.records import WatchEntry
from monitor.settings import EnvSettings, load_config
from monitor.sinks.console import format_alert
from monitor.topics import Topics
from monitor.watchlist import WatchlistWriter

MULE_LABEL = f"{DEMO_CASE_ID}:split-1"


def demo_config(rpc_url: str, ws_url: str, api_port: int, metrics_port: int) -> dict[str, object]:
    """Configuration of the demo: one devnet chain, console sink, API on loopback."""
    return {
        "app_id": "chainwatch-demo",
        "chains": [{
            "name": "devnet", "chain_id": 31337, "rpc_urls": [rpc_url], "ws_url": ws_url,
            "confirmations": 1, "start_block": 0, "traces": "parity", "batch_size": 20,
            "poll_interval_seconds": 0.5, "metrics_port": metrics_port,
        }],
        "sinks": [{"name": "console", "type": "console"}],
        "api": {"host": "127.0.0.1", "port": api_port},
    }


def _get(url: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url)  # noqa: S310 - loopback URL built here
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read()
    except OSError:
        return 0, b""


def _wait_for(predicate: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
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
        config_path = state / "chainwatch.yaml"
        config_path.write_text(yaml.safe_dump(demo_config(anvil.http_url, anvil.ws_url,
                                                          api_port, metrics_port)))
        config = load_config(config_path)
        click.echo("starting Kafka (first run resolves the official jars with Maven) ...")
        launcher = Launcher(str(config_path), config, env, log_dir=state / "logs",
                            extra_env={"CHAINWATCH_API_TOKEN": token})
        launcher.start()
        api = f"http://127.0.0.1:{api_port}"
        click.echo(f"connector and worker started; API on {api} (logs in {state / 'logs'})")
        _wait_for(lambda: _get(f"{api}/health")[0] == 200, "the worker to become ready", 180)

        driver = DevnetDriver(anvil.http_url)
        seized = driver.new_wallet(SEIZED_WALLET_LABEL)
        mule = driver.new_wallet(MULE_LABEL)
        entries = [
            WatchEntry(chain="devnet", address=seized, case_id=DEMO_CASE_ID,
                       label="wallet seized by court order", category="seized",
                       source="demo", added_at=int(time.time())),
            WatchEntry(chain="devnet", address=mule, case_id=DEMO_CASE_ID,
                       label="suspected money mule", category="suspect", source="demo",
                       added_at=int(time.time())),
        ]
        asyncio.run(_watch(launcher.bootstrap, Topics.from_config(config).watchlist, entries))
        _wait_for(lambda: json.loads(_get(f"{api}/watchlist", token)[1] or b"{}")
                  .get("count") == len(entries), "the watch entries to reach the worker", 60)
        click.echo(f"watching seized wallet {seized} and mule {mule} for case {DEMO_CASE_ID}")

        scenario = run_demo_scenario(driver, seized)
        watched = {seized, mule}
        expected = [t for t in [*scenario.setup_transfers, *scenario.transfers]
                    if t.from_address in watched or t.to_address in watched]
        sent = len(scenario.setup_transfers) + len(scenario.transfers)
        click.echo(f"scenario sent {sent} transfers; expecting "
                   f"{len(expected)} alerts:\n")
        alerts = asyncio.run(collect_alerts(
            launcher.bootstrap, Topics.from_config(config).alerts, len(expected), timeout,
            on_alert=lambda a: click.echo(format_alert(a))))
        got = {a.transfer_id for a in alerts}
        missing = [t for t in expected if t.record_id("devnet") not in got]
        time.sleep(1.5)  # let the connector's metrics catch the last blocks
        click.echo("\nmetrics:")
        worker_metrics = _get(f"{api}/metrics")[1]
        connector_metrics = _get(f"http://127.0.0.1:{metrics_port}/metrics")[1]
        for line in _metric_lines(connector_metrics, ("chainwatch_blocks_ingested_total",
                                                      "chainwatch_transfers_ingested_total")):
            click.echo(f"  connector  {line}")
        for line in _metric_lines(worker_metrics, ("chainwatch_alerts_raised_total",
                                                   "chainwatch_transfers_screened_total",
                                                   "chainwatch_sink_deliveries_total")):
            click.echo(f"  worker     {line}")
        if missing:
            click.echo(f"\nmissing {len(missing)} alert(s): "
                       f"{[t.record_id('devnet') for t in missing]}", err=True)
            return 1
        click.echo(f"\nall {len(expected)} expected alerts raised for case {DEMO_CASE_ID}.")
        if stay:
            click.echo(f"still running: API {api}, bearer token {token[:4]}... written to "
                       f"{state / 'api-token'}; Ctrl-C stops")
            (state / "api-token").write_text(token)
            (state / "api-token").chmod(0o600)
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


async def _watch(bootstrap: str, topic: str, entries: list[WatchEntry]) -> None:
    writer = WatchlistWriter(bootstrap, topic)
    await writer.start()
    try:
        await writer.put_many(entries)
    finally:
        await writer.stop()

