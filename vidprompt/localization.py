"""When does each label happen in a long video: sliding windows, per-window scores, labelled segments.

    clf = load_classifier(checkpoint="runs/kitchen/best.safetensors")
    result = localize(clf, "cooking.mp4", window=2.0, stride=1.0, threshold=0.5)
    for seg in result.segments:
        print(f"{seg.start:6.1f} {seg.end:6.1f}  {seg.label or '(background)'}  {seg.score:.2f}")
    plot_timeline(result, "timeline.png")

Windows (:mod:`vidprompt.video.timing`) are ``window`` seconds long and start every ``stride`` seconds of
presentation time; a window holds the frames whose timestamps fall inside it, so windows stay right on
variable-frame-rate video. Each window is sampled like a whole clip (``clf.view``: ``frames`` frames per
temporal clip, segment or dense), decoded on its own and scored with the classifier. Memory stays flat in the
video's length: only a few batches of windows are decoded at a time (in DataLoader workers, shared out by
batch so they come back in order) and only the per-window scores are kept.

Segments: a window is labelled with its best label when that label's probability reaches ``threshold``,
else it is background (``label=None``); runs of equally labelled windows become one segment. Windows
overlap, so a segment's boundaries are the midpoints between the centres of the last window of one run
and the first of the next; the first segment starts at 0 and the last ends where the video ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .errors import VideoError, out_of_range
from .labels import no_labels
from .loader import VideoItem, default_num_workers
from .methods.base import view_probabilities
from .transforms import FramePreprocessor
from .video import (DecodeError, Decoder, VideoTiming, ViewConfig, Window, check_window, decodable_length,
                    probe_video, resolve_decoder, sample_indices, window_spans)

log = logging.getLogger(__name__)


# --- decoding and embedding windows ----------------------------------------------------------------------------

class WindowViews(IterableDataset):
    """The views of every window of one video, decoded window by window.

    Batches of ``batch_size`` consecutive windows are dealt to the DataLoader workers in turn (batch ``b`` to
    worker ``b % workers``), which is the order the DataLoader collects them in: windows come back in time
    order. Each worker keeps one reader open. A window that does not decode becomes an item with an error;
    past the last decodable frame of a truncated file, windows are sampled within what decodes.
    """

    def __init__(self, path: str, windows: Sequence[Window], timing: VideoTiming, view: ViewConfig,
                 preprocessor: FramePreprocessor, batch_size: int, decoder: Decoder | None = None):
        self.path = str(path)
        self.decoder = decoder or resolve_decoder("auto")
        self.threads = 0  # codec threads per reader; set by iterate_views for the number of workers
        self.windows = list(windows)
        self.timing = timing
        self.view = view
        self.preprocessor = preprocessor
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def num_batches(self) -> int:
        return -(-len(self.windows) // self.batch_size)

    def __iter__(self) -> Iterator[VideoItem]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        try:
            reader = self.decoder.open(self.path, threads=self.threads)
        except VideoError as exc:
            reader, opened = None, str(exc)
        usable = min(self.timing.num_frames, reader.num_frames) if reader is not None else 0
        try:
            for batch in range(worker, self.num_batches, workers):
                for index in range(batch * self.batch_size,
                                   min((batch + 1) * self.batch_size, len(self.windows))):
                    if reader is None:
                        yield VideoItem(index, self.path, None, opened)
                        continue
                    item, usable = self._decode(reader, index, usable)
                    yield item
        finally:
            if reader is not None:
                reader.close()

    def _decode(self, reader, index: int, usable: int) -> tuple[VideoItem, int]:
        window = self.windows[index]
        first, stop = self.timing.frames_between(window.start, window.end)
        for _ in range(2):
            if first >= usable:
                return VideoItem(index, self.path, None, "past the last frame that decodes"), usable
            stop = min(stop, usable)
            try:
                frames = reader.decode(sample_indices(stop - first, self.view) + first)
            except DecodeError:
                # The index promised frames that do not decode: find where decoding really ends, once.
                if usable < self.timing.num_frames:
                    break
                usable = decodable_length(reader)
                continue
            except Exception as exc:  # anything a broken file raises must not end the stream
                return VideoItem(index, self.path, None, f"cannot decode window ({type(exc).__name__})"), usable
            views = self.preprocessor(frames)  # [crops, clips, T, 3, h, w]
            return VideoItem(index, self.path, views.flatten(0, 1).contiguous(), decoder=reader.backend), usable
        return VideoItem(index, self.path, None, "frames fail to decode"), usable


class SlidingWindows:
    """The windows of one video and a stream of their embeddings.

        windows = SlidingWindows(clf, "match.mp4", window=2.0, stride=1.0)
        for index, emb, error in windows.embeddings():   # emb: [views, D] or None
            ...
    """

    def __init__(self, clf, path: str, window: float = 2.0, stride: float = 1.0,
                 timing: VideoTiming | None = None):
        check_window(window, stride)
        self.clf = clf
        self.path = str(path)
        self.window = float(window)
        self.stride = float(stride)
        try:
            self.timing = timing or probe_video(self.path, clf.decoder)
        except VideoError as exc:
            raise VideoError(f"{self.path}: {exc}") from None
        # Windows closer than one frame apart would see the same frames: at most one window starts per frame,
        # so the work (and the memory of the results) is set by the video, not by the value typed.
        frame = self.timing.duration / max(self.timing.num_frames, 1)
        if self.stride < frame and self.timing.duration > self.window:
            log.warning("warning: --stride %g s is shorter than one frame of %s (%.3g s); windows start one "
                        "frame apart instead", self.stride, self.path, frame)
            self.stride = frame
        self.windows = window_spans(self.timing.duration, self.window, self.stride)

    @property
    def duration(self) -> float:
        return self.timing.duration

    def __len__(self) -> int:
        return len(self.windows)

    def embeddings(self, progress: Callable[[int], None] | None = None, model=None,
                   ) -> Iterator[tuple[int, torch.Tensor | None, str | None]]:
        """Yield ``(window index, embeddings [views, D] or None, error or None)`` in time order (of ``model``,
        default the classifier's open-vocabulary model)."""
        clf = self.clf
        batch_size = clf.videos_per_batch(len(self.windows))
        dataset = WindowViews(self.path, self.windows, self.timing, clf.view, clf.preprocessor, batch_size,
                              clf.decoder)
        workers = default_num_workers() if clf.num_workers is None else clf.num_workers
        # One batch needs no worker process; more workers than batches would idle; a GPU decoder stays here.
        workers = 0 if dataset.num_batches < 2 or clf.decoder.on_gpu else min(workers, dataset.num_batches)
        for batch in clf.embedded(dataset, batch_size, workers, model, progress):
            for window in batch:
                yield window.index, window.embedding, window.error


# --- segments ---------------------------------------------------------------------------------------------------

@dataclass
class Segment:
    start: float
    end: float
    label: str | None  # None: background (no label reached the threshold)
    score: float  # mean probability of the label over the segment's windows (background: of the best label)
    windows: int = 1

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "label": self.label,
                "score": round(self.score, 6), "windows": self.windows}


