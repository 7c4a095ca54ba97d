"""Temporal localisation: window arithmetic, segment merging, and a trained PromptCLIP checkpoint finding the
segments of a long video made of clips of known classes and lengths."""

import json

import numpy as np
import pytest

from conftest import TINY_CONFIG
from media import write_video
from vidprompt.classifier import VideoClassifier, load_classifier
from vidprompt.errors import OptionValueError
from vidprompt.localization import Window, localize, merge_segments, plot_timeline, window_spans

COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
FPS = 10
# The long video: (class, seconds). Boundaries fall between window starts on purpose.
SEGMENTS = [("red", 6.3), ("blue", 4.4), ("green", 5.2), ("red", 3.6)]


def noisy_colour(rgb, n, rng):
    """A flat colour, brightness jittered per clip, with per-pixel noise in every frame."""
    base = np.asarray(rgb, float) * rng.uniform(0.7, 1.1)
    return np.clip(base + rng.normal(0, 12, (n, 32, 32, 3)), 0, 255).astype(np.uint8)


def test_windows_fit_in_the_video():
    assert window_spans(10.0, 2.0, 1.0) == [Window(k, k + 2.0) for k in range(9)]
    assert window_spans(10.5, 2.0, 1.0)[-2:] == [Window(8.0, 10.0), Window(8.5, 10.5)]  # the end is seen
    assert window_spans(7.9, 4.0, 4.0) == [Window(0.0, 4.0), Window(7.9 - 4.0, 7.9)]
    assert window_spans(9.0, 1.0, 5.0) == [Window(0.0, 1.0), Window(5.0, 6.0), Window(8.0, 9.0)]
    assert window_spans(1.5, 2.0, 1.0) == [Window(0.0, 1.5)]
    assert len(window_spans(600.0, 2.0, 0.5)) == 1197
    with pytest.raises(OptionValueError, match="^window must") as caught:  # the library names its parameter,
        window_spans(10.0, 0.0, 1.0)
    assert caught.value.for_flags().startswith("--window must")  # the CLI the flag
    with pytest.raises(OptionValueError, match="^stride must"):
        window_spans(10.0, 2.0, -1.0)


