"""A video's sampled views as uint8 frames, through whichever backend can read it."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from .decoders import Decoder, resolve_decoder
from .reader import DecodeError, VideoReader, VideoTiming
from .sampling import ViewConfig, sample_indices


@dataclass
class DecodedClip:
    frames: torch.Tensor  # uint8 [clips, frames, H, W, 3], on the CPU or the GPU decoder's device
    decoder: str  # the backend that decoded it
    timing: VideoTiming | None = None  # with ``with_timing`` only


def decodable_length(reader: VideoReader) -> int:
    """A damaged file can index more frames than decode: the number of leading frames that do (a binary
    search, a handful of seeks)."""
    try:
        reader.decode([0])
    except DecodeError:
        return 0
    lo, hi = 0, reader.num_frames - 1  # lo decodes; frames past hi are known not to
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            reader.decode([mid])
            lo = mid
        except DecodeError:
            hi = mid - 1
    return lo + 1


def read_views(reader: VideoReader, view: ViewConfig, rng: np.random.Generator | None = None) -> torch.Tensor:
    """The frames of every temporal clip of ``view``: uint8 ``[clips, frames, H, W, 3]``. When the index
    promises frames that do not decode, sample again within those that do."""
    try:
        return reader.decode(sample_indices(reader.num_frames, view, rng))
    except DecodeError:
        pass
    usable = decodable_length(reader)
    if usable < 1:
        raise DecodeError("no frame decodes")
    return reader.decode(sample_indices(usable, view, rng))


def load_clip_frames(source: str, view: ViewConfig, rng: np.random.Generator | None = None, *,
                     decoder: Decoder | None = None, threads: int = 0, with_timing: bool = False) -> DecodedClip:
    """Decode the views of ``source`` with the first backend of ``decoder`` that can (default: ``auto`` on
    the CPU). Each backend draws from its own copy of ``rng`` (left unchanged), so a fallback samples as
    the first backend would have."""
    decoder = decoder or resolve_decoder("auto")

    def work(reader: VideoReader):
        frames = read_views(reader, view, copy.deepcopy(rng))
        return frames, reader.timing() if with_timing else None

    (frames, timing), backend = decoder.attempt(str(source), work, threads)
    return DecodedClip(frames, backend, timing)
