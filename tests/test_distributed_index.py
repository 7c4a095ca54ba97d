"""`vidprompt index` under torchrun on CPU (gloo): 2 processes build the 1-process index, only process 0
commits, and a build killed part way resumes under another process count without embedding a video twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from media import moving_square, solid_video, write_video
from test_distributed_eval import free_port
from vidprompt.index import VideoIndex

TINY = ["--model", str(__import__("conftest").TINY_CONFIG), "--pretrained", "none"]
# The real command with small pending chunks (2 videos), so a build can be killed between chunks.
SMALL_CHUNKS = ("import sys, vidprompt.index.build as build; build.CHUNK_VIDEOS = 2; from vidprompt.cli import main; "
                "sys.argv[0] = 'vidprompt'; main()")


@pytest.fixture(scope="module")
def env(torchrun_env):
    return torchrun_env


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """11 clips and a corrupt file: shards of uneven size, and a failure to report once."""
    root = tmp_path_factory.mktemp("library")
    for i, direction in enumerate(("left", "right", "down", "up") * 2):
        write_video(root / f"move{i}.mp4", moving_square(direction, n=12, size=32))
    for i, rgb in enumerate(((220, 30, 30), (30, 200, 40), (30, 40, 220))):
        write_video(root / f"solid{i}.mp4", solid_video(rgb, n=12))
    (root / "broken.mp4").write_bytes(b"not a video" * 50)
    return root


def index_args(library: Path, out: Path, quiet: bool = True) -> list[str]:
    return ["index", str(library), "--out", str(out), *TINY, "--frames", "4", "--batch-size", "2",
            "--num-workers", "0", "--window", "0.2", "--json", *(["-q"] if quiet else [])]


def single(args, env, small_chunks: bool = False, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    command = [sys.executable, "-c", SMALL_CHUNKS] if small_chunks else [sys.executable, "-m", "vidprompt"]
    if popen:
        return subprocess.Popen([*command, *args], env=env, start_new_session=True, **popen)
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=240, env=env)


def torchrun(args, env, nproc: int = 2, small_chunks: bool = False, **popen):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    if small_chunks:
        script = Path(env["VIDPROMPT_CACHE_DIR"]) / "small_chunks.py"
        script.write_text(SMALL_CHUNKS.replace("; ", "\n"))
        command = [*launcher, str(script), *args]
    else:
        command = [*launcher, "-m", "vidprompt", *args]
    if popen:
        return subprocess.Popen(command, env=env, start_new_session=True, **popen)
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def contents(out: Path) -> dict:
    """Everything an index holds, by video: entry (without its row numbers) and rows."""
    index = VideoIndex(out)
    videos = {v.path: ({k: x for k, x in v.entry.items() if k not in ("row", "windows")},
                       v.embedding.astype(np.float32), v.windows.astype(np.float32), v.window_times)
              for v in index.videos()}
    failed = sorted((e["path"], e["error"]) for e in index.videos(failed=True))
    meta = {k: v for k, v in index.meta.items() if k not in ("updated", "segments", "generation")}
    return {"videos": videos, "failed": failed, "meta": meta}


def assert_same(a: dict, b: dict) -> None:
    assert a["meta"] == b["meta"] and a["failed"] == b["failed"]
    assert list(a["videos"]) == list(b["videos"])  # the same videos, in the same order
    for path, (entry, clip, windows, times) in a["videos"].items():
        other = b["videos"][path]
        assert entry == other[0]
        np.testing.assert_allclose(clip, other[1], atol=2e-3, err_msg=path)  # batches differ: float tolerance
        np.testing.assert_allclose(windows, other[2], atol=2e-3, err_msg=path)
        assert np.array_equal(times, other[3])


@pytest.fixture(scope="module")
def reference(library, env, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "idx"
    result = single(index_args(library, out), env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["videos"] == 11 and len(summary["failed"]) == 1 and summary["embedded"] == 12
    return contents(out)


def test_two_processes_build_the_single_process_index(library, env, reference, tmp_path):
    out = tmp_path / "idx"
    result = torchrun(index_args(library, out), env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # process 0 alone printed
    assert summary["videos"] == 11 and summary["embedded"] == 12 and len(summary["failed"]) == 1
    assert_same(contents(out), reference)
    assert "2 processes (torchrun), each embedding about 6 of the 12 videos to go" in result.stderr
    assert result.stderr.count("--pretrained none builds random weights") == 1
    left = sorted(p.relative_to(out).parts[0] for p in out.rglob("*") if p.is_file())
    assert set(left) == {".build.lock", ".commit.lock", "index.json", "segments"}  # no pending chunks left

    again = torchrun(index_args(library, out), env)  # nothing new: nothing embedded, the index unchanged
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["embedded"] == 0
    assert_same(contents(out), reference)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun puts its workers in sessions of their own, out of reach of killpg)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_after_chunks(proc: subprocess.Popen, pending: Path, chunks: int) -> int:
    """SIGKILL the run and all its processes at once, as a power cut would, once ``chunks`` chunks are saved."""
    deadline = time.monotonic() + 180
    while len(list(pending.glob("chunk-*.npz"))) < chunks and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    for pid in [proc.pid, *_descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    time.sleep(0.2)
    return len(list(pending.glob("chunk-*.npz")))


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_a_killed_build_resumes_under_another_process_count(library, env, reference, tmp_path, first, then):
    out = tmp_path / "idx"
    args = index_args(library, out)
    start = torchrun if first == 2 else single
    proc = start(args, env, small_chunks=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chunks = _kill_after_chunks(proc, out / "pending", 2)
    assert chunks >= 2 and not (out / "index.json").exists(), "the build finished before it could be killed"
    done = sum(len(json.loads(np.load(p)["entries"].tobytes())) for p in (out / "pending").glob("chunk-*.npz"))
    assert 0 < done < 12

    result = (torchrun if then == 2 else single)(index_args(library, out, quiet=False), env)
    assert result.returncode == 0, result.stderr
    assert f"resuming: {done} videos already embedded" in result.stderr, result.stderr
    assert json.loads(result.stdout)["embedded"] == 12 - done  # nothing embedded twice
    assert_same(contents(out), reference)
