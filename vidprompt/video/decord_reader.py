"""decord backend: fast batched decoding with its own key-frame index (wheels for Linux x86_64 and Windows
only, last release 2021).

What this wrapper knows about it: it raises ``RuntimeError`` and ``decord.DECORDError`` (not a subclass);
a truncated file may claim more frames than it holds; a reader made in a parent process hangs in forked
workers (readers are made where they are used); it cannot open GIFs or some tiny H.264 files. FFmpeg's
messages are silenced with decord's own log level. decord's C++ layer also prints a line of its own when
it cannot open a file, which no setting silences, so a source is first opened with FFmpeg through PyAV (the
same library decord uses): what that cannot open is not handed to decord at all.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .reader import DecodeError, VideoReader, VideoTiming
from .source import is_url


@functools.lru_cache(maxsize=None)
def _decord():
    import av  # noqa: F401  before decord, whose libraries enter the global symbol scope (see decoders.py)
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    return decord


def _errors() -> tuple[type[BaseException], ...]:
    return (RuntimeError, _decord().DECORDError, ValueError, IndexError)


def _check_container(source: str) -> None:
    """Open the container with FFmpeg (PyAV) first, so decord never prints its own open failure."""
    import av

    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise DecodeError("no video stream")
    except (av.error.FFmpegError, OSError, ValueError):
        raise DecodeError("cannot open") from None


class DecordReader(VideoReader):
    backend = "decord"

    def __init__(self, source: str, threads: int = 0):
        super().__init__(source)
        if is_url(source):
            raise DecodeError("decord reads local files only")
        _check_container(source)
        decord = _decord()
        try:
            self._reader = decord.VideoReader(source, ctx=decord.cpu(0), num_threads=threads)
        except _errors():
            raise DecodeError("cannot open (unsupported, corrupt or truncated file)") from None
        if len(self._reader) < 1:
            raise DecodeError("video has no frames")

    @property
    def num_frames(self) -> int:
        return len(self._reader)

    def timing(self) -> VideoTiming:
        try:
            spans = self._reader.get_frame_timestamp(np.arange(self.num_frames))  # [n, (start, end)] seconds
        except _errors():
            return VideoTiming.constant_rate(self.num_frames, float(self._reader.get_avg_fps()))
        spans = np.asarray(spans, dtype=np.float64)
        return VideoTiming(spans[:, 0] - spans[0, 0], float(spans[-1, 1] - spans[0, 0]))

    def _decode_sorted(self, indices: np.ndarray) -> torch.Tensor:
        try:
            batch = self._reader.get_batch([int(i) for i in indices]).asnumpy()
        except _errors():
            raise DecodeError("frames fail to decode") from None
        return torch.from_numpy(batch)

    def close(self) -> None:
        self._reader = None
