"""Training under torchrun: 2 CPU processes (gloo) train the same tensors as 1 process with the same global
batch, and only rank 0 writes the run folder."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import TINY_CONFIG
from media import moving_square, write_video
from vidprompt.checkpoint import read_checkpoint


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    rng = np.random.default_rng(0)
    for name, direction in (("moving right", "right"), ("moving left", "left")):
        for i in range(8):
            write_video(root / name / f"{i}.mp4", moving_square(direction, n=40, square=16, rng=rng))
    return root


def train_args(clips, out, batch_size, method="promptclip"):
    args = ["train-prompts", "--method", method, "--data", clips, "--model", TINY_CONFIG, "--pretrained", "none",
            "--epochs", "2", "--batch-size", str(batch_size), "--lr", "1e-3", "--set", "val_fraction=0",
            "--set", "warmup_epochs=0", "--num-workers", "0", "--out", out, "-q"]
    if method == "promptclip":
        args += ["--set", "temporal_heads=4"]
    else:
        args += ["--frames", "4", "--set", "drop_path=0"]
    return [str(a) for a in args]


def initial_tensors(method):
    """The trained tensors before any step (the trainer seeds the init with the run's seed, 0)."""
    from vidprompt.backbone import build_backbone
    from vidprompt.methods import build_method

    torch.manual_seed(0)
    hparams = {"temporal_heads": 4, "max_frames": 8} if method == "promptclip" else {"num_frames": 4,
                                                                                    "drop_path": 0.0}
    return build_method(method, build_backbone(str(TINY_CONFIG), "none"), **hparams).trainable_state()


def run(cmd, tmp_path, timeout=600):
    env = {**os.environ, "VIDPROMPT_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", ["promptclip", "aim"])
def test_two_processes_train_what_one_process_trains(clips, tmp_path, method):
    single = tmp_path / "single"
    double = tmp_path / "double"
    run([sys.executable, "-m", "vidprompt", *train_args(clips, single, 8, method)], tmp_path)
    launched = run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                    "--master-port", str(free_port()), "-m", "vidprompt",
                    *train_args(clips, double, 4, method)], tmp_path)
    assert launched.stdout.count('"epochs": 2') == 1  # rank 0 alone reports
    assert "global batch 8 = 4 per process x 2 processes x 1 accumulation steps" in launched.stderr
    init = initial_tensors(method)
    _, a = read_checkpoint(single / "last.safetensors")
    _, b = read_checkpoint(double / "last.safetensors")
    assert a.keys() == b.keys()
    # Adam normalises each gradient, so float-summation noise in near-zero gradients moves a parameter by up
    # to a fraction of one step (lr 1e-3): agreement is judged against how far training moved the tensors.
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    moved = max(float((a[k] - init[k]).abs().max()) for k in a)
    print(f"max |2 procs - 1 proc| = {diff:.2e}; max |trained - initial| = {moved:.2e}")
    assert diff < 0.05 * moved and diff < 2e-4
    assert sorted(p.name for p in double.iterdir()) == sorted(p.name for p in single.iterdir())


@pytest.mark.slow
def test_a_killed_single_process_run_resumes_under_torchrun(clips, tmp_path):
    import json
    import signal
    import time

    out = tmp_path / "run"
    args = train_args(clips, out, 4)
    args[args.index("--epochs") + 1] = "30"
    env = {**os.environ, "VIDPROMPT_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vidprompt", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "state.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    # state.pt is written before metrics.jsonl, so a kill can fall between them: count epochs from the state.
    done_before = torch.load(out / "state.pt", weights_only=True)["epoch"]
    assert 1 <= done_before < 30
    run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
         "-m", "vidprompt", "train-prompts", "--resume", str(out), "-q"], tmp_path)
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(1, 31))


@pytest.mark.slow
def test_a_rank_whose_whole_batch_fails_still_takes_part_in_the_step(clips, tmp_path):
    """AIM decodes as it trains: with one video per process per step, a corrupt file leaves one rank with
    nothing to train on. It must still join the gradient sync, or the ranks fall out of step and hang."""
    import shutil

    data = tmp_path / "data"
    for name in ("moving right", "moving left"):
        (data / name).mkdir(parents=True)
        for i in range(3):
            shutil.copy(clips / name / f"{i}.mp4", data / name / f"{i}.mp4")
    (data / "moving left" / "broken.mp4").write_bytes(b"not a video")  # 7 videos: one rank gets it
    out = tmp_path / "run"
    args = train_args(data, out, 1, "aim")
    args[args.index("--epochs") + 1] = "1"
    launched = run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                    "--master-port", str(free_port()), "-m", "vidprompt", *args], tmp_path,
                   timeout=180)  # out of step, the ranks would wait for each other forever
    assert '"epochs": 1' in launched.stdout
    assert (out / "last.safetensors").is_file()