def test_merge_segments_tiles_the_video_with_background_below_the_threshold():
    windows = window_spans(8.0, 2.0, 1.0)  # 7 windows, centres 1..7
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.55, 0.45], [0.1, 0.9], [0.2, 0.8]])
    segments = merge_segments(windows, probs, ["a", "b"], duration=8.3)
    assert [(s.start, s.end, s.label, s.windows) for s in segments] == [
        (0.0, 2.5, "a", 2), (2.5, 4.5, "b", 2), (4.5, 5.5, "a", 1), (5.5, 8.3, "b", 2)]
    assert segments[0].score == pytest.approx(0.85) and segments[3].score == pytest.approx(0.85)
    gated = merge_segments(windows, probs, ["a", "b"], threshold=0.6, duration=8.3)
    assert [(s.start, s.end, s.label) for s in gated] == [
        (0.0, 2.5, "a"), (2.5, 4.5, "b"), (4.5, 5.5, None), (5.5, 8.3, "b")]
    assert gated[2].score == pytest.approx(0.55)  # background: mean of the best label's probability


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A PromptCLIP checkpoint trained on short noisy solid-colour clips (3 classes), and a long video made
    of segments of those colours."""
    from vidprompt.config import load_config
    from vidprompt.training import train

    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        for i in range(8):
            write_video(root / "train" / name / f"{i}.mp4", noisy_colour(rgb, 16, rng), fps=FPS)
    frames = np.concatenate([noisy_colour(COLOURS[name], int(round(seconds * FPS)), rng)
                             for name, seconds in SEGMENTS])
    long_video = write_video(root / "long.mp4", frames, fps=FPS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDPROMPT_CACHE_DIR", str(root / "cache"))
        cfg = load_config(None, None, data=str(root / "train"), model=str(TINY_CONFIG), pretrained="none",
                          epochs=10, batch_size=8, lr=3e-3, warmup_epochs=0.0, temporal_heads=4, val_fraction=0.0,
                          num_workers=0, device="cpu", out=str(root / "run"))
        summary = train(cfg, progress=False)
        assert summary["history"][-1]["train_loss"] < 0.2
        yield root / "run" / "last.safetensors", str(long_video)


def truth():
    ends = np.cumsum([seconds for _, seconds in SEGMENTS])
    return [name for name, _ in SEGMENTS], [0.0, *ends[:-1]], list(ends)


def check_segments(result, stride):
    labels, starts, ends = truth()
    assert [s.label for s in result.segments] == labels
    assert result.segments[0].start == 0.0 and result.segments[-1].end == pytest.approx(ends[-1])
    for segment, start, end in zip(result.segments, starts, ends):
        assert abs(segment.start - start) <= stride and abs(segment.end - end) <= stride, (segment, start, end)


def test_localize_recovers_the_segments_of_a_long_video(trained):
    checkpoint, video = trained
    clf = load_classifier(checkpoint=str(checkpoint), device="cpu", num_workers=0)
    result = localize(clf, video, window=2.0, stride=1.0)
    assert result.labels == ["blue", "green", "red"]  # the checkpoint's classes by default
    assert result.duration == pytest.approx(19.5) and result.fps == pytest.approx(FPS)
    assert len(result.windows) == 19 and result.probabilities.shape == (19, 3) and result.failed_windows == 0
    assert result.windows[-1].end == pytest.approx(19.5)  # the last half second is looked at too
    check_segments(result, stride=1.0)
    assert all(s.score > 0.6 for s in result.segments)


def test_a_stride_below_one_frame_is_warned_about_and_raised_to_one_frame(trained, caplog):
    from vidprompt.localization import SlidingWindows

    checkpoint, video = trained
    clf = load_classifier(checkpoint=str(checkpoint), device="cpu", num_workers=0)
    with caplog.at_level("WARNING", logger="vidprompt"):
        assert len(SlidingWindows(clf, video, window=2.0, stride=1.0)) == 19
        assert not caplog.records
        windows = SlidingWindows(clf, video, window=2.0, stride=0.01)
    frames = windows.timing.num_frames
    assert frames // 2 < len(windows) <= frames + 1 and "shorter than one frame" in caplog.text


def test_windows_decode_only_their_frames_and_workers_keep_time_order(trained, monkeypatch):
    checkpoint, video = trained
    from vidprompt.video.reader import VideoReader

    calls = []
    real = VideoReader.decode
    monkeypatch.setattr(VideoReader, "decode", lambda reader, idx: calls.append(idx.copy()) or real(reader, idx))
    clf = load_classifier(checkpoint=str(checkpoint), device="cpu", num_workers=0, batch_size=2)
    serial = localize(clf, video, window=1.5, stride=0.5)
    assert len(calls) == len(serial.windows) == 37
    for idx, win in zip(calls, serial.windows):  # one window's own frames, never more
        assert idx.size == 8 and round(win.start * FPS) <= idx.min() and idx.max() < round(win.end * FPS)
    check_segments(serial, stride=0.5)

    parallel = localize(VideoClassifier(clf.model, clf.view, device="cpu", num_workers=2, batch_size=2,
                                        default_labels=clf.default_labels), video, window=1.5, stride=0.5)
    assert np.array_equal(parallel.probabilities, serial.probabilities)
    from vidprompt.localization import SlidingWindows

    two_workers = VideoClassifier(clf.model, clf.view, device="cpu", num_workers=2, batch_size=2)
    order = [index for index, _, _ in SlidingWindows(two_workers, video, 1.5, 0.5).embeddings()]
    assert order == list(range(37))  # workers hand their windows back in time order
    assert [s.to_dict() for s in parallel.segments] == [s.to_dict() for s in serial.segments]


def test_cli_localize_json_and_plot(trained, tmp_path, monkeypatch):
    from test_index import cli

    checkpoint, video = trained
    monkeypatch.setenv("VIDPROMPT_CACHE_DIR", str(tmp_path / "cache"))
    plot = tmp_path / "timeline.png"
    code, stdout, stderr = cli("localize", video, "--checkpoint", checkpoint, "--window", "2", "--stride", "1",
                               "--json", "--plot", plot, "-q", "-j", "0")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert [s["label"] for s in data["segments"]] == truth()[0]
    assert len(data["windows"]) == 19 and len(data["windows"][0]["scores"]) == 3
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code, stdout, stderr = cli("localize", video, "--checkpoint", checkpoint, "--labels", "red,blue,green,purple",
                               "--threshold", "0.999", "-q", "-j", "0")
    assert code == 0, stderr
    assert "background" in stdout and "purple" in stdout and "start" in stdout

    code, _, stderr = cli("localize", video, "--model", TINY_CONFIG, "--pretrained", "none")
    assert code == 2 and "no labels" in stderr
    code, _, stderr = cli("localize", video, "--labels", "a,b", "--stride", "0", "--model", TINY_CONFIG)
    assert code == 2 and "--stride must be a positive number" in stderr


def test_plot_without_matplotlib_is_a_warning(trained, tmp_path, monkeypatch):
    import builtins

    checkpoint, video = trained
    clf = load_classifier(checkpoint=str(checkpoint), device="cpu", num_workers=0)
    result = localize(clf, video, window=4.0, stride=4.0)
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert plot_timeline(result, tmp_path / "t.png") is None and not (tmp_path / "t.png").exists()
