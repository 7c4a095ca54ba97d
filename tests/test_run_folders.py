"""Run folders are self-contained: killed at a random point, copied or moved elsewhere and resumed there, a
training run, an eval and an index end exactly as an uninterrupted run, and the original folder is untouched.

Property-style: the kill points are drawn (seeded, so a failure replays) from every point at which the
command writes a file or finishes a batch or chunk.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_CONFIG
from media import moving_square, solid_video, write_video

from killpoints import Killed, killed_after_write

DRAWS = 3  # kill points per command


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (lock files aside) -> its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def relocate(source: Path, target: Path, how: str) -> dict[str, str] | None:
    """Copy (``cp -a``) or move the folder; returns the copied original's snapshot to check it later."""
    if how == "move":
        shutil.move(source, target)
        return None
    shutil.copytree(source, target, symlinks=True)
    return snapshot(source)


def kill_relocate_resume(tmp_path: Path, points: int, seed: int, kill, resume, check) -> None:
    """For kill points drawn from ``1 .. points - 1``: ``kill(folder, point)`` a run in ``a<i>/``, copy or move
    it to ``b<i>/``, ``resume(b)`` there, ``check(b, a, why)``; the copied original must be unchanged."""
    rng = random.Random(seed)
    for draw, point in enumerate(rng.sample(range(1, points), DRAWS)):
        how = ("copy", "move")[draw % 2]
        first, second = tmp_path / f"a{draw}", tmp_path / f"b{draw}"
        with pytest.raises(Killed):
            kill(first, point)
        original = relocate(first, second, how)
        resume(second)
        check(second, first, (point, how))
        if original is not None:
            assert snapshot(first) == original, f"resuming the copy changed the original ({point}, {how})"
        else:
            assert not first.exists()


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    rng = np.random.default_rng(0)
    for name, direction in {"moving right": "right", "moving left": "left"}.items():
        for i in range(6):
            write_video(root / name / f"{direction}{i}.mp4", moving_square(direction, n=24, rng=rng))
    return root


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDPROMPT_CACHE_DIR", str(tmp_path / "cache"))


def test_training_killed_anywhere_then_copied_or_moved_resumes_exactly(motion, tmp_path, cache_dir):
    import vidprompt.training as train_module
    from vidprompt.checkpoint import read_checkpoint
    from vidprompt.config import load_config
    from vidprompt.training import train

    def config(out):
        return load_config(None, None, data=str(motion), model=str(TINY_CONFIG), pretrained="none", epochs=3,
                           batch_size=4, lr=1e-3, warmup_epochs=0.0, temporal_heads=4, frames=4, num_workers=0,
                           out=str(out))

    def run(out, kill_at=None):
        with killed_after_write(train_module, kill_at) as written:
            train(config(out), progress=False)
        return len(written)

    points = run(tmp_path / "straight")

    def resume(folder):
        summary = train(load_config(None, None, out=str(folder)), resume=True, progress=False)
        assert summary["out"] == str(folder) and summary["epochs"] == 3

    def check(folder, old, why):
        for name in ("best.safetensors", "last.safetensors"):
            info_a, a = read_checkpoint(tmp_path / "straight" / name)
            info_b, b = read_checkpoint(folder / name)
            assert info_a.extra == info_b.extra, (why, name)
            assert all(torch.equal(a[k], b[k]) for k in a), (why, name)
        assert (folder / "metrics.jsonl").read_text().count("\n") == 3
        assert str(old) not in (folder / "config.yaml").read_text()  # nothing points back at the old place

    kill_relocate_resume(tmp_path, points, 11, run, resume, check)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    for i in range(10):
        cls = ("red", "blue")[i % 2]
        colour = (200, 40 + 10 * i, 30) if cls == "red" else (30, 40 + 10 * i, 200)
        write_video(root / cls / f"{cls}{i}.mp4", solid_video(colour, n=12))
    return root


@pytest.fixture(scope="module")
def clf():
    from vidprompt.backbone import build_backbone
    from vidprompt.classifier import VideoClassifier
    from vidprompt.methods.zeroshot import ZeroShotCLIP
    from vidprompt.text_cache import TextEmbeddingCache
    from vidprompt.video import ViewConfig

    return VideoClassifier(ZeroShotCLIP(build_backbone(str(TINY_CONFIG), "none"), ["a video of {}."]),
                           ViewConfig(frames=2), device="cpu", batch_size=2, num_workers=0,
                           text_cache=TextEmbeddingCache(enabled=False))


def test_eval_killed_anywhere_then_copied_or_moved_resumes_exactly(library, clf, tmp_path):
    from vidprompt.datasets import load_dataset
    from vidprompt.evaluation import EvalRun

    dataset = load_dataset(None, data=str(library))

    def run(out, kill_after=None):
        run = EvalRun(clf, dataset, out, {"test": "run folders"})
        batches = []

        def progress(n):
            batches.append(n)
            if len(batches) == kill_after:
                raise Killed

        run.run(progress=progress)
        report = run.report()
        run.write_outputs(report)
        return report, len(batches)

    straight, points = run(tmp_path / "straight")

    def check(folder, old, why):
        report = json.loads((folder / "report.json").read_text())
        for key in ("metrics", "per_class", "confusion_matrix", "counts"):
            assert report[key] == straight[key], (why, key)
        assert (folder / "predictions.jsonl").read_text().count("\n") == len(dataset)

    kill_relocate_resume(tmp_path, points, 12, run, run, check)


def test_index_killed_anywhere_then_copied_or_moved_resumes_exactly(library, clf, tmp_path, monkeypatch):
    import vidprompt.index.build as index_build
    from vidprompt.index import VideoIndex, build_index
    from vidprompt.inputs import expand_inputs

    monkeypatch.setattr(index_build, "CHUNK_VIDEOS", 2)  # a chunk per batch: many points to be killed at
    paths = expand_inputs([str(library)])

    def run(out, kill_at=None):
        chunks = []

        def on_chunk(number):
            chunks.append(number)
            if len(chunks) == kill_at:
                raise Killed

        build_index(out, paths, clf, window=0.2, inputs=[str(library)], on_chunk=on_chunk)
        return len(chunks)

    points = run(tmp_path / "straight")
    straight = VideoIndex(tmp_path / "straight")

    def check(folder, old, why):
        index = VideoIndex(folder)
        videos, expected = list(index.videos()), list(straight.videos())
        assert [v.path for v in videos] == [v.path for v in expected]
        for got, want in zip(videos, expected):
            assert np.array_equal(got.embedding, want.embedding), why
            assert np.array_equal(got.windows, want.windows) and np.array_equal(got.window_times, want.window_times)
        meta = json.loads((folder / "index.json").read_text())
        assert meta["videos"] == len(paths) and str(old) not in json.dumps(meta)

    kill_relocate_resume(tmp_path, points, 13, run, run, check)
