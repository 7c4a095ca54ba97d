"""Videos -> frames: which frame indices to take (sampling, views) and decoding them with decord.

Sampling is pure index arithmetic (testable without any video); decoding opens one ``VideoReader`` per
call, so it is safe inside forked DataLoader workers.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass

import numpy as np

from .errors import UsageError, VideoError

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".ts",
})
SAMPLING_MODES = ("segment", "dense")


@dataclass(frozen=True)
class ViewConfig:
    """Which views of a video to score: ``frames`` x ``clips`` (temporal) x ``crops`` (spatial).

    ``segment``: the clip is split into ``frames`` equal segments, one frame from each (TSN/PromptCLIP).
    ``dense``: ``frames`` frames ``stride`` apart in one window (AIM's 8x16, 16x8, 32x4).
    """

    frames: int = 8
    sampling: str = "segment"
    stride: int = 8
    clips: int = 1
    crops: int = 1

    def __post_init__(self):
        if self.frames < 1:
            raise UsageError(f"--frames must be at least 1 (got {self.frames})")
        if self.sampling not in SAMPLING_MODES:
            raise UsageError(f"--sampling must be one of {', '.join(SAMPLING_MODES)} (got '{self.sampling}')")
        if self.stride < 1:
            raise UsageError(f"--stride must be at least 1 (got {self.stride})")
        if self.clips < 1:
            raise UsageError(f"--clips must be at least 1 (got {self.clips})")
        if self.crops not in (1, 3):
            raise UsageError(f"--crops must be 1 or 3 (got {self.crops})")

    @property
    def num_views(self) -> int:
        return self.clips * self.crops

    def to_dict(self) -> dict:
        return asdict(self)


def segment_indices(num_frames: int, count: int, *, clip: int = 0, clips: int = 1,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """One frame per equal segment: the centre at test (shifted per temporal clip), random when training."""
    length = num_frames / count
    if rng is None:
        offsets = np.full(count, (clip + 0.5) / clips)
    else:
        offsets = rng.random(count)
    indices = np.floor((np.arange(count) + offsets) * length).astype(np.int64)
    return np.clip(indices, 0, num_frames - 1)


def dense_indices(num_frames: int, count: int, stride: int, *, clip: int = 0, clips: int = 1,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """``count`` frames ``stride`` apart; the window centred (or spread over clips) at test, random when
    training; a video shorter than the window repeats its last frame."""
    window = (count - 1) * stride + 1
    slack = max(num_frames - window, 0)
    if rng is not None:
        start = int(rng.integers(0, slack + 1))
    elif clips == 1:
        start = slack // 2
    else:
        start = int(round(clip * slack / (clips - 1)))
    return np.minimum(start + np.arange(count) * stride, num_frames - 1).astype(np.int64)


def sample_indices(num_frames: int, view: ViewConfig, rng: np.random.Generator | None = None) -> np.ndarray:
    """Frame indices ``[clips, frames]`` for a video of ``num_frames`` frames."""
    if num_frames < 1:
        raise VideoError("video has no frames")
    rows = []
    for clip in range(view.clips):
        if view.sampling == "segment":
            rows.append(segment_indices(num_frames, view.frames, clip=clip, clips=view.clips, rng=rng))
        else:
            rows.append(dense_indices(num_frames, view.frames, view.stride, clip=clip, clips=view.clips, rng=rng))
    return np.stack(rows)


@contextlib.contextmanager
def _quiet_native_stderr():
    """decord's C++ layer prints its own errors to fd 2; we report failures ourselves in one line."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _decord():
    import decord

    return decord


def decode_errors() -> tuple[type[BaseException], ...]:
    # decord raises RuntimeError and its own DECORDError, which is not a RuntimeError subclass.
    decord = _decord()
    return (RuntimeError, decord.DECORDError, ValueError, IndexError)


def open_video(path: str | os.PathLike):
    """A decord ``VideoReader`` (RGB, one decoding thread), or :class:`VideoError` with one clear line."""
    decord = _decord()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoError("file not found")
    if os.path.isdir(path):
        raise VideoError("is a folder, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoError("empty file")
    try:
        with _quiet_native_stderr():
            reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    except decode_errors():
        raise VideoError("not a readable video (unsupported, corrupt or truncated file)") from None
    if len(reader) < 1:
        raise VideoError("video has no frames")
    return reader


def _get_batch(reader, indices: np.ndarray) -> np.ndarray:
    with _quiet_native_stderr():
        return reader.get_batch([int(i) for i in indices]).asnumpy()


def read_frames(reader, indices: np.ndarray) -> np.ndarray:
    """Decode frames ``indices`` (any shape) -> uint8 ``[*indices.shape, H, W, 3]`` RGB."""
    flat = indices.reshape(-1)
    unique, inverse = np.unique(flat, return_inverse=True)
    frames = _get_batch(reader, unique)
    return frames[inverse].reshape(*indices.shape, *frames.shape[1:])


def decodable_length(reader, claimed: int) -> int:
    """A truncated file can claim more frames than it holds: find the last frame that decodes
    (binary search, a handful of seeks)."""
    lo, hi = 0, claimed - 1  # invariant: frames beyond hi are unknown-bad, lo is the last known-good
    try:
        _get_batch(reader, np.array([0]))
    except decode_errors():
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            _get_batch(reader, np.array([mid]))
            lo = mid
        except decode_errors():
            hi = mid - 1
    return lo + 1


def load_clip_frames(path: str | os.PathLike, view: ViewConfig,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """Decode the frames of every temporal clip of ``view``: uint8 ``[clips, frames, H, W, 3]``."""
    reader = open_video(path)
    num_frames = len(reader)
    try:
        return read_frames(reader, sample_indices(num_frames, view, rng))
    except decode_errors():
        pass
    # The container promised frames it does not have: sample again within what really decodes.
    usable = decodable_length(reader, num_frames)
    if usable < 1:
        raise VideoError("not a readable video (no frame decodes)")
    try:
        return read_frames(reader, sample_indices(usable, view, rng))
    except decode_errors():
        raise VideoError("corrupt video (frames fail to decode)") from None
    finally:
        del reader
