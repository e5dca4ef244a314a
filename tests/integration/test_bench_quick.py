"""`chainwatch bench --quick` runs end to end and prints every figure beside its baseline.

No timing thresholds: the quick mode only has to keep working (sizes are tiny).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROWS = [
    ("ingest: connector blocks/s", "raw batch fetch (node):"),
    ("ingest: connector blocks/s", "ethereum-etl stream:"),
    ("ingest: connector transfers/s", "raw batch fetch (node):"),
    ("ingest: connector transfers/s", "ethereum-etl stream:"),
    ("screening: worker transfers/s, 0 watched", "in-process screen_block"),
    ("screening: worker transfers/s, 1,000 watched", "in-process screen_block"),
    ("screening: worker transfers/s, 10,000 watched", "in-process screen_block"),
    ("latency: mined -> webhook p50/p95/p99", "Kafka round trip p50/p99:"),
    ("memory: worker RSS, 10,000 watched", "RSS with 0 watched:"),
]


@pytest.mark.timeout(400)
def test_bench_quick_prints_every_figure_and_baseline(kafka_bootstrap: str,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, CHAINWATCH_KAFKA_BOOTSTRAP=kafka_bootstrap,
               CHAINWATCH_STATE_DIR=str(tmp_path / "state"), CHAINWATCH_LOG_LEVEL="warning")
    done = subprocess.run([sys.executable, "-m", "monitor.cli", "bench", "--quick",
                           "--json-out", str(out)], env=env, capture_output=True, text=True,
                          timeout=380, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for measure, baseline in ROWS:
        row = next((line for line in lines if line.startswith(measure) and baseline in line),
                   None)
        assert row is not None, f"missing row {measure!r} with {baseline!r}:\n{done.stdout}"
        figure = row[len(measure):].split(baseline)[0].strip()
        assert figure and figure != "n/a", f"no figure in {row!r}"
        assert row.split(baseline, 1)[1].strip(), f"no baseline figure in {row!r}"
    assert "targets:" in done.stdout

    doc = json.loads(out.read_text())
    assert doc["mode"] == "quick"
    for key in ("machine", "sizes", "chain", "ingest", "screening", "latency", "memory",
                "targets"):
        assert key in doc, key
    for key in ("connector", "raw", "ethereum_etl"):
        result = doc["ingest"][key]
        assert result["blocks_per_second"] or result["error"], (key, result)
    assert doc["ingest"]["connector"]["blocks_per_second"]
    assert doc["ingest"]["raw"]["blocks_per_second"]
    assert set(doc["screening"]["runs"]) == {"0", "1000", "10000"}
    for run in doc["screening"]["runs"].values():
        assert run["transfers_per_second"], run
    for size in ("1000", "10000"):
        assert set(doc["screening"]["in_process"][size]) >= {"screen_block", "screener",
                                                             "decode"}
    lat = doc["latency"]
    assert lat["alerts"] >= 50, lat
    assert lat["rejected_signatures"] == 0
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        assert lat["latency"][key] is not None
        assert lat["kafka_round_trip"][key] is not None
    assert doc["memory"]["rss_mb"]["0"] and doc["memory"]["rss_mb"]["10000"]
    assert {t["target"] for t in doc["targets"]} and all(
        t["verdict"] == "(quick: not judged)" for t in doc["targets"])
