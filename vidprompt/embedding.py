"""The one path from videos to embeddings: decode views in workers (:mod:`vidprompt.loader`), set the videos that
failed aside, encode the rest in one call, and hand every input back in input order with its embedding or
its error. Classify, eval, index, localize and the feature cache all read videos through :func:`embedded`;
training reads frames through :func:`decoded` (its model runs inside the loss).

How the views of one video are combined into one answer is a property of the model interface, so it lives
beside it: :func:`vidprompt.methods.base.view_probabilities` and :func:`vidprompt.methods.base.view_embedding`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from torch.utils.data import Dataset

from .loader import VideoItem, iterate_views


@dataclass
class Decoded:
    """One loader batch: every item in input order, and the frames of the ones that decoded, stacked."""

    items: list[VideoItem]
    good: list[VideoItem]
    frames: torch.Tensor | None  # uint8 [len(good), views, T, 3, h, w]; None when nothing decoded


@dataclass
class Embedded:
    """One input's embedding (``[views, D]``, or what ``encode`` returns per item) or the reason it has none."""

    item: VideoItem
    embedding: torch.Tensor | None

    @property
    def index(self) -> int:
        return self.item.index

    @property
    def path(self) -> str:
        return self.item.path

    @property
    def error(self) -> str | None:
        return None if self.embedding is not None else (self.item.error or "cannot decode video")


def decoded(dataset: Dataset, batch_size: int, num_workers: int | None = None,
            pin_memory: bool = False) -> Iterator[Decoded]:
    """The loader's batches, with the decoded items' frames stacked for one model call."""
    for items in iterate_views(dataset, batch_size, num_workers, pin_memory=pin_memory):
        good = [item for item in items if item.frames is not None]
        yield Decoded(items, good, torch.stack([item.frames for item in good]) if good else None)


def embedded(batches: Iterable[Decoded], encode: Callable[[torch.Tensor], torch.Tensor],
             progress: Callable[[int], None] | None = None) -> Iterator[list[Embedded]]:
    """Per batch, every input in order with ``encode(frames)``'s row for it (None for a failed video).
    ``progress`` counts a batch once its consumer has finished with it."""
    for batch in batches:
        rows = dict(zip((item.index for item in batch.good), encode(batch.frames))) if batch.good else {}
        yield [Embedded(item, rows.get(item.index)) for item in batch.items]
        if progress is not None:
            progress(len(batch.items))
