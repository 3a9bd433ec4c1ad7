"""``benchmarks/streaming.py --quick``: every row runs, the JSON has the targets, the page renders (slow tier; the
fast tier's stand-ins are tests/test_streaming.py, which run the same commands in-process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_streaming_benchmark_quick_writes_every_row_and_renders(tmp_path):
    out = tmp_path / "streaming.json"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "streaming.py"), "--quick", "--json", str(out)],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    names = [row["name"] for row in data["rows"]]
    assert names[1:] == ["map-style, in-memory teacher cache", "streamed shards, teacher on the fly",
                         "streamed shards + teacher store"]
    by = {row["name"]: row for row in data["rows"]}
    assert by["map-style, in-memory teacher cache"]["cache_teacher"] is True
    assert by["streamed shards + teacher store"]["data"]["teacher_store"]
    assert all(row["samples_per_s"] > 0 and row["peak_rss_mib"] > 0 for row in data["rows"])
    assert all(len(row["rounds"]) == 2 and min(row["rounds"]) <= row["samples_per_s"] <= max(row["rounds"])
               for row in data["rows"][1:])  # interleaved rounds; the row shows their median
    assert "rounds" in data["targets"][1]["shown"]
    assert [m["samples"] for m in data["memory"]] == [180, 1800]
    assert all(t["met"] is None for t in data["targets"])  # a quick run gives no verdict
    assert len(data["quality"]) == 4 and data["quality_summary"]["ways"].keys() == {"map-style", "streamed + store"}
    from benchmarks import render_pages as pages
    page = pages.render_streaming("streaming", data)
    assert "## Resident memory over one pass of the set" in page and "streamed shards + teacher store" in page
    assert "## The student each way, over 2 seeds" in page
