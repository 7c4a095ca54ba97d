"""Searching an index: a text query or a query video against the stored embeddings, with the model that
built the index.

Scores are cosines between the normalised query and the stored embeddings: text through the same text side
as classification (templates or learned prompts), or a query video embedded like the library. An index is
only searched with the model that built it; another one is refused.
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import OptionValueError, UsageError, VidpromptError, out_of_range
from ..locks import FileLock
from ..video import ViewConfig
from .store import (COMMIT_LOCK, JOURNAL, check_folder, describe_model, finish_commit, model_difference, model_record,
                    read_index, read_meta_file, stored_rows)


@dataclass
class Hit:
    path: str
    score: float  # cosine between the query and the clip (or window) embedding
    start: float | None  # seconds; the whole clip for a clip-level hit
    end: float | None
    row: int  # the video's row in embeddings.npy
    window: int | None = None  # the window's row in windows.npy, for a window-level hit

    def to_dict(self) -> dict:
        return {"video": self.path, "score": round(self.score, 6),
                "start": None if self.start is None else round(self.start, 3),
                "end": None if self.end is None else round(self.end, 3)}


class VideoIndex:
    """An index folder opened for search (arrays memory-mapped: opening is instant at any size)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        check_folder(self.root)
        # Read under a shared lock, so a build swapping in new files is never caught halfway; once
        # memory-mapped, the arrays stay valid after a later swap replaces their names.
        while True:
            with FileLock(self.root / COMMIT_LOCK, shared=True) if self.root.is_dir() else nullcontext():
                if not (self.root / JOURNAL).is_file():
                    self._read_files()
                    break
            finish_commit(self.root)  # a build died halfway through its swap: finish it, then read

    def _read_files(self) -> None:
        meta = read_meta_file(self.root)
        if meta is None:
            raise UsageError(f"{self.root}: no index here (build one with `vidprompt index VIDEOS --out "
                             f"{self.root}`)")
        self.meta = meta
        entries, self.embeddings, self.windows, self.window_times = read_index(self.root, meta)
        self.entries = [e for e in entries if e.get("error") is None]
        self.window_owner = None
        if self.windows is not None:
            owner = np.zeros(self.windows.shape[0], np.int64)
            for entry in self.entries:
                first, count = entry["windows"]
                owner[first:first + count] = entry["row"]
            self.window_owner = owner
        self._tensors: dict[str, torch.Tensor] = {}
        self._checked = None  # the last model that passed check_model

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def model(self) -> dict:
        return self.meta["model"]

    @property
    def view(self) -> ViewConfig:
        return ViewConfig.from_dict(self.meta["view"])

    # --- the query model ---------------------------------------------------------------------------------
    def classifier(self, *, model: str | None = None, pretrained: str | None = None,
                   checkpoint: str | os.PathLike | None = None, templates: Sequence[str] | None = None,
                   device: str = "auto", precision: str = "auto", batch_size: int = 4,
                   num_workers: int | None = None, decoder: str = "auto"):
        """The query model: by default the one that built the index (its checkpoint, or its backbone and
        templates); with ``model``/``pretrained``/``checkpoint`` that model, which must give the same video
        embeddings. Views are the index's."""
        if model is not None and checkpoint is None:  # another backbone: say so before loading its weights
            named = Path(model).stem if model.endswith(".json") else model.replace("/", "-")
            if named != self.model["model"]:
                raise self._other_model(f"the index was built with {describe_model(self.model)}, not {model}")
        clf, _ = classifier_for(self.model, self.view, model=model, pretrained=pretrained,
                                checkpoint=checkpoint, templates=templates, device=device, precision=precision,
                                batch_size=batch_size, num_workers=num_workers, decoder=decoder)
        problem = model_difference(self.model, model_record(clf))
        if problem is not None:
            raise self._other_model(problem)
        self._checked = clf.model
        return clf

    def _other_model(self, problem: str) -> OptionValueError:
        """The query model asked for (``model``, ``pretrained``, ``checkpoint``) is not the index's."""
        return OptionValueError("model", f"model, pretrained and checkpoint must give the index's model; "
                                         f"{self.root}: {problem}; leave them out to search with the index's own "
                                         "model, or build an index with this one",
                                mentions=("pretrained", "checkpoint"))

    def check_model(self, clf) -> None:
        """Refuse a classifier whose video embeddings differ from the index's (other method, backbone,
        weights or settings)."""
        if self._checked is clf.model:
            return
        problem = model_difference(self.model, model_record(clf))
        if problem is not None:
            raise UsageError(f"{self.root}: {problem}; search with the index's own model "
                             "(VideoIndex.classifier()) or build an index with this one")
        self._checked = clf.model

    # --- queries -----------------------------------------------------------------------------------------
    def text_embedding(self, clf, text: str) -> np.ndarray:
        """The normalised text embedding of ``text`` through ``clf``'s text side (templates or prompts)."""
        from ..text_cache import TextEmbeddingCache

        if not text or not text.strip():
            raise UsageError("the query is empty")
        self.check_model(clf)
        cache, clf.text_cache = clf.text_cache, TextEmbeddingCache(enabled=False)  # queries are one-offs
        try:
            return clf.label_embeddings([text.strip()])[0].float().cpu().numpy()
        finally:
            clf.text_cache = cache

    def video_embedding(self, clf, path: str | os.PathLike) -> np.ndarray:
        """The normalised embedding of a query video, computed like the library's."""
        self.check_model(clf)
        if clf.view != self.view:
            raise UsageError(f"{self.root}: the index was built with views {self.meta['view']}; the query "
                             f"video must be sampled the same way (got {clf.view.to_dict()})")
        for _, _, emb, error in clf.video_embeddings([os.fspath(path)]):
            if emb is None:
                raise VidpromptError(f"{path}: {error}")
            return stored_rows(emb)
        raise VidpromptError(f"{path}: no embedding")

    def search(self, clf, text: str | None = None, *, like: str | os.PathLike | None = None, top_k: int = 10,
               whole_clips: bool = False) -> list[Hit]:
        """The ``top_k`` best matches for a text query or a query video (``like``)."""
        if (text is None) == (like is None):
            raise OptionValueError("like", "give text (a query) or like (a query video), one of them")
        query = self.text_embedding(clf, text) if text is not None else self.video_embedding(clf, like)
        return self.search_embedding(query, top_k=top_k, whole_clips=whole_clips)

    def search_embedding(self, query: np.ndarray, top_k: int = 10, whole_clips: bool = False) -> list[Hit]:
        """Rank by cosine with a normalised query ``[D]``: windows when the index has them (at most one hit
        per overlapping stretch of a video), else whole clips."""
        if top_k < 1:
            raise out_of_range("top_k", top_k, "at least 1")
        query = np.asarray(query, np.float32).reshape(-1)
        if query.shape[0] != self.embeddings.shape[1]:
            raise UsageError(f"query has {query.shape[0]} dimensions, the index {self.embeddings.shape[1]}")
        use_windows = self.windows is not None and not whole_clips
        matrix = self.windows if use_windows else self.embeddings
        total = matrix.shape[0]
        if total == 0:
            return []
        scores = self._scores("windows" if use_windows else "clips", matrix, query)
        pool = min(total, max(8 * top_k, top_k + 64))
        while True:
            candidates = torch.topk(scores, pool).indices.numpy()
            # The fp16 product ranks; the candidates are re-scored in float32 so ties and order are exact.
            exact = np.asarray(matrix[np.sort(candidates)], np.float32) @ query
            order = np.sort(candidates)[np.argsort(-exact, kind="stable")]
            exact = np.sort(exact)[::-1]
            hits = self._hits(order, exact, use_windows, top_k)
            if len(hits) >= top_k or pool == total:
                return hits
            pool = min(total, pool * 4)

    def _scores(self, name: str, matrix: np.ndarray, query: np.ndarray) -> torch.Tensor:
        """Cosines of every row with the query: one fp16 matrix-vector product over the memory map."""
        tensor = self._tensors.get(name)
        if tensor is None:
            with warnings.catch_warnings():  # read-only memory map: torch is never asked to write to it
                warnings.simplefilter("ignore", UserWarning)
                tensor = torch.from_numpy(matrix)
            self._tensors[name] = tensor
        return (tensor @ torch.from_numpy(query).to(tensor.dtype)).float()

    def _hits(self, order: np.ndarray, scores: np.ndarray, use_windows: bool, top_k: int) -> list[Hit]:
        hits: list[Hit] = []
        taken: dict[int, list[tuple[float, float]]] = {}
        for index, score in zip(order.tolist(), scores.tolist()):
            if use_windows:
                row = int(self.window_owner[index])
                start, end = (float(t) for t in self.window_times[index])
                spans = taken.setdefault(row, [])
                if any(start < e and s < end for s, e in spans):
                    continue  # an overlapping window of the same video is already a hit
                spans.append((start, end))
                hits.append(Hit(self.entries[row]["path"], float(score), start, end, row, index))
            else:
                entry = self.entries[index]
                hits.append(Hit(entry["path"], float(score), 0.0 if entry.get("duration") is not None else None,
                                entry.get("duration"), index))
            if len(hits) == top_k:
                break
        return hits


