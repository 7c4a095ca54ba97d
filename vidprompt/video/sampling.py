"""Which frames to take from a video: segment or dense sampling, temporal clips, spatial crops.

Pure index arithmetic on a frame count, testable without any video; decoding lives in the backends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import OptionValueError, VideoError

SAMPLING_MODES = ("segment", "dense", "mmaction-dense", "mmaction-uniform")


# Bounds that keep the memory of one video's views independent of a mistyped value: the largest published
# protocols use 32 frames x 4 clips x 3 crops (384 images); 1,024 images of 224 x 224 are 150 MB as uint8.
MAX_FRAMES = 512
MAX_CLIPS = 64
MAX_IMAGES_PER_VIDEO = 1024


class ViewError(OptionValueError):
    """A view setting out of range (``field`` names it)."""


@dataclass(frozen=True)
class ViewConfig:
    """Which views of a video to score: ``frames`` x ``clips`` (temporal) x ``crops`` (spatial).

    ``segment``: the clip is split into ``frames`` equal segments, one frame from each (TSN/PromptCLIP).
    ``dense``: ``frames`` frames ``stride`` apart in one window (AIM's 8x16, 16x8, 32x4).
    ``mmaction-dense`` and ``mmaction-uniform``: mmaction2's ``SampleFrames`` (plain, and with
    ``frame_uniform``), which the published AIM models were tested with; see :func:`mmaction_dense_indices`
    and :func:`mmaction_uniform_indices`.
    """

    frames: int = 8
    sampling: str = "segment"
    stride: int = 8
    clips: int = 1
    crops: int = 1

    def __post_init__(self):
        for name in ("frames", "stride", "clips", "crops"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ViewError(name, f"{name} must be a whole number (got {value!r})")
        if not isinstance(self.sampling, str):
            raise ViewError("sampling", f"sampling must be a string (got {self.sampling!r})")
        if not 1 <= self.frames <= MAX_FRAMES:
            raise ViewError("frames", f"frames must be at least 1 and at most {MAX_FRAMES} (got {self.frames})")
        if self.sampling not in SAMPLING_MODES:
            raise ViewError("sampling", f"sampling must be one of {', '.join(SAMPLING_MODES)} "
                                        f"(got '{self.sampling}')")
        if self.stride < 1:
            raise ViewError("stride", f"stride must be at least 1 (got {self.stride})")
        if not 1 <= self.clips <= MAX_CLIPS:
            raise ViewError("clips", f"clips must be at least 1 and at most {MAX_CLIPS} (got {self.clips})")
        if self.crops not in (1, 3):
            raise ViewError("crops", f"crops must be 1 or 3 (got {self.crops})")
        images = self.frames * self.clips * self.crops
        if images > MAX_IMAGES_PER_VIDEO:
            raise ViewError("frames", f"frames x clips x crops = {self.frames} x {self.clips} x {self.crops} = "
                                      f"{images} images per video; at most {MAX_IMAGES_PER_VIDEO}")

    @classmethod
    def from_dict(cls, data: object) -> "ViewConfig":
        """Views stored in a file (a checkpoint, an index); any problem is a ``ValueError`` for the reader of
        that file to report with the file's name."""
        if not isinstance(data, dict):
            raise ValueError(f"views must be a mapping, not {type(data).__name__}")
        unknown = sorted(set(data) - {"frames", "sampling", "stride", "clips", "crops"})
        if unknown:
            raise ValueError(f"unknown view settings {unknown}")
        try:
            return cls(**data)
        except ViewError as exc:
            raise ValueError(f"view {exc}") from None

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


def mmaction_dense_indices(num_frames: int, count: int, stride: int, clips: int = 1,
                           rng: np.random.Generator | None = None) -> np.ndarray:
    """mmaction2's ``SampleFrames`` ``[clips, count]``, as the published AIM models were evaluated.

    At test, clip ``i`` starts at ``int(i * a + a / 2)`` with ``a = (num_frames - count * stride + 1) / clips``
    (all at 0 when the video is shorter than one window); in training, at a random offset inside its share.
    Indices past the end wrap around to the start (its ``loop`` option), where ``dense`` repeats the last
    frame and spreads clips from the first frame to the last."""
    span = count * stride
    if rng is None:
        share = (num_frames - span + 1) / clips
        starts = (np.arange(clips) * share + share / 2).astype(np.int64) if num_frames > span - 1 else \
            np.zeros(clips, np.int64)
    else:
        share = (num_frames - span + 1) // clips
        if share > 0:
            starts = np.arange(clips) * share + rng.integers(0, share, size=clips)
        elif num_frames > max(clips, span):
            starts = np.sort(rng.integers(0, num_frames - span + 1, size=clips))
        elif share == 0:
            starts = np.around(np.arange(clips) * ((num_frames - span + 1.0) / clips)).astype(np.int64)
        else:
            starts = np.zeros(clips, np.int64)
    return np.mod(starts[:, None] + np.arange(count)[None, :] * stride, num_frames).astype(np.int64)


def mmaction_uniform_indices(num_frames: int, count: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """mmaction2's ``SampleFrames(frame_uniform=True)`` (from SlowFast's Something-Something loader): ``count``
    spans of ``(num_frames - 1) / count`` frames with rounded ends; at test the middle of each span, in training a
    random frame of it (ends included). One clip: more temporal clips would repeat the same frames."""
    size = (num_frames - 1) / count
    starts = np.round(size * np.arange(count)).astype(np.int64)
    ends = np.round(size * np.arange(1, count + 1)).astype(np.int64)
    if rng is None:
        return (starts + ends) // 2
    return rng.integers(starts, ends + 1).astype(np.int64)


def sample_indices(num_frames: int, view: ViewConfig, rng: np.random.Generator | None = None) -> np.ndarray:
    """Frame indices ``[clips, frames]`` for a video of ``num_frames`` frames."""
    if num_frames < 1:
        raise VideoError("video has no frames")
    if view.sampling == "mmaction-dense":
        return mmaction_dense_indices(num_frames, view.frames, view.stride, view.clips, rng)
    if view.sampling == "mmaction-uniform":
        return np.stack([mmaction_uniform_indices(num_frames, view.frames, rng)] * view.clips)
    rows = []
    for clip in range(view.clips):
        if view.sampling == "segment":
            rows.append(segment_indices(num_frames, view.frames, clip=clip, clips=view.clips, rng=rng))
        else:
            rows.append(dense_indices(num_frames, view.frames, view.stride, clip=clip, clips=view.clips, rng=rng))
    return np.stack(rows)
