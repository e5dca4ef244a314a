"""The ``chainwatch`` command line: run the pipeline, manage the watchlist, read alerts."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
import msgspec

from monitor.errors import ChainwatchError, ConfigError, InputError, RuleError
from monitor.records import WatchEntry, normalize_address
from monitor.settings import ChainwatchConfig, EnvSettings, dump_config, load_config
from monitor.topics import Topics, ensure_topics

log = logging.getLogger("chainwatch")

DEFAULT_CONFIG = "chainwatch.yaml"


def setup_logging(level: str) -> None:
    """Log to stderr with timestamps; the level comes from ``CHAINWATCH_LOG_LEVEL``."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level.upper() == "INFO":
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
    from monitor.logfilter import install_repeat_collapser

    install_repeat_collapser()  # one line per 10 s for aiokafka's floods while the broker is down


class Context:
    """What every command needs: environment settings and, lazily, the configuration."""

    def __init__(self, config_path: str | None) -> None:
        self.env = EnvSettings()
        self.config_path = config_path or (str(self.env.config) if self.env.config else None) \
            or DEFAULT_CONFIG

    def config(self) -> ChainwatchConfig:
        """Load and validate the YAML configuration."""
        return load_config(self.config_path)

    def bootstrap(self, config: ChainwatchConfig) -> str:
        """Kafka bootstrap from the environment or the file, else a clear error."""
        bootstrap = self.env.kafka_bootstrap or config.kafka.bootstrap
        if not bootstrap:
            raise ConfigError(
                f"{self.config_path}: kafka.bootstrap is not set and CHAINWATCH_KAFKA_BOOTSTRAP "
                "is empty; set one, or use `chainwatch up`, which starts a local broker")
        return bootstrap


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@click.group()
@click.option("--config", "config_path", metavar="FILE", default=None,
              help=f"YAML configuration (default: $CHAINWATCH_CONFIG or ./{DEFAULT_CONFIG}).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """chainwatch: streaming transaction monitoring for virtual assets."""
    ctx.obj = Context(config_path)
    setup_logging(ctx.obj.env.log_level)


def main() -> None:
    """Console entry point: turns chainwatch errors into one clear line and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ChainwatchError as exc:
        click.echo(f"chainwatch: {exc}", err=True)
        sys.exit(2)


# --- configuration --------------------------------------------------------------------------

@cli.group("config")
def config_group() -> None:
    """Check and print configuration."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def config_check(obj: Context, file: str) -> None:
    """Validate FILE and print the effective configuration with secrets masked."""
    config = load_config(file)
    import rules  # noqa: F401 - registers the built-in rules
    from monitor.sinks.base import SinkContext, build_sinks
    from rules.base import RULES, build_rule

    for i, rule in enumerate(config.rules):
        try:
            build_rule(rule.name, rule.severity, rule.params)
        except RuleError as exc:
            key = "name" if rule.name not in RULES else "params"
            raise ConfigError(f"{file}: rules[{i}].{key}: {exc}") from None
    for i, sink in enumerate(config.sinks):
        try:
            # with the configured sinks policy, so chat URLs from the environment are checked
            build_sinks([sink], dict(os.environ), SinkContext.from_config(config, None))
        except ConfigError as exc:
            key = f"sinks[{i}].secret_env" if sink.secret_env else f"sinks[{i}]"
            raise ConfigError(f"{file}: {key}: {exc}") from None
    if config.lists:
        from monitor.lists.loader import build_index

        try:
            build_index(config.lists, Path(file).resolve().parent)
        except ConfigError as exc:
            raise ConfigError(f"{file}: {exc}") from None
    click.echo(dump_config(config, obj.env), nl=False)
    click.echo(f"# {file}: OK ({len(config.chains)} chain(s), {len(config.rules)} rule(s), "
               f"{len(config.sinks)} sink(s))", err=True)


# --- processes ------------------------------------------------------------------------------

@cli.command()
@click.pass_obj
def worker(obj: Context) -> None:
    """Run a screening/delivery worker with the HTTP API (Faust)."""
    import faust

    from monitor.app import build_runtime, create_app

    config = obj.config()
    bootstrap = obj.bootstrap(config)
    _run(ensure_topics(bootstrap, Topics.from_config(config).specs(),
                       config.kafka.replication_factor))
    runtime = build_runtime(config, obj.env, bootstrap, dict(os.environ),
                            base_dir=Path(obj.config_path).resolve().parent)
    app = create_app(runtime)
    faust.Worker(app, loglevel=obj.env.log_level,
                 redirect_stdouts=False).execute_from_commandline()


@cli.command()
@click.option("--chain", "chain_name", required=True, help="Chain name from the configuration.")
@click.pass_obj
def connector(obj: Context, chain_name: str) -> None:
    """Stream one chain's blocks into Kafka."""
    from connectors.runner import run_connector

    config = obj.config()
    config.chain(chain_name)
    bootstrap = obj.bootstrap(config)
    _run(ensure_topics(bootstrap, Topics.from_config(config).specs(),
                       config.kafka.replication_factor))
    _run(run_connector(config, chain_name, bootstrap))


@cli.command()
@click.pass_obj
def up(obj: Context) -> None:
    """Run everything: local broker (unless configured), connectors, worker and API."""
    from monitor.launcher import Launcher

    config = obj.config()
    Launcher(obj.config_path, config, obj.env).run_forever()


@cli.command()
@click.option("--stay", is_flag=True, help="Keep running after the scenario until Ctrl-C.")
@click.option("--timeout", default=120.0, show_default=True,
              help="Seconds to wait for the scenario's alerts.")
@click.pass_obj
def demo(obj: Context, stay: bool, timeout: float) -> None:
    """Start a local devnet and broker, run a scripted seized-wallet scenario, print alerts."""
    from monitor.demo.runner import run_demo

    sys.exit(run_demo(obj.env, stay=stay, timeout=timeout))


# --- watchlist --------------------------------------------------------------------------------

@cli.group()
def watch() -> None:
    """Add, list, remove and import watched addresses."""


async def _write_entries(bootstrap: str, topic: str, entries: list[WatchEntry]) -> int:
    from monitor.watchlist import WatchlistWriter

    writer = WatchlistWriter(bootstrap, topic)
    await writer.start()
    try:
        return await writer.put_many(entries)
    finally:
        await writer.stop()


def _prepare(obj: Context) -> tuple[ChainwatchConfig, str, Topics]:
    config = obj.config()
    bootstrap = obj.bootstrap(config)
    topics = Topics.from_config(config)
    _run(ensure_topics(bootstrap, topics.specs(), config.kafka.replication_factor))
    return config, bootstrap, topics


@watch.command("add")
@click.argument("address")
@click.option("--chain", required=True)
@click.option("--case", "case_id", required=True, help="Case id, e.g. CASE-2026-001.")
@click.option("--label", default="")
@click.option("--category", default="seized", show_default=True)
@click.pass_obj
def watch_add(obj: Context, address: str, chain: str, case_id: str, label: str,
              category: str) -> None:
    """Watch ADDRESS on a chain for a case."""
    from monitor.api import entry_from_body

    config, bootstrap, topics = _prepare(obj)
    config.chain(chain)
    entry = entry_from_body({"address": address, "chain": chain, "case_id": case_id,
                             "label": label, "category": category}, 0)
    entry = msgspec.structs.replace(entry, source="cli")
    _run(_write_entries(bootstrap, topics.watchlist, [entry]))
    click.echo(f"watching {entry.address} on {chain} for case {case_id}")


@watch.command("remove")
@click.argument("address")
@click.option("--chain", required=True)
@click.option("--case", "case_id", required=True)
@click.pass_obj
def watch_remove(obj: Context, address: str, chain: str, case_id: str) -> None:
    """Stop watching ADDRESS for a case."""
    from monitor.watchlist import WatchlistWriter

    config, bootstrap, topics = _prepare(obj)
    config.chain(chain)
    try:
        normalized = normalize_address(address)
    except ValueError as exc:
        raise InputError(str(exc)) from None

    async def remove() -> None:
        writer = WatchlistWriter(bootstrap, topics.watchlist)
        await writer.start()
        try:
            await writer.remove(chain, normalized, case_id)
        finally:
            await writer.stop()

    _run(remove())
    click.echo(f"removed {normalized} on {chain} from case {case_id}")


@watch.command("list")
@click.option("--chain", default=None)
@click.option("--case", "case_id", default=None)
@click.pass_obj
def watch_list(obj: Context, chain: str | None, case_id: str | None) -> None:
    """Print the watchlist as JSON lines."""
    from monitor.watchlist import WatchlistReplica

    _, bootstrap, topics = _prepare(obj)

    async def read() -> list[WatchEntry]:
        replica = WatchlistReplica(bootstrap, topics.watchlist)
        await replica.start()
        try:
            await asyncio.wait_for(replica.ready.wait(), 60)
            return list(replica.entries())
        finally:
            await replica.stop()

    for entry in sorted(_run(read()), key=lambda e: e.key):
        if (chain is None or entry.chain == chain) and (case_id is None
                                                         or entry.case_id == case_id):
            click.echo(msgspec.json.encode(entry).decode())


@watch.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--chain", default=None, help="Chain for rows without one.")
@click.option("--case", "case_id", default=None, help="Case id for rows without one.")
@click.option("--category", default=None)
@click.option("--label", default=None)
@click.pass_obj
def watch_import(obj: Context, file: str, chain: str | None, case_id: str | None,
                 category: str | None, label: str | None) -> None:
    """Import watch entries from CSV, JSON, JSON lines or TXT; bad rows are reported."""
    from monitor.watchlist_io import load_watchlist_file

    config, bootstrap, topics = _prepare(obj)
    defaults = {k: v for k, v in {"chain": chain, "case_id": case_id, "category": category,
                                  "label": label}.items() if v is not None}
    result = load_watchlist_file(Path(file), defaults)
    known = {c.name for c in config.chains}
    entries = [e for e in result.entries if e.chain in known]
    unknown = [e for e in result.entries if e.chain not in known]
    for e in unknown:
        click.echo(f"{file}: chain: unknown chain {e.chain!r} for {e.address} (case "
                   f"{e.case_id}); configured chains: {', '.join(sorted(known))}", err=True)
    for err in result.errors:
        click.echo(f"{err}", err=True)
    count = _run(_write_entries(bootstrap, topics.watchlist, entries))
    errors = result.error_count + len(unknown)
    click.echo(f"imported {count} entr{'y' if count == 1 else 'ies'} from {file}; "
               f"{errors} row error(s)")
    if errors:
        sys.exit(1)


# --- alerts -----------------------------------------------------------------------------------

@cli.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing new alerts.")
@click.option("--limit", default=20, show_default=True, help="How many recent alerts to show.")
@click.option("--json", "as_json", is_flag=True, help="Print raw JSON lines.")
@click.pass_obj
def alerts(obj: Context, follow: bool, limit: int, as_json: bool) -> None:
    """Print recent alerts from the alerts topic (and follow new ones)."""
    from monitor.alertfeed import print_alerts

    _, bootstrap, topics = _prepare(obj)
    _run(print_alerts(bootstrap, topics.alerts, limit, follow, as_json))


@cli.command()
@click.option("--chain", "chain_name", required=True, help="Chain name from the configuration.")
@click.option("--from", "start", type=int, required=True, help="First block (inclusive).")
@click.option("--to", "end", type=int, required=True, help="Last block (inclusive).")
@click.option("--watchlist", "watchlists", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False),
              help="Watch entries (CSV, JSON, JSON lines, TXT); repeatable. Added to the "
                   "configuration's watchlists.")