def classifier_for(record: dict | None, view: ViewConfig | None, *, model: str | None = None,
                   pretrained: str | None = None, checkpoint: str | os.PathLike | None = None,
                   templates: Sequence[str] | None = None, device: str = "auto", precision: str = "auto",
                   batch_size: int = 4, num_workers: int | None = None, decoder: str = "auto"):
    """A classifier and the checkpoint path it came from: from the options when ``model``, ``pretrained`` or
    ``checkpoint`` is given (defaults as for classify), else the recorded model (``record``) with
    ``templates`` if given. ``view`` (when given) replaces the model's default views."""
    from ..classifier import load_classifier
    from ..hub import is_hub_ref

    common = dict(view=view, device=device, precision=precision, batch_size=batch_size,
                  num_workers=num_workers, decoder=decoder)
    given = model is not None or pretrained is not None or checkpoint is not None
    if not given and record is not None:
        if record.get("checkpoint"):
            checkpoint = record["checkpoint"]
            if not is_hub_ref(checkpoint) and not Path(checkpoint).is_file():
                raise UsageError(f"the index was built with the checkpoint {checkpoint}, which is gone; give "
                                 "--checkpoint with its new place")
            return load_classifier(None, record["pretrained"], checkpoint=str(checkpoint), templates=templates,
                                   **common), checkpoint
        return load_classifier(record["model_source"], record["pretrained"],
                               templates=templates or record.get("templates"), **common), None
    if checkpoint is not None:
        return load_classifier(model, pretrained, checkpoint=str(checkpoint), templates=templates,
                               **common), os.fspath(checkpoint)
    return load_classifier(model, pretrained, templates=templates, **common), None