def merge_segments(windows: Sequence[Window], probabilities: np.ndarray, labels: Sequence[str],
                   threshold: float = 0.0, duration: float | None = None) -> list[Segment]:
    """Runs of windows with the same label (best label if its probability >= ``threshold``, else
    background) -> segments that tile ``[0, duration]`` (default: the last window's end)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(windows) == 0:
        return []
    if probabilities.shape != (len(windows), len(labels)):
        raise ValueError(f"probabilities have shape {probabilities.shape}, expected "
                         f"({len(windows)}, {len(labels)})")
    best = probabilities.argmax(axis=1)
    top = probabilities.max(axis=1)
    assigned = np.where(top >= threshold, best, -1)
    end_of_video = windows[-1].end if duration is None else float(duration)
    segments = []
    first = 0
    for i in range(1, len(windows) + 1):
        if i < len(windows) and assigned[i] == assigned[first]:
            continue
        label = int(assigned[first])
        run = slice(first, i)
        score = probabilities[run, label].mean() if label >= 0 else top[run].mean()
        start = 0.0 if first == 0 else (windows[first - 1].centre + windows[first].centre) / 2
        end = end_of_video if i == len(windows) else (windows[i - 1].centre + windows[i].centre) / 2
        segments.append(Segment(start, end, labels[label] if label >= 0 else None, float(score), i - first))
        first = i
    return segments


@dataclass
class Localization:
    """Per-window probabilities over ``labels`` and the segments they give, for one video."""

    video: str
    duration: float
    fps: float
    window: float
    stride: float
    threshold: float
    labels: list[str]
    windows: list[Window]  # the windows that decoded, in time order
    probabilities: np.ndarray = field(repr=False)  # [windows, labels]
    segments: list[Segment]
    failed_windows: int = 0

    def to_dict(self, include_windows: bool = True) -> dict:
        out = {"video": self.video, "duration": round(self.duration, 3), "fps": round(self.fps, 3),
               "window": self.window, "stride": self.stride, "threshold": self.threshold,
               "labels": list(self.labels), "segments": [s.to_dict() for s in self.segments],
               "failed_windows": self.failed_windows}
        if include_windows:
            best = self.probabilities.argmax(axis=1) if len(self.windows) else []
            out["windows"] = [
                {"start": round(w.start, 3), "end": round(w.end, 3), "label": self.labels[int(b)],
                 "scores": [round(float(p), 6) for p in probs]}
                for w, b, probs in zip(self.windows, best, self.probabilities)]
        return out


def localize(clf, path: str, labels: Sequence[str] | None = None, *, window: float = 2.0, stride: float = 1.0,
             threshold: float = 0.0, progress: Callable[[int], None] | None = None,
             windows: SlidingWindows | None = None) -> Localization:
    """Score sliding windows of ``path`` against ``labels`` (default: a checkpoint's classes) and merge them
    into segments. Raises :class:`VideoError` when the video cannot be opened or no window decodes."""
    if not 0.0 <= threshold <= 1.0:
        raise out_of_range("threshold", threshold, "between 0 and 1")
    if labels is None:
        if not clf.default_labels:
            raise no_labels()
        labels = clf.default_labels
    labels = list(labels)
    model = clf.scorer(labels)
    text = clf.label_embeddings(labels, model)
    stream = windows or SlidingWindows(clf, path, window, stride)
    probabilities = np.zeros((len(stream), len(labels)), np.float32)
    ok = np.zeros(len(stream), bool)
    errors = []
    for index, emb, error in stream.embeddings(progress, model):
        if emb is None:
            errors.append((index, error))
            continue
        with torch.inference_mode():
            probs = view_probabilities(model, emb, text)
        probabilities[index] = probs.cpu().numpy()
        ok[index] = True
    if not ok.any():
        raise VideoError(f"{path}: no window decodes ({errors[0][1]})" if errors else f"{path}: no windows")
    kept = [w for w, good in zip(stream.windows, ok) if good]
    duration = stream.duration
    if not ok[-1]:  # a truncated file: the timeline ends where decoding ends
        duration = kept[-1].end
        log.warning("warning: %s: %d of %d windows do not decode; the timeline ends at %.1f s", path,
                    len(errors), len(stream), duration)
    probabilities = probabilities[ok]
    segments = merge_segments(kept, probabilities, labels, threshold, duration)
    return Localization(str(path), duration, stream.timing.fps, stream.window, stream.stride, threshold, labels,
                        kept, probabilities, segments, failed_windows=len(errors))


# --- plot -------------------------------------------------------------------------------------------------------

def plot_timeline(result: Localization, path: str | Path, title: str | None = None) -> Path | None:
    """A PNG: per-label probability curves over time (at window centres) above the segments as coloured
    bars. Returns ``None``, with a warning, when matplotlib is not installed."""
    from .fileio import atomic_write

    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("warning: matplotlib is not installed, so no %s was drawn (pip install 'vidprompt[plot]')",
                    Path(path).name)
        return None
    colours = plt.get_cmap("tab10" if len(result.labels) <= 10 else "tab20")
    colour = {label: colours(i % colours.N) for i, label in enumerate(result.labels)}
    width = min(max(8.0, result.duration / 10), 24.0)
    fig, (curves, bars) = plt.subplots(2, 1, figsize=(width, 4.5), sharex=True,
                                       gridspec_kw={"height_ratios": [3, 1]})
    try:
        centres = [w.centre for w in result.windows]
        for i, label in enumerate(result.labels):
            curves.plot(centres, result.probabilities[:, i], color=colour[label], label=label, linewidth=1.2)
        if result.threshold > 0:
            curves.axhline(result.threshold, color="grey", linestyle="--", linewidth=0.8, label="threshold")
        curves.set_ylim(0, 1)
        curves.set_ylabel("probability")
        curves.legend(loc="upper right", fontsize=8, ncol=min(len(result.labels) + 1, 4))
        curves.set_title(title or f"{Path(result.video).name}: {result.window:g} s windows every "
                                  f"{result.stride:g} s")
        for seg in result.segments:
            bars.broken_barh([(seg.start, seg.end - seg.start)], (0, 1),
                             facecolors=colour.get(seg.label, "lightgrey"), edgecolor="white")
            if seg.end - seg.start > result.duration / 30:
                bars.text((seg.start + seg.end) / 2, 0.5, seg.label or "background", ha="center", va="center",
                          fontsize=7, clip_on=True)
        bars.set_yticks([])
        bars.set_xlim(0, result.duration)
        bars.set_xlabel("time (s)")
        fig.tight_layout()
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)
