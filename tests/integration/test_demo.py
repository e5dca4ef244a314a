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
    assert len(alerts) == 5
    assert any("kind=internal" in a and "trace=[0]" in a for a in alerts)
    assert any("amount='2,500 tUSD'" in a for a in alerts)
    blocks = re.search(r'chainwatch_blocks_ingested_total\{chain="devnet"\} (\d+)', out)
    raised = re.search(r'chainwatch_alerts_raised_total\{rule="watched-address",'
                       r'severity="high"\} (\d+)', out)
    assert blocks and int(blocks.group(1)) > 0
    assert raised and int(raised.group(1)) == 5
    assert "all 5 expected alerts raised for case CASE-2026-001." in out
