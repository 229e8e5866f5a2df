"""bench/gpu_check.py, the prepared check for the first GPU: its dry run (every part on the CPU, tiny settings)
writes every part's JSON and markdown with sane content, and a part that overruns its limit is stopped and
recorded while the next part still runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"
PARTS = ("device", "train-giant-1536", "train-public", "detect", "demo")


def run_check(out: Path, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def part(out: Path, index: int, name: str) -> tuple[dict, str]:
    stem = out / f"{index:02d}-{name}"
    return json.loads(stem.with_suffix(".json").read_text()), stem.with_suffix(".md").read_text()


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("gpu-check")
    return out, run_check(out)


def test_the_dry_run_writes_every_part_in_order_with_sane_figures(dry_run):
    out, done = dry_run
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"writing into {out.resolve()}" in done.stdout
    for index, name in enumerate(PARTS, start=1):
        result, markdown = part(out, index, name)
        assert result["part"] == name and result["status"] == "ok", (name, result)
        assert result["rows"] and result["wall_seconds"] <= result["limit_seconds"]
        assert markdown.startswith(f"### {name} (ok)") and "|---|" in markdown
        assert str(out / f"{index:02d}-{name}.json") in done.stdout
    device = part(out, 1, "device")[0]["rows"][0]
    assert device["device"] == "cpu" and device["matmul_TFLOPs"] > 0
    for index in (2, 3):
        for row in part(out, index, PARTS[index - 1])[0]["rows"]:
            # the CPU prediction counts the same step the tracker measures
            assert abs(row["allocated_error"]) <= 0.10 and row["max_memory_allocated_GiB"] > 0, row
            assert len(row["seconds_per_step"]) == 2 and all(s > 0 for s in row["seconds_per_step"])
    detect = part(out, 4, "detect")[0]["rows"][0]
    assert detect["video_seconds_per_second"] > 0 and 0 < detect["backbone_share_of_matmul_peak"]
    demo = part(out, 5, "demo")[0]["rows"][0]
    assert demo["wall_seconds"] > 0 and 0 <= demo["test_average_mAP"] <= 1


def test_a_part_over_its_limit_is_stopped_and_recorded_and_the_next_part_runs(tmp_path):
    done = run_check(tmp_path, "--parts", "detect", "device", "--limit", "detect=1")
    assert done.returncode == 0, done.stdout + done.stderr
    stopped, markdown = part(tmp_path, 4, "detect")
    assert stopped["status"] == "timeout" and stopped["limit_seconds"] == 1 and stopped["rows"] == []
    assert markdown.startswith("### detect (timeout)") and "limit 1 s" in markdown
    assert part(tmp_path, 1, "device")[0]["status"] == "ok"
    assert "detect: timeout" in done.stdout