@click.option("--case", "case_id", default=None,
              help="Only this case; also the case of --watchlist rows without one.")
@click.option("--output", "-o", default="-", show_default=True, metavar="FILE|-",
              help="Where the alerts go as JSON lines; a file appears only when complete.")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
@click.pass_obj
def backtest(obj: Context, chain_name: str, start: int, end: int, watchlists: tuple[str, ...],
             case_id: str | None, output: str, no_progress: bool) -> None:
    """Screen blocks FROM..TO from the chain's nodes; no broker, no notifications.

    Alerts are sorted and carry the block time as detected_at, so the same blocks, watchlist
    and rules always give byte-identical output.
    """
    from monitor.backtest import backtest_to, check_range, load_watch_entries

    check_range(start, end)
    config = obj.config()
    config.chain(chain_name)
    entries = load_watch_entries(config, obj.config_path, chain_name, watchlists, case_id)
    summary = _run(backtest_to(config, chain_name, start, end, entries, output,
                               progress=not no_progress,
                               base_dir=Path(obj.config_path).resolve().parent))
    click.echo(summary.describe(), err=True)


@cli.command("kafka")
@click.option("--port", default=9092, show_default=True)
@click.pass_obj
def kafka_cmd(obj: Context, port: int) -> None:
    """Run the embedded single-node Kafka broker in the foreground."""
    import time

    from monitor.devservices.kafka import LocalKafka

    broker = LocalKafka(obj.env.state_dir / "kafka", port=port)
    broker.start()
    click.echo(f"Kafka listening on {broker.bootstrap}; Ctrl-C stops it", err=True)
    try:
        while broker.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()


@cli.command("devnet")
@click.option("--port", default=8545, show_default=True)
@click.option("--block-time", type=float, default=None, help="Seconds per block (default: a "
              "block per transaction).")
def devnet_cmd(port: int, block_time: float | None) -> None:
    """Run a local anvil devnet (chain id 31337) in the foreground."""
    import time

    from monitor.devservices.anvil import LocalAnvil

    node = LocalAnvil(port=port, block_time=block_time)
    node.start()
    click.echo(f"anvil listening on {node.http_url} and {node.ws_url}; Ctrl-C stops it",
               err=True)
    try:
        while node.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()


@cli.command("bench")
@click.option("--quick", is_flag=True, help="Tiny sizes (about a minute), no targets judged.")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every figure as JSON to this file.")
@click.pass_obj
def bench_cmd(obj: Context, quick: bool, json_out: Path | None) -> None:
    """Benchmark ingest, screening, latency and memory against same-run baselines."""
    from monitor.bench.runner import run_bench
    from monitor.devservices.kafka import default_cache_dir

    run_bench(quick=quick, state_dir=obj.env.state_dir / "bench", cache_dir=default_cache_dir(),
              bootstrap=obj.env.kafka_bootstrap, json_out=json_out)


if __name__ == "__main__":
    main()
