"""The one decoding interface every backend implements: open a source, say how many frames it has and when
each is shown, decode a set of frame indices to uint8 RGB.

Frame ``i`` is the ``i``-th frame in presentation order, the same frame whichever backend decodes it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np
import torch

from ..errors import VideoError


class DecodeError(VideoError):
    """A backend could not open a source or decode the frames asked for (the next backend may)."""


@dataclass(frozen=True)
class VideoTiming:
    """When each frame is shown: ``timestamps[i]`` is frame ``i``'s presentation time in seconds from the
    first frame, and ``duration`` runs to the end of the last frame. Correct on variable frame rate."""

    timestamps: np.ndarray  # float64 [num_frames], non-decreasing, timestamps[0] == 0
    duration: float

    def __post_init__(self):
        if len(self.timestamps) < 1:
            raise VideoError("video has no frames")
        if not (self.duration > 0 and math.isfinite(self.duration)):
            raise VideoError("the video reports no duration, so its frames cannot be timed")

    @classmethod
    def constant_rate(cls, num_frames: int, fps: float) -> "VideoTiming":
        """Timing of a constant-frame-rate video (for containers that store no per-frame times)."""
        if not (fps > 0 and math.isfinite(fps)):
            raise VideoError("the video reports no frame rate, so its frames cannot be timed")
        return cls(np.arange(num_frames, dtype=np.float64) / fps, num_frames / fps)

    @property
    def num_frames(self) -> int:
        return len(self.timestamps)

    @property
    def fps(self) -> float:
        """Average frame rate over the whole video."""
        return self.num_frames / self.duration

    def frames_between(self, start: float, end: float) -> tuple[int, int]:
        """The frames shown in ``[start, end)`` seconds as an index range ``[first, stop)`` (at least one
        frame; times a microsecond early still count, so float rounding never drops a frame)."""
        eps = 1e-6
        first = int(np.searchsorted(self.timestamps, start - eps, side="left"))
        stop = int(np.searchsorted(self.timestamps, end - eps, side="left"))
        first = min(first, self.num_frames - 1)
        return first, min(max(stop, first + 1), self.num_frames)


class VideoReader(ABC):
    """An open video. Subclasses set ``backend`` and implement the three abstract members."""

    backend: ClassVar[str]

    def __init__(self, source: str):
        self.source = source

    @property
    @abstractmethod
    def num_frames(self) -> int:
        """Frames in the video, as the backend's index counts them."""

    @abstractmethod
    def timing(self) -> VideoTiming:
        """Per-frame presentation times (may read the container's index)."""

    @abstractmethod
    def _decode_sorted(self, indices: np.ndarray) -> torch.Tensor:
        """Decode sorted, unique, in-range ``indices`` -> uint8 ``[n, H, W, 3]`` RGB; raise
        :class:`DecodeError` when a frame does not decode."""

    def decode(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Frames ``indices`` (any shape, repeats allowed) -> uint8 ``[*indices.shape, H, W, 3]`` RGB, on the
        CPU or, for a GPU decoder, on its device."""
        indices = np.asarray(indices, dtype=np.int64)
        unique, inverse = np.unique(indices.reshape(-1), return_inverse=True)
        if len(unique) == 0:
            raise ValueError("no frames asked for")
        if unique[0] < 0 or unique[-1] >= self.num_frames:
            raise DecodeError(f"frame {int(unique[-1])} is outside the video's {self.num_frames} frames")
        frames = self._decode_sorted(unique)
        if len(unique) != indices.size or not np.array_equal(unique, indices.reshape(-1)):  # repeats, order
            index = torch.as_tensor(inverse.reshape(-1), device=frames.device)
            frames = torch.index_select(frames, 0, index)  # no copy when already sorted and unique
        return frames.reshape(*indices.shape, *frames.shape[1:])

    def close(self) -> None:
        """Release the file and decoder (also done when the reader is garbage-collected)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
