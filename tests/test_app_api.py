"""The web app's Python side without a browser: what it may read, what it offers, the models it keeps, the
classify and search jobs with their progress, and its refusals at start. (The page itself: test_app.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from media import solid_video, write_video
from vidprompt import app
from vidprompt.app import AppState, classify_video, search_index, timeline_windows
from vidprompt.errors import UsageError, VidpromptError
from vidprompt.video import window_spans


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_backbone):
    """A served folder: clips in sub-folders, a hidden one, other files, a checkpoint and a non-checkpoint
    safetensors file; and a file outside it."""
    from safetensors.torch import save_file

    from vidprompt.checkpoint import save_checkpoint
    from vidprompt.methods.promptclip import PromptCLIP
    from vidprompt.video import ViewConfig

    root = tmp_path_factory.mktemp("served")
    write_video(root / "red.mp4", solid_video((220, 30, 30), n=24, h=48, w=48))
    (root / "sub").mkdir()
    write_video(root / "sub" / "blue.MOV", solid_video((30, 30, 220), n=24, h=48, w=48))
    (root / ".cache").mkdir()
    write_video(root / ".cache" / "hidden.mp4", solid_video((30, 220, 30), n=8))
    write_video(root / "long.mp4", np.concatenate([solid_video((220, 30, 30), n=24, h=48, w=48),
                                                   solid_video((30, 30, 220), n=24, h=48, w=48)]), fps=2)
    (root / "notes.txt").write_text("not a video")
    (root / "runs" / "kitchen").mkdir(parents=True)
    model = PromptCLIP(tiny_backbone, temporal_layers=1, temporal_heads=4, max_frames=4)
    save_checkpoint(root / "runs" / "kitchen" / "best.safetensors", model, ViewConfig(frames=4),
                    ["whisking", "chopping"])
    save_file({"x": torch.zeros(2)}, root / "runs" / "kitchen" / "features.safetensors")
    outside = tmp_path_factory.mktemp("outside") / "secret.mp4"
    write_video(outside, solid_video((30, 30, 220), n=8))
    return root.resolve(), outside


@pytest.fixture
def state(library, tiny_config):
    return AppState([library[0]], model=tiny_config, pretrained="none", device="cpu")


def test_the_pickers_offer_the_folders_videos_and_vidprompt_checkpoints(library, state, monkeypatch):
    root, _ = library
    assert state.videos() == [(name, str(root / name)) for name in ("long.mp4", "red.mp4", "sub/blue.MOV")]
    assert state.models() == [("zero-shot vp-tiny (none)", ""),
                              ("runs/kitchen/best.safetensors (promptclip, 2 classes)",
                               str(root / "runs" / "kitchen" / "best.safetensors"))]
    monkeypatch.setattr(app, "LISTED", 2)  # a huge folder: the first few, in name order
    assert [shown for shown, _ in state.videos()] == ["long.mp4", "red.mp4"]
    two = AppState([root, root / "sub"])  # several folders: names say which
    assert [shown for shown, _ in two.videos()][:1] == [f"{root.name}/long.mp4"]


def test_only_files_inside_the_served_folders_are_read(library, state, tmp_path):
    root, outside = library
    assert state.allowed(root / "sub" / "blue.MOV") == root / "sub" / "blue.MOV"
    for sneaky in (outside, root / ".." / outside.parent.name / outside.name):
        with pytest.raises(UsageError, match="outside the folders this app serves"):
            state.allowed(sneaky)
    link = root / "link.mp4"
    link.symlink_to(outside)  # a link inside that points outside is outside
    try:
        with pytest.raises(UsageError, match="outside"):
            state.allowed(link)
    finally:
        link.unlink()
    with pytest.raises(UsageError, match="no such file"):
        state.allowed(root / "missing.mp4")
    with pytest.raises(UsageError, match="outside"):  # nor may a model file outside be picked
        state.classifier(str(outside))


def test_models_are_loaded_once_and_only_the_last_few_are_kept(library, state, monkeypatch):
    root, _ = library
    first = state.classifier()
    assert state.classifier("") is first
    checkpoint = str(root / "runs" / "kitchen" / "best.safetensors")
    picked = state.classifier(checkpoint)
    assert picked.default_labels == ["whisking", "chopping"] and state.classifier(checkpoint) is picked
    monkeypatch.setattr(app, "CACHED_MODELS", 1)
    state.classifier()
    assert list(state._loaded) == [""]  # the least recently used went
    with pytest.raises(VidpromptError) as caught:  # a Hub name is fetched (here: offline, not cached)
        state.classifier("hf-hub:nobody/nothing")
    assert "outside" not in str(caught.value)


def test_classify_a_short_video_and_a_long_one_with_its_timeline_and_progress(library, state):
    root, _ = library
    reports = []
    short = classify_video(state, None, str(root / "red.mp4"), "", "red, blue", 5,
                           report=lambda fraction, desc: reports.append((fraction, desc)))
    assert list(short.scores) == sorted(short.scores, key=short.scores.get, reverse=True)
    assert set(short.scores) == {"red", "blue"} and short.message.startswith("red.mp4: ")
    assert len(short.frames) == state.classifier().view.frames and short.frames[0].dtype == np.uint8
    assert short.timeline is None and short.segments == []
    assert [desc for _, desc in reports] == ["loading the model", "classifying", "reading the sampled frames"]

    reports.clear()
    long = classify_video(state, None, str(root / "long.mp4"), "", "red, blue", 1,
                          report=lambda fraction, desc: reports.append((fraction, desc)))
    assert len(long.scores) == 1 and long.message.endswith(" over 24 s") and "segment" in long.message
    assert Path(long.timeline).read_bytes().startswith(b"\x89PNG")
    assert long.segments[0][0] == 0.0 and long.segments[-1][1] == pytest.approx(24.0, abs=0.5)
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # the bar only moves forward
    assert reports[-2][1] == f"localising: {len(window_spans(24.0, 2.0, 1.0))}/23 windows"


def test_classify_refuses_what_it_cannot_do_with_one_message(library, state, tiny_config):
    root, _ = library
    with pytest.raises(UsageError, match="drop a video or pick one"):
        classify_video(state, None, "  ", "", "red", 5)
    with pytest.raises(UsageError, match="no labels"):  # zero-shot with no labels
        classify_video(state, None, str(root / "red.mp4"), "", "", 5)
    broken = root / "broken.mp4"
    broken.write_bytes(b"nope" * 100)
    try:
        with pytest.raises(VidpromptError, match="broken.mp4"):
            classify_video(state, None, str(broken), "", "red", 5)
    finally:
        broken.unlink()


def test_the_timeline_of_a_long_film_is_strided_to_a_bounded_number_of_windows():
    assert timeline_windows(24.0) == (2.0, 1.0)
    for hours in (0.5, 1, 2, 10):
        window, stride = timeline_windows(hours * 3600)
        assert window == 2 * stride and len(window_spans(hours * 3600, window, stride)) <= 1.05 * app.TIMELINE_WINDOWS


@pytest.fixture(scope="module")
def index(library, tmp_path_factory, tiny_config):
    from vidprompt import build_index, load_classifier

    root, outside = library
    clf = load_classifier(tiny_config, "none", device="cpu", num_workers=0)
    out = tmp_path_factory.mktemp("index") / "library.idx"
    build_index(out, [str(root / "red.mp4"), str(root / "sub" / "blue.MOV"), str(outside)], clf)
    return out.resolve()


def test_search_by_text_and_example_plays_only_served_files(library, state, index):
    root, outside = library
    state.indexes = [index]
    rows, players = search_index(state, str(index), "a red square", None, 10)
    assert sorted(row[2] for row in rows) == sorted([str(root / "red.mp4"), str(root / "sub" / "blue.MOV"),
                                                     str(outside)])
    assert [row[0] for row in rows] == [1, 2, 3] and rows[0][1] >= rows[1][1] >= rows[2][1]
    assert players.count("<video") == 2 and "outside the app's folders, not played" in players
    assert f"/gradio_api/file={root / 'sub' / 'blue.MOV'}#t=0.00" in players
    rows, _ = search_index(state, str(index), "", str(root / "red.mp4"), 1)  # by example: itself first
    assert rows[0][2] == str(root / "red.mp4") and rows[0][1] == pytest.approx(1.0, abs=1e-3)
    assert len(state._loaded) == 1  # the index's model, loaded once
    search_index(state, str(index), "blue", None, 3)
    assert len(state._loaded) == 1


def test_search_refuses_other_indexes_and_empty_queries(library, state, index):
    root, outside = library
    state.indexes = [index]
    with pytest.raises(UsageError, match="not an index this app serves"):
        search_index(state, str(root), "red", None, 5)
    with pytest.raises(UsageError, match="type a text query or pick an example video"):
        search_index(state, str(index), " ", "", 5)
    with pytest.raises(UsageError, match="outside"):
        search_index(state, str(index), "", str(outside), 5)


def test_the_app_refuses_a_bad_start_in_one_line_before_serving(library, tmp_path, tiny_config):
    from clirun import run_process

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    root, _ = library
    for args, expected in (([tmp_path / "nowhere"], "not a folder"),
                           ([root, "--index", tmp_path], "no index here"),
                           ([root, "--model", tmp_path / "missing.json"], "missing.json")):
        run = run_process(["app", *args, "--model", tiny_config, "--pretrained", "none"] if "--model" not in args
                          else ["app", *args, "--pretrained", "none"], env=env, workdir=tmp_path, timeout=120)
        assert run.code in (1, 2) and len(run.lines) == 1 and expected in run.stderr, run.stderr
