"""Memory of the watchlist index: RSS per million entries, measured in this process.

``python -m monitor.bench.memory [COUNT]`` fills a :class:`~monitor.watchlist.Watchlist` with
the benchmark's watch entries and prints the resident memory it added, per million entries.
"""

from __future__ import annotations

import gc
import sys
import time

from monitor.bench.screening import watch_entry
from monitor.bench.worker import proc_status
from monitor.watchlist import Watchlist


def watchlist_rss(count: int) -> dict[str, float]:
    """Fill a watchlist with ``count`` entries; return MB added and MB per million entries."""
    import os

    gc.collect()
    before = proc_status(os.getpid()).get("VmRSS", 0.0)
    watchlist = Watchlist()
    began = time.perf_counter()
    for i in range(count):
        watchlist.put(watch_entry(i))
    seconds = time.perf_counter() - began
    gc.collect()
    after = proc_status(os.getpid()).get("VmRSS", 0.0)
    added = after - before
    return {"entries": float(len(watchlist)), "rss_added_mb": round(added, 1),
            "mb_per_million": round(added * 1_000_000 / max(1, count), 1),
            "puts_per_second": round(count / seconds) if seconds > 0 else 0.0}


def main(argv: list[str] | None = None) -> None:
    """Print the RSS the index adds for COUNT (default 1,000,000) entries."""
    args = sys.argv[1:] if argv is None else argv
    count = int(args[0]) if args else 1_000_000
    print(watchlist_rss(count))


if __name__ == "__main__":
    main()
