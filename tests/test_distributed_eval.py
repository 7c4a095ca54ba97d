"""`vidprompt eval` under torchrun on CPU (gloo): 2 processes give exactly the 1-process report, only
process 0 writes, and a run resumes across process counts in both directions."""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vidprompt import distributed

TINY = ["--model", str(__import__("conftest").TINY_CONFIG), "--pretrained", "none"]
PLOT = {"confusion_matrix.png"} if importlib.util.find_spec("matplotlib") else set()
OUTPUTS = {"run.json", "predictions.jsonl", "report.json", "per_class.csv", "top_confusions.csv",
           ".eval.lock"} | PLOT
VIDEOS = 13  # 3 classes x 4 clips + one corrupt file


@pytest.fixture(scope="module")
def env(torchrun_env):
    return torchrun_env


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from media import motion_class_folders

    root = motion_class_folders(tmp_path_factory.mktemp("motion"), per_class=4, n=16)
    labels = tmp_path_factory.mktemp("labels") / "labels.txt"
    labels.write_text("moving down\nmoving left\nmoving right\n")
    return root, labels


def eval_args(dataset, out: Path, batch_size: int = 2) -> list[str]:
    root, labels = dataset
    return ["eval", "--data", str(root), "--labels-file", str(labels), *TINY, "--frames", "4",
            "--batch-size", str(batch_size), "--num-workers", "0", "--out", str(out), "-q"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def single(args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidprompt", *args], capture_output=True, text=True,
                          timeout=180, env=env)


def torchrun(args, env, nproc: int = 2) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    return subprocess.run([*launcher, "-m", "vidprompt", *args], capture_output=True, text=True, timeout=240,
                          env=env)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def ranking(record: dict) -> tuple:
    return (record["index"], record.get("error"), record.get("truth_rank"),
            tuple(p["index"] for p in record.get("predictions", ())))


@pytest.fixture(scope="module")
def reference(dataset, env, tmp_path_factory):
    """One uninterrupted single-process run: (report, records by index)."""
    out = tmp_path_factory.mktemp("single") / "out"
    result = single(eval_args(dataset, out), env)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"videos": VIDEOS, "evaluated": VIDEOS - 1, "failed": 1, "missing": 0,
                                "not_run": 0}
    return report, {r["index"]: r for r in records(out)}


def test_two_processes_give_the_single_process_report(dataset, env, reference, tmp_path):
    out = tmp_path / "out"
    # batch 2: process 0 scores 7 videos (4 batches), process 1 scores 6 (3 batches): uneven on purpose
    result = torchrun(eval_args(dataset, out), env)
    assert result.returncode == 0, result.stderr
    report, by_index = reference
    assert json.loads((out / "report.json").read_text()) == report  # metrics, counts, config: all of it

    got = records(out)
    assert sorted(r["index"] for r in got) == list(range(VIDEOS))  # every video once
    assert sorted(map(ranking, got)) == sorted(map(ranking, by_index.values()))

    # only process 0 wrote: the usual files and nothing else (no per-rank parts, no temp files)
    assert {p.name for p in tmp_path.rglob("*") if p.is_file()} == OUTPUTS
    # and only process 0 printed: one summary, one warning each
    assert result.stdout.count("mean class accuracy") == 1
    assert result.stderr.count("1 of 13 videos could not be decoded") == 1
    assert result.stderr.count("--pretrained none builds random weights") == 1
    assert "2 processes (torchrun)" in result.stderr


def test_resume_across_process_counts(dataset, env, reference, tmp_path):
    report, _ = reference

    # 1. a single-process run killed after a few videos, finished by 2 processes
    out = tmp_path / "one_then_two"
    predictions = out / "predictions.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "vidprompt", *eval_args(dataset, out, batch_size=1)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (not predictions.exists() or len(predictions.read_text().splitlines()) < 3) \
            and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the eval finished before it could be killed"
    done = len(predictions.read_text().splitlines())
    assert 3 <= done < VIDEOS
    result = torchrun(eval_args(dataset, out), env)
    assert result.returncode == 0, result.stderr
    assert f"resuming: {done} of {VIDEOS} videos already in" in result.stderr
    assert sorted(r["index"] for r in records(out)) == list(range(VIDEOS))
    assert json.loads((out / "report.json").read_text()) == report

    # 2. a 2-process run stopped part way (its log cut after 5 records, the 6th torn), finished by 1 process
    out2 = tmp_path / "two_then_one"
    out2.mkdir()
    (out2 / "run.json").write_bytes((out / "run.json").read_bytes())
    lines = predictions.read_text().splitlines(keepends=True)
    (out2 / "predictions.jsonl").write_text("".join(lines[:5]) + lines[5][:20])
    result = single(eval_args(dataset, out2), env)
    assert result.returncode == 0, result.stderr
    assert f"resuming: 5 of {VIDEOS} videos already in" in result.stderr
    assert sorted(r["index"] for r in records(out2)) == list(range(VIDEOS))
    assert json.loads((out2 / "report.json").read_text()) == report


def test_helpers_without_torchrun(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert not distributed.launched() and not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
    assert distributed.is_main()
    assert str(distributed.init_from_env("cpu")) == "cpu"
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_object(5) == 5
    distributed.barrier()
    distributed.cleanup()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.launched() and (distributed.rank(), distributed.world_size()) == (1, 2)
    assert not distributed.is_main() and not distributed.is_distributed()  # not joined yet
