"""Shared fixtures: a tiny open_clip config with random weights (real architecture, real tokenizer)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).parent / "data"
TINY_CONFIG = DATA / "vp-tiny.json"


@pytest.fixture(scope="session")
def tiny_config() -> str:
    return str(TINY_CONFIG)


@pytest.fixture(scope="session")
def tiny_backbone():
    from vidprompt.backbone import build_backbone

    return build_backbone(str(TINY_CONFIG), "none")
