"""The benchmark table: a figure that was not measured is never judged as met."""

from __future__ import annotations

from monitor.bench import report


def _doc(**memory: object) -> dict[str, object]:
    return {"mode": "full",
            "ingest": {"connector": {"blocks_per_second": 8.0, "transfers_per_second": 80.0},
                       "raw": {"blocks_per_second": 10.0, "transfers_per_second": 100.0},
                       "raw_sequential": {"blocks_per_second": 5.0,
                                          "transfers_per_second": 50.0},
                       "ethereum_etl": {"error": "ethereumetl stopped: no progress for 120 s; "
                                                 "last synced block none of 12"}},
            "screening": {"runs": {"0": {"transfers_per_second": 10.0},
                                   "1000000": {"transfers_per_second": 9.0}}},
            "memory": {"largest": "1000000", **memory}}


def _target(doc: dict[str, object], start: str) -> dict[str, object]:
    return next(t for t in report.evaluate(doc) if str(t["target"]).startswith(start))


def test_memory_of_a_worker_that_never_ran_is_not_measured() -> None:
    assert _target(_doc(rss_mb={"0": 0.0, "1000000": 0.0}), "memory")["verdict"] == \
        "not measured"
    assert _target(_doc(rss_mb={"0": 100.0, "1000000": 280.0}), "memory")["verdict"] == "met"


def test_ingest_rows_show_both_raw_baselines_and_the_etl_failure_reason() -> None:
    rows = report.rows(_doc(rss_mb={"0": 100.0, "1000000": 280.0},
                            after_screening_mb={"0": 110.0, "1000000": 400.0}))
    baselines = [r[2] for r in rows if r[0] == "ingest: connector blocks/s"]
    assert baselines[0] == "raw batch fetch (node): 10.0"
    assert baselines[1] == "raw fetch, one request at a time: 5.0"
    assert "no progress for 120 s" in baselines[2]
    assert _target(_doc(), "ingest >= 5")["verdict"] == "not measured"
    assert any(r[0].startswith("memory: RSS after screening") for r in rows)
