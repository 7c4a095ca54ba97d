"""`vidprompt eval` end to end: the real console script in subprocesses, including a SIGKILL mid-run."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = ["--model", str(__import__("conftest").TINY_CONFIG), "--pretrained", "none"]
PLOT = {"confusion_matrix.png"} if importlib.util.find_spec("matplotlib") else set()  # optional dependency
OUTPUTS = {"run.json", "predictions.jsonl", "report.json", "per_class.csv", "top_confusions.csv", ".eval.lock"}


def command() -> list[str]:
    exe = shutil.which("vidprompt", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "vidprompt"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return {**os.environ, "HF_HUB_OFFLINE": "1", "VIDPROMPT_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}


def vidprompt(*args, env, timeout=180):
    return subprocess.run([*command(), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def motion_dataset(tmp_path_factory):
    """3 classes x 6 clips of a square moving left/right/down, plus one file that is not a video."""
    from media import motion_class_folders

    return motion_class_folders(tmp_path_factory.mktemp("motion"), per_class=6, n=24)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_eval_kill_and_resume(motion_dataset, tmp_path, env):
    args = ["eval", "--data", motion_dataset, "--batch-size", "1", "--num-workers", "0", "--frames", "4", *TINY]

    # 1. an uninterrupted run: report on stdout (--json) and every file in --out
    full_dir = tmp_path / "full"
    full = vidprompt(*args, "--out", full_dir, "--json", env=env)
    assert full.returncode == 0, full.stderr
    report = json.loads(full.stdout)
    assert report == json.loads((full_dir / "report.json").read_text())
    assert OUTPUTS | PLOT == {p.name for p in full_dir.iterdir()}
    assert report["counts"] == {"videos": 19, "evaluated": 18, "failed": 1, "missing": 0, "not_run": 0}
    assert [f["video"] for f in report["failed"]] == [str(motion_dataset / "moving left" / "corrupt.mp4")]
    assert report["failed"][0]["error"].startswith("not a readable video (tried pyav: cannot open (invalid data")
    assert report["classes"] == ["moving down", "moving left", "moving right"]
    assert report["view"] == {"frames": 4, "sampling": "segment", "stride": 8, "clips": 1, "crops": 1}
    assert "1 of 19 videos could not be decoded" in full.stderr and "Traceback" not in full.stderr
    records = [json.loads(line) for line in lines(full_dir / "predictions.jsonl")]
    assert len(records) == 19
    scored = [r for r in records if "error" not in r]
    top1 = sum(r["truth_rank"] == 1 for r in scored) / len(scored)
    assert report["metrics"]["top1"] == pytest.approx(top1) and report["metrics"]["top_k"] == 3
    assert all(len(r["predictions"]) == 3 and r["truth_rank"] in (1, 2, 3) for r in scored)
    with open(full_dir / "per_class.csv", newline="") as handle:
        per_class = list(csv.DictReader(handle))
    assert [(row["class"], row["videos"]) for row in per_class] == [
        ("moving down", "6"), ("moving left", "6"), ("moving right", "6")]

    # 2. the same eval, killed once two predictions are on disk, then a torn line as if killed mid-write
    part_dir = tmp_path / "part"
    predictions = part_dir / "predictions.jsonl"
    proc = subprocess.Popen([*command(), *map(str, args), "--out", part_dir], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(lines(predictions)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the eval finished before it could be killed"
    done = len(lines(predictions))
    assert 2 <= done < 19 and not (part_dir / "report.json").exists()
    with predictions.open("a") as handle:
        handle.write('{"index": 18, "video": "/half/writ')

    # 3. rerun with the same --out: skips what is done, and --strict turns the failed video into exit 1
    resumed = vidprompt(*args, "--out", part_dir, "--strict", "-q", env=env)
    assert resumed.returncode == 1, resumed.stderr
    assert f"resuming: {done} of 19 videos already in" in resumed.stderr
    assert "dropped a partly written last line" in resumed.stderr
    indices = [json.loads(line)["index"] for line in lines(predictions)]
    assert sorted(indices) == list(range(19))  # every video once
    assert json.loads((part_dir / "report.json").read_text()) == report



def test_eval_kinetics_replica_reports_the_missing_clip(tmp_path, env):
    from media import solid_video, write_video

    root = tmp_path / "k400" / "val"
    rows = [("abseiling", "-_aB3_x-9Zq", 14, 24), ("zumba", "AbCdEfGhIjK", 0, 10),
            ("hurling (sport)", "x_y-z_1-2_3", 5, 15), ("zumba", "MiSsInG-_01", 1, 11)]
    for i, (label, youtube_id, start, end) in enumerate(rows[:3]):
        folder = root / label.replace(" ", "_").replace("(", "-").replace(")", "-")
        write_video(folder / f"{youtube_id}_{start:06d}_{end:06d}.mp4", solid_video((60 * i, 90, 200), n=12))
    annotations = tmp_path / "validate.csv"
    with annotations.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        writer.writerows([(*row, "val") for row in rows])

    out = tmp_path / "report"
    result = vidprompt("eval", "--dataset", "k400", "--root", root, "--annotations", annotations, *TINY,
                       "--template", "a video of {}.", "--frames", "2", "--out", out, "-q", env=env)
    assert result.returncode == 0, result.stderr
    assert "1 of 4 annotated videos not found" in result.stderr
    assert "top-1" in result.stdout and "mean class accuracy" in result.stdout
    assert "3 evaluated, 0 failed, 1 missing" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["missing"] == ["MiSsInG-_01_000001_000011"]
    assert report["counts"]["evaluated"] == 3 and report["dataset"]["classes"] == 400
    assert report["view"] == {"frames": 2, "sampling": "segment", "stride": 8, "clips": 3, "crops": 1}  # preset
    assert report["config"]["dataset"]["preset"] == "k400"
    assert OUTPUTS <= {p.name for p in out.iterdir()}
    assert not (out / "confusion_matrix.png").exists()  # 400 classes: the top-confusions table instead
    truths = {json.loads(line)["truth"] for line in lines(out / "predictions.jsonl")}
    assert truths == {"abseiling", "zumba", "hurling (sport)"}


def test_eval_usage_errors_come_before_any_model_loads(motion_dataset, tmp_path, env):
    """(A rerun into an --out folder that holds another evaluation is refused: tests/test_evaluate.py.)"""
    result = vidprompt("eval", "--frames", "2", *TINY, env=env)
    assert result.returncode == 2 and "nothing to evaluate" in result.stderr
    result = vidprompt("eval", "--data", tmp_path, "--crops", "2", *TINY, env=env)
    assert result.returncode == 2 and "--crops must be 1 or 3" in result.stderr
    subset = tmp_path / "classes.txt"
    subset.write_text("moving left\nmoving sideways\n")
    result = vidprompt("eval", "--data", motion_dataset, "--classes", subset, *TINY, env=env)
    assert result.returncode == 2 and "moving sideways" in result.stderr
    result = vidprompt("eval", "--dataset", "k400", "--root", tmp_path, *TINY, env=env)
    assert result.returncode == 2 and "annotations" in result.stderr
