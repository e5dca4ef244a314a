"""The long fault run (soak): the CI scenarios with the issue's counts, one table each.

    .venv/bin/python -m tests.faults.soak --blocks 2000 --kill-points 20 --reorgs 10 \\
        --rpc-fault-rate 0.2 --broker-outage 30 --sink-outage 120

Starts its own Apache Kafka broker (and a private one for the outage) and fresh anvil nodes,
all on 127.0.0.1, under ``--workdir`` (kept afterwards: logs of every process and an
``outcome.json`` per scenario). Exit status 0 when every scenario passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from monitor.devservices import LocalAnvil, LocalKafka
from tests.faults import scenarios
from tests.faults.scenarios import Outcome, Services

SCENARIOS = ("kill", "reorg", "rpc", "broker", "sink")


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The soak's options."""
    parser = argparse.ArgumentParser(prog="python -m tests.faults.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=2000, help="replay length (kill -9)")
    parser.add_argument("--transfers", type=int, default=0,
                        help="transfers spread over the replay (default: blocks / 10)")
    parser.add_argument("--kill-points", type=int, default=20)
    parser.add_argument("--reorgs", type=int, default=10, help="reorgs of depth 1..5")
    parser.add_argument("--rpc-fault-rate", type=float, default=0.2)
    parser.add_argument("--rpc-transfers", type=int, default=80)
    parser.add_argument("--broker-outage", type=float, default=30.0, help="seconds")
    parser.add_argument("--sink-outage", type=float, default=120.0,
                        help="seconds: half HTTP 500, half connection refused")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--workdir", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected scenarios; print a table per scenario and a summary."""
    args = parse(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="chainwatch-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"chainwatch soak: seed {args.seed}, work directory {workdir}", flush=True)
    started: list[Any] = []

    def new_anvil(**kwargs: Any) -> LocalAnvil:
        kwargs.setdefault("log_path", workdir / f"anvil-{len(started)}.log")
        node = LocalAnvil(**kwargs)
        started.append(node)
        node.start()
        return node

    def new_kafka(**kwargs: Any) -> LocalKafka:
        broker = LocalKafka(workdir / f"kafka-private-{len(started)}", **kwargs)
        started.append(broker)
        broker.start()
        return broker

    broker = LocalKafka(workdir / "kafka")
    broker.start()
    outcomes: list[Outcome] = []
    began = time.monotonic()
    try:
        services = Services(bootstrap=broker.bootstrap, workdir=workdir, new_anvil=new_anvil,
                            new_kafka=new_kafka, seed=args.seed,
                            say=lambda text: print(text + "\n", flush=True))
        if "kill" in args.only:
            outcomes.append(scenarios.kill_points(
                services, blocks=args.blocks, transfers=args.transfers or args.blocks // 10,
                kills=args.kill_points))
        if "reorg" in args.only:
            outcomes += scenarios.reorgs(services, count=args.reorgs)
        if "rpc" in args.only:
            outcomes.append(scenarios.rpc_faults(services, rate=args.rpc_fault_rate,
                                                 transfers=args.rpc_transfers))
        if "broker" in args.only:
            outcomes.append(scenarios.broker_outage(
                services, outage_seconds=args.broker_outage,
                transfers=max(30, int(args.broker_outage * 2))))
        if "sink" in args.only:
            outcomes.append(scenarios.sink_outage(
                services, error_seconds=args.sink_outage / 2,
                refused_seconds=args.sink_outage / 2, transfers=10,
                max_attempts=max(10, int(args.sink_outage / 15) + 8)))
    finally:
        for service in reversed(started):
            service.stop()
        broker.stop()
    print(f"summary (seed {args.seed}, {time.monotonic() - began:.0f} s):")
    print(scenarios.summary(outcomes))
    failed = [o.scenario for o in outcomes if o.problems()]
    print("FAILED: " + ", ".join(failed) if failed else "all scenarios passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
