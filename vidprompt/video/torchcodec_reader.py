"""torchcodec backend: PyTorch's own decoder. On a CUDA device it decodes with NVDEC, so frames are born on
the GPU and never cross the PCIe bus as pixels; on the CPU it is one more FFmpeg decoder.

Optional (``pip install "vidprompt[gpu]"``): it links against the FFmpeg shared libraries of the system
(4 to 8), which the README says how to install. ``seek_mode="exact"`` scans the file once, so frame ``i``
is the ``i``-th frame in presentation order, as in the other backends. Per-frame presentation times are
not exposed by torchcodec; :meth:`timing` reads them from the container with PyAV when asked (windows).
"""

from __future__ import annotations

import functools
import re

import numpy as np
import torch

from .reader import DecodeError, VideoReader, VideoTiming


@functools.lru_cache(maxsize=None)
def _torchcodec_decoders():
    from torchcodec import decoders

    return decoders


class TorchCodecReader(VideoReader):
    backend = "torchcodec"

    def __init__(self, source: str, threads: int = 0, device: str | torch.device = "cpu"):
        super().__init__(source)
        self.device = torch.device(device)
        decoders = _torchcodec_decoders()
        options = {"device": str(self.device), "seek_mode": "exact", "dimension_order": "NHWC"}
        if self.device.type == "cpu":
            options["num_ffmpeg_threads"] = threads
        try:
            self._decoder = decoders.VideoDecoder(source, **options)
        except (RuntimeError, ValueError, OSError) as exc:
            raise DecodeError(f"cannot open ({_reason(exc, source)})") from None
        if self.num_frames < 1:
            raise DecodeError("video has no frames")
        self._timing: VideoTiming | None = None

    @property
    def num_frames(self) -> int:
        return int(self._decoder.metadata.num_frames or 0)

    def timing(self) -> VideoTiming:
        if self._timing is None:
            from .pyav_reader import PyAVReader

            with PyAVReader(self.source) as index:
                timing = index.timing()
            if timing.num_frames != self.num_frames:  # the two indexes disagree: trust torchcodec's count
                meta = self._decoder.metadata
                timing = VideoTiming.constant_rate(self.num_frames, float(meta.average_fps or 0))
            self._timing = timing
        return self._timing

    def _decode_sorted(self, indices: np.ndarray) -> torch.Tensor:
        try:
            return self._decoder.get_frames_at([int(i) for i in indices]).data
        except (RuntimeError, ValueError, IndexError) as exc:
            raise DecodeError(f"frames fail to decode ({_reason(exc, self.source)})") from None

    def close(self) -> None:
        self._decoder = None


def _reason(exc: BaseException, source: str) -> str:
    """FFmpeg's words from a torchcodec error, without its C++ source location or the file name:
    "SingleStreamDecoder, /src/...cpp:41, Could not open input file: a.mp4 Invalid data ..." ->
    "invalid data ..."."""
    text = str(exc).strip()
    if source and source in text:  # before splitting lines: a file name may hold a newline
        text = text.split(source, 1)[1].strip(" :,") or text
    text = text.splitlines()[0] if text else type(exc).__name__
    text = re.sub(r"^\w+, \S+:\d+, ", "", text)
    return (text[:1].lower() + text[1:])[:120]
