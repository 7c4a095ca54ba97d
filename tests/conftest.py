"""Shared fixtures: a tiny open_clip config with random weights (real architecture, real tokenizer)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))  # tests/media.py

DATA = Path(__file__).parent / "data"
TINY_CONFIG = DATA / "vp-tiny.json"


@pytest.fixture(scope="session")
def tiny_config() -> str:
    return str(TINY_CONFIG)


@pytest.fixture(scope="session")
def tiny_backbone():
    from vidprompt.backbone import build_backbone

    return build_backbone(str(TINY_CONFIG), "none")


# Solid colours for index tests: videos a random-weights model still tells apart.
COLOURS = [(220, 30, 30), (30, 200, 40), (30, 40, 220), (230, 220, 30), (30, 210, 220), (210, 30, 200),
           (240, 240, 240), (90, 90, 90)]
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")


@pytest.fixture(scope="module")
def index_clf(tmp_path_factory):
    """The tiny model on CPU, batch 2, in-process decoding, with its own text cache (one per module)."""
    from vidprompt.classifier import load_classifier

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDPROMPT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield load_classifier(str(TINY_CONFIG), "none", device="cpu", num_workers=0, batch_size=2)


@pytest.fixture(scope="module")
def torchrun_env(tmp_path_factory) -> dict:
    """The environment for `torchrun` subprocesses: none of a surrounding run's variables, offline, one
    thread a process, a text cache of the module's own."""
    keep = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
    return {**keep, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "VIDPROMPT_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """A small library of real container files: several codecs, odd sizes, a very short and a long clip,
    plus broken files. Returns name -> path."""
    from media import frame_index_video, solid_video, write_video

    root = tmp_path_factory.mktemp("videos")
    made = {
        "index_mp4": write_video(root / "index.mp4", frame_index_video(40)),
        "index_mkv": write_video(root / "index.mkv", frame_index_video(40)),
        "index_avi": write_video(root / "index.avi", frame_index_video(40)),
        "index_webm": write_video(root / "index.webm", frame_index_video(40)),
        "index_mov": write_video(root / "index.mov", frame_index_video(40)),
        "odd_size": write_video(root / "odd_size.mp4", frame_index_video(24, h=38, w=66)),
        "portrait": write_video(root / "portrait.mp4", frame_index_video(24, h=96, w=40)),
        "short": write_video(root / "short.mp4", frame_index_video(2)),
        "long": write_video(root / "long.mp4", frame_index_video(1500, h=32, w=32), fps=50),
        "red": write_video(root / "red.mp4", solid_video((220, 30, 30))),
    }
    broken = root / "broken"
    broken.mkdir()
    data = made["index_mp4"].read_bytes()
    (broken / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (broken / "empty.mp4").write_bytes(b"")
    (broken / "notes.mp4").write_text("this is not a video\n")
    made.update({"truncated": broken / "truncated.mp4", "empty": broken / "empty.mp4",
                 "not_video": broken / "notes.mp4"})
    return {name: str(path) for name, path in made.items()}
