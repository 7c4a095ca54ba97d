"""Batches of decoded, resized views from DataLoader workers, so decoding overlaps with the model.

A video that fails to decode becomes an item with an ``error`` string instead of frames; the batch goes
on without it. A GPU decoder (torchcodec on CUDA) runs in threads of the main process instead, since CUDA
does not survive a fork; its frames are resized on the GPU where they were decoded.
"""

from __future__ import annotations

import os
import signal
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .errors import VideoError
from .transforms import FramePreprocessor
from .video import Decoder, VideoTiming, ViewConfig, load_clip_frames, resolve_decoder


@dataclass
class VideoItem:
    index: int
    path: str
    frames: torch.Tensor | None  # uint8 [views, T, 3, h, w], views = crops x clips
    error: str | None = None
    decoder: str | None = None  # the backend that decoded it
    timing: VideoTiming | None = None  # with ``with_timing`` only


class VideoViews(Dataset):
    """Item ``i`` = all views of ``paths[i]``. With ``seed`` set, sampling is random (training
    augmentation) but reproducible: a video in draw ``d`` always gets the same frames. ``decoder``: the
    backends to read with (default ``auto`` on the CPU); ``with_timing``: items also carry the frame times."""

    def __init__(self, paths: Sequence[str], view: ViewConfig, preprocessor: FramePreprocessor,
                 seed: int | None = None, draw: int = 0, decoder: Decoder | None = None,
                 with_timing: bool = False):
        self.paths = [os.fspath(p) for p in paths]
        self.view = view
        self.preprocessor = preprocessor
        self.seed = seed
        self.draw = draw
        self.decoder = decoder or resolve_decoder("auto")
        self.with_timing = with_timing
        self.threads = 0  # codec threads per video; set by iterate_views for the number of workers

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> VideoItem:
        path = self.paths[index]
        # Keyed by the path, not the position: a video gets the same frames in any dataset order or subset.
        rng = None if self.seed is None else np.random.default_rng([self.seed, self.draw,
                                                                     zlib.crc32(path.encode("utf-8"))])
        try:
            clip = load_clip_frames(path, self.view, rng, decoder=self.decoder, threads=self.threads,
                                    with_timing=self.with_timing)
        except VideoError as exc:
            return VideoItem(index, path, None, str(exc))
        except Exception as exc:  # anything else a broken file can raise must not kill the batch
            return VideoItem(index, path, None, f"cannot decode video ({type(exc).__name__})")
        frames = clip.frames
        if self.decoder.on_gpu:  # a file another backend read on the CPU joins the GPU-decoded ones
            frames = frames.to(self.decoder.device)
        views = self.preprocessor(frames)  # [crops, clips, T, 3, h, w]
        return VideoItem(index, path, views.flatten(0, 1).contiguous(), decoder=clip.decoder,
                         timing=clip.timing)


def _unchanged(item: VideoItem) -> VideoItem:
    return item  # not torch's default_convert: items are already tensors, and some are errors


def _as_list(items: list[VideoItem]) -> list[VideoItem]:
    return items


IMAGES_PER_BATCH = 4096  # decoded images one batch may hold (600 MB of 224 x 224 uint8), whatever was asked for


def bounded_batch(batch_size: int, items: int, images_per_item: int) -> int:
    """``batch_size`` bounded by the ``items`` there are and by :data:`IMAGES_PER_BATCH` images held at once, so
    a mistyped ``--batch-size 100000`` costs no more memory than the work needs."""
    return max(1, min(batch_size, items, IMAGES_PER_BATCH // max(images_per_item, 1)))


def default_num_workers() -> int:
    """One decoding worker per core, up to 8: decoding, not the model, limits throughput on a GPU."""
    return min(8, os.cpu_count() or 1)


def iterate_views(dataset: Dataset, batch_size: int, num_workers: int | None = None,
                  pin_memory: bool = False) -> Iterator[list[VideoItem]]:
    """Batches of :class:`VideoItem` in input order.

    Workers decode one video each and the batches are assembled here. With whole batches per worker, a
    batch of 16 videos waited on one worker decoding all 16 in turn while the GPU and the other workers
    sat idle. An ``IterableDataset`` (the windows of one video) deals whole batches to its workers itself,
    and gets them back whole and in order.
    """
    workers = default_num_workers() if num_workers is None else num_workers
    workers = min(workers, len(dataset))
    decoder = getattr(dataset, "decoder", None)
    if hasattr(dataset, "threads"):  # all cores for one video in-process, else share them out
        dataset.threads = 0 if workers == 0 else max(1, (os.cpu_count() or 1) // workers)
    if decoder is not None and decoder.on_gpu and not isinstance(dataset, IterableDataset):
        batches = _grouped(_threaded(dataset, max(workers, 1), batch_size), batch_size)
        pin_memory = False
    elif isinstance(dataset, IterableDataset):
        batches = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_as_list,
                             worker_init_fn=_ignore_interrupts,
                             prefetch_factor=2 if workers > 0 else None)
    else:
        # Enough videos in flight to keep two batches ahead of the model.
        prefetch = max(2, -(-2 * batch_size // workers)) if workers > 0 else None
        items = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                           collate_fn=_unchanged, prefetch_factor=prefetch, persistent_workers=False,
                           worker_init_fn=_ignore_interrupts)
        batches = _grouped(items, batch_size)
    for batch in batches:
        if pin_memory:
            for item in batch:
                if item.frames is not None and item.frames.device.type == "cpu":
                    item.frames = item.frames.pin_memory()
        yield batch


def _ignore_interrupts(worker_id: int) -> None:
    """Ctrl-C reaches every process of the terminal's group. The main process stops the work and says so in one
    line; a worker that raised KeyboardInterrupt too would print its own traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _grouped(items: Iterable[VideoItem], size: int) -> Iterator[list[VideoItem]]:
    batch: list[VideoItem] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _threaded(dataset: Dataset, threads: int, batch_size: int) -> Iterator[VideoItem]:
    """Items in order, decoded by ``threads`` threads of this process (GPU decoders), two batches ahead."""
    ahead = max(2 * batch_size, threads)
    with ThreadPoolExecutor(threads, thread_name_prefix="vidprompt-decode") as pool:
        pending = [pool.submit(dataset.__getitem__, i) for i in range(min(ahead, len(dataset)))]
        for i in range(len(dataset)):
            item = pending[i].result()
            pending[i] = None
            if i + ahead < len(dataset):
                pending.append(pool.submit(dataset.__getitem__, i + ahead))
            yield item
