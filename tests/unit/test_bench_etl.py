"""The ethereum-etl stage always ends: done, stalled or out of time, with the reason."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from monitor.bench import ingest
from monitor.bench.data import ChainData


def _chain() -> ChainData:
    return ChainData(rpc_url="http://127.0.0.1:1", first_block=3, last_block=12,
                     transactions=10, expected={"native": 20}, token="0x" + "01" * 20,
                     splitter="0x" + "02" * 20)


def _fake_etl(tmp_path: Path, body: str) -> Path:
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "installed.ok").write_text("fake ethereum-etl\n")
    script = tmp_path / "venv" / "bin" / "ethereumetl"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def no_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    async def ensure_topics(*_: object) -> None:
        return None

    async def counts(*_: object) -> dict[str, int]:
        return dict.fromkeys(ingest.ETL_TOPICS, 0)

    monkeypatch.setattr("monitor.topics.ensure_topics", ensure_topics)
    monkeypatch.setattr(ingest, "_topic_counts", counts)


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, **kw: float
         ) -> ingest.RateResult:
    binary = _fake_etl(tmp_path, body)
    monkeypatch.setattr(ingest, "ensure_etl", lambda _cache: binary)
    work = Path("relative-etl-dir")
    monkeypatch.chdir(tmp_path)
    return asyncio.run(ingest.run_etl(_chain(), "127.0.0.1:9", work, tmp_path, 5, **kw))


def test_progress_file_is_found_when_the_work_dir_is_relative(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_kafka: None) -> None:
    # like ethereumetl: writes its progress file, given as passed, relative to its own cwd,
    # then keeps running (stream never ends by itself)
    body = ('file="$(echo "$@" | sed \'s/.*--last-synced-block-file \\([^ ]*\\).*/\\1/\')"\n'
            'for n in 7 12; do echo $n > "$file"; sleep 0.2; done\nexec sleep 60\n')
    result = _run(tmp_path, monkeypatch, body, timeout=20, stall_seconds=10)
    assert result.error is None, result.error
    assert result.blocks_per_second


def test_a_run_without_progress_is_stopped_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_kafka: None) -> None:
    result = _run(tmp_path, monkeypatch, "exec sleep 60\n", timeout=20, stall_seconds=0.5)
    assert result.error is not None
    assert "no progress for 0 s" in result.error or "no progress for 1 s" in result.error
    assert "last synced block none of 12" in result.error


def test_a_slow_run_is_stopped_at_the_time_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_kafka: None) -> None:
    body = ('file="$(echo "$@" | sed \'s/.*--last-synced-block-file \\([^ ]*\\).*/\\1/\')"\n'
            'n=3; while true; do echo $n > "$file"; n=$((n+1)); [ $n -gt 8 ] && n=8; '
            'sleep 0.1; echo 9 > "$file"; sleep 0.1; done\n')
    result = _run(tmp_path, monkeypatch, body, timeout=1.0, stall_seconds=30)
    assert result.error is not None and "range not finished in 1 s" in result.error
    assert "of 12" in result.error
