"""docs/benchmarks.md's summary reads figures from bench/results by key: every headline
must exist in the results committed today (a renamed key fails here, not in the doc)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def test_every_headline_is_in_the_results() -> None:
    results = {p.stem: json.loads(p.read_text()) for p in RESULTS.glob("*.json")}
    for headline in report.HEADLINES:
        value = report._lookup(results[headline.result], headline.key)
        assert isinstance(value, (int, float)), headline.what


def test_the_summary_says_whether_each_target_is_met() -> None:
    results = {p.stem: json.loads(p.read_text()) for p in RESULTS.glob("*.json")}
    rows = [line for line in report._summary(results) if line.startswith("| ") and
            not line.startswith("| what")]
    assert len(rows) == len(report.HEADLINES)
    assert all(row.rstrip(" |").endswith(("yes", "**no**")) for row in rows)
