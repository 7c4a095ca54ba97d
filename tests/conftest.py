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
