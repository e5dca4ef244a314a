"""Screening-only benchmark: worker transfers/s for one or more code trees, back to back.

``chainwatch bench`` measures everything (ingest, screening, latency, memory) in 7 to 12 minutes.
To work on the screening rate this runs only its screening stage, and can run it for several
source trees in alternation on the same broker and the same block messages, so that a change is
judged against the code before it under the same load (one command line)::

    python -m monitor.bench.compare --blocks-file /tmp/blocks.jsonl --rounds 2
        --tree before=/tmp/cw_before --tree after= --watched 0,1000

A tree is a directory holding ``monitor``, ``rules`` and ``connectors``; it is put first on the
worker's ``PYTHONPATH`` (empty: the installed code). The block messages come from the connector
on a prepared anvil chain, as in the full benchmark, and are kept in ``--blocks-file`` for the
next run. ``--py-spy DIR`` records each worker with py-spy (raw collapsed stacks) and prints
where the time went.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from monitor.bench.report import num
from monitor.bench.screening import ScreeningBench, replicate_blocks
from monitor.records import BLOCK_DECODER, encode


def _say(message: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_block_file(path: Path, bootstrap: str, workdir: Path, blocks: int,
                    txs_per_block: int) -> None:
    """Prepare an anvil chain, run the connector over it and keep its block messages."""
    from monitor.bench.data import ChainPreparer
    from monitor.bench.ingest import run_connector_once
    from monitor.devservices import LocalAnvil
    from monitor.topics import read_partition

    node = LocalAnvil(accounts=txs_per_block + 1, log_path=workdir / "anvil.log")
    node.start()
    try:
        _say(f"preparing {blocks} blocks x {txs_per_block} transactions on anvil")
        chain = ChainPreparer(node.http_url).prepare(blocks, txs_per_block)
        prefix = f"compare-{uuid.uuid4().hex[:6]}."
        result = asyncio.run(run_connector_once(chain, bootstrap, prefix, 10))
        if result.error:
            raise RuntimeError(result.error)
        raw = asyncio.run(read_partition(bootstrap, f"{prefix}blocks.bench",
                                         max_fetch_bytes=8 * 1024 * 1024))
    finally:
        node.stop()
    path.write_bytes(b"\n".join(raw) + b"\n")
    _say(f"{len(raw)} block messages written to {path}")


def _frame(text: str, with_line: bool) -> str:
    """``function (path/file.py:line)`` as ``function file.py[:line]``."""
    name, _, where = text.partition(" (")
    where = where.rstrip(")").rsplit("/", 1)[-1]
    return f"{name} {where if with_line else where.split(':')[0]}"


def profile_summary(collapsed: Path, top: int = 22) -> str:
    """Sample shares from py-spy's raw collapsed stacks (``--threads``), per thread.

    For the busiest thread: self time per source line and inclusive time per function.
    """
    threads: Counter[str] = Counter()
    stacks: dict[str, list[tuple[list[str], int]]] = {}
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0] if frames[0].startswith("thread ") else "?"
        threads[thread] += int(count_text)
        stacks.setdefault(thread, []).append((frames[1:] if thread != "?" else frames,
                                              int(count_text)))
    if not threads:
        return "no samples"
    total = sum(threads.values())
    lines = [f"{total} samples; per thread: " + ", ".join(
        f"{name} {100 * n / total:.0f}%" for name, n in threads.most_common())]
    busiest, samples = threads.most_common(1)[0]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks[busiest]:
        if frames:
            own[_frame(frames[-1], True)] += count
        for name in {_frame(f, False) for f in frames}:
            inclusive[name] += count
    lines.append(f"busiest thread ({busiest}), self time per line:")
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("inclusive time per function:")
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print one line per run and the best rate per tree and size."""
    parser = argparse.ArgumentParser(prog="python -m monitor.bench.compare",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", help="a running broker (default: start one)")
    parser.add_argument("--blocks-file", type=Path, required=True,
                        help="block messages, one per line; made (and kept) when missing")
    parser.add_argument("--chain-blocks", type=int, default=100)
    parser.add_argument("--txs-per-block", type=int, default=250)
    parser.add_argument("--count", type=int, default=1000, help="block messages per run")
    parser.add_argument("--watched", default="0,1000", help="comma-separated sizes")
    parser.add_argument("--tree", action="append", default=[],
                        help="NAME=DIR (DIR holds monitor/, rules/, connectors/; empty: installed)")
    parser.add_argument("--env", action="append", default=[],
                        help="NAME:KEY=VALUE, an environment variable for the workers of a tree")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--window", type=float, default=45.0)
    parser.add_argument("--py-spy", type=Path, default=None, help="directory for profiles")
    parser.add_argument("--py-spy-seconds", type=int, default=8)
    args = parser.parse_args(argv)
    trees = [t.partition("=")[::2] for t in args.tree] or [("current", "")]
    sizes = [int(s) for s in args.watched.split(",") if s]
    workdir = Path(tempfile.mkdtemp(prefix="compare-")).resolve()
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        from monitor.devservices import LocalKafka

        broker = LocalKafka(workdir / "kafka")
        broker.start()
        bootstrap = broker.bootstrap
    try:
        if not args.blocks_file.exists():
            make_block_file(args.blocks_file, bootstrap, workdir, args.chain_blocks,
                            args.txs_per_block)
        source = [BLOCK_DECODER.decode(line) for line in
                  args.blocks_file.read_bytes().splitlines() if line]
        source = [b for b in source if b.kind == "block"]
        bench = ScreeningBench(bootstrap, f"compare-{uuid.uuid4().hex[:6]}.",
                               workdir / "screening", "http://127.0.0.1:9")
        blocks = replicate_blocks(source, args.count)
        bench.raw = [encode(b) for b in blocks]
        bench.block_count = len(blocks)
        bench.transfer_count = sum(len(b.transfers) for b in blocks)
        bench._items = [(str(b.number).encode(), v) for b, v in zip(blocks, bench.raw,
                                                                    strict=True)]
        _say(f"{bench.transfer_count:,} transfers in {bench.block_count} block messages")
        best: dict[tuple[str, int], float] = {}
        for round_no in range(args.rounds):
            for name, tree in trees:
                for size in sizes:
                    env = {"PYTHONPATH": str(Path(tree).resolve())} if tree else {}
                    for item in args.env:
                        owner, _, pair = item.partition(":")
                        if owner == name:
                            key, _, value = pair.partition("=")
                            env[key] = value
                    spy = _spy(args.py_spy, f"{name}-{size}-r{round_no}",
                               args.py_spy_seconds)
                    run = bench.run_worker(size, uuid.uuid4().hex[:6], window=args.window,
                                           env=env or None, on_ready=spy.start if spy else None)
                    rate = run.transfers_per_second or 0.0
                    best[(name, size)] = max(best.get((name, size), 0.0), rate)
                    _say(f"round {round_no + 1} {name:>10} watched {size:>9,}: "
                         f"{num(rate)} transfers/s over {run.transfers:,} in "
                         f"{run.seconds:.1f} s{'' if run.steady else ' (not steady)'}; CPU "
                         f"{_us(run.cpu_us_per_transfer)} us/transfer, main thread "
                         f"{_us(run.main_cpu_us_per_transfer)}; RSS after "
                         f"{run.rss_after_mb:.0f} MB"
                         f"{'; ' + run.error if run.error else ''}")
                    if spy is not None:
                        print(spy.finish(), flush=True)
        _say("best per tree and size: " + "; ".join(
            f"{name} @{size:,}: {num(rate)}/s" for (name, size), rate in best.items()))
    finally:
        if broker is not None:
            broker.stop()
    return 0


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


class _Profiler:
    """py-spy recording one worker for a few seconds, started once the worker is ready."""

    def __init__(self, out: Path, seconds: int) -> None:
        self.out = out
        self.seconds = seconds
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, pid: int) -> None:
        """Begin recording ``pid`` (after a short delay, so blocks are arriving)."""
        self.proc = subprocess.Popen(  # noqa: S603 - fixed arguments, our own py-spy
            [str(Path(sys.executable).with_name("py-spy")), "record",
             "--pid", str(pid), "--duration", str(self.seconds), "--rate", "250",
             "--format", "raw", "--threads", "--output", str(self.out),
             "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self) -> str:
        """Wait for the recording and summarise it."""
        if self.proc is None:
            return "not recorded"
        self.proc.wait(timeout=self.seconds + 60)
        return profile_summary(self.out) if self.out.exists() else "no profile written"


def _spy(directory: Path | None, name: str, seconds: int) -> _Profiler | None:
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    return _Profiler(directory / f"{name}.txt", seconds)


if __name__ == "__main__":
    raise SystemExit(main())
