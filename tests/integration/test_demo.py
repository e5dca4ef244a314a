"""The README's main command: ``chainwatch demo`` prints alerts and non-zero metrics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_prints_alerts_and_metrics(tmp_path: Path) -> None:
    env = dict(os.environ, CHAINWATCH_STATE_DIR=str(tmp_path / "state"))
    result = subprocess.run([sys.executable, "-m", "monitor.cli", "demo", "--timeout", "120"],
                            env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-5000:]
    alerts = [line for line in out.splitlines() if line.startswith("[HIGH] watched-address")]
    freeze = [line for line in out.splitlines() if line.startswith("[CRITICAL] exchange-deposit")]
    assert len(alerts) == 7 and len(freeze) == 1, out
    assert sum("kind=internal" in a for a in alerts) == 3  # the tainted splitter's payouts
    assert any("amount='2,500 tUSD'" in a for a in alerts)
    assert "freeze request:" in out and "in 2 hops:" in out
    blocks = re.search(r'chainwatch_blocks_ingested_total\{chain="devnet"\} (\d+)', out)
    raised = re.search(r'chainwatch_alerts_raised_total\{rule="watched-address",'
                       r'severity="high"\} (\d+)', out)
    assert blocks and int(blocks.group(1)) > 0
    assert raised and int(raised.group(1)) == 7
    assert "all 8 expected alerts raised for case CASE-2026-001." in out
