"""A video's time axis: when its frames are shown (:func:`probe_video`) and the sliding windows that cut it
into stretches of ``window`` seconds every ``stride`` seconds (:func:`window_spans`).

Pure arithmetic on presentation times, shared by localisation (scores per window) and the index (one
embedding per window), so both cut a video the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import out_of_range
from .decoders import Decoder, resolve_decoder
from .reader import VideoTiming


@dataclass(frozen=True)
class Window:
    start: float  # seconds
    end: float

    @property
    def centre(self) -> float:
        return (self.start + self.end) / 2


def check_window(window: float, stride: float, stride_name: str = "stride") -> None:
    """Refuse a window length or stride that is not a positive number of seconds; ``stride_name`` is the
    caller's parameter for the stride (the index calls it ``window_stride``)."""
    if not (window > 0 and math.isfinite(window)):
        raise out_of_range("window", window, "a positive number of seconds")
    if not (stride > 0 and math.isfinite(stride)):
        raise out_of_range(stride_name, stride, "a positive number of seconds")


def window_spans(duration: float, window: float, stride: float) -> list[Window]:
    """Windows ``[k * stride, k * stride + window]`` that fit in ``duration`` seconds, and one more ending at
    ``duration`` if they stop short of it, so the end of the video is seen too; a video shorter than one
    window is a single window over all of it."""
    check_window(window, stride)
    if duration <= window:
        return [Window(0.0, float(duration))]
    count = int(math.floor((duration - window) / stride + 1e-9)) + 1
    spans = [Window(k * stride, k * stride + window) for k in range(count)]
    if duration - spans[-1].end > 1e-6:
        spans.append(Window(float(duration) - window, float(duration)))
    return spans


def probe_video(path: str, decoder: Decoder | None = None) -> VideoTiming:
    """When each frame of ``path`` is shown (opens the container and reads its index, decodes nothing)."""
    with (decoder or resolve_decoder("auto")).open(path) as reader:
        return reader.timing()
