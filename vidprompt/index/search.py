"""Searching an index: a text query or a query video against the stored embeddings, with the model that
built the index.

Scores are cosines between the normalised query and the stored embeddings: text through the same text side
as classification (templates or learned prompts), or a query video embedded like the library. An index is
only searched with the model that built it; another one is refused.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import OptionValueError, UsageError, VidpromptError, out_of_range
from ..locks import FileLock
from ..video import ViewConfig
from . import shortlist
from .scan import exact_top_k, segment_table
from .segment import Segment, SegmentDamaged, global_id, split_id
from .store import (COMMIT_LOCK, JOURNAL, DamagedIndex, check_folder, describe_model, finish_commit,
                    model_difference, model_record, open_segments, read_meta_file, stored_rows)


@dataclass
class Hit:
    path: str
    score: float  # cosine between the query and the clip (or window) embedding
    start: float | None  # seconds; the whole clip for a clip-level hit
    end: float | None
    row: int  # the video's row: segment number << 32 | its row in the segment's embeddings.npy
    window: int | None = None  # the same for the window, in windows.npy, for a window-level hit

    def to_dict(self) -> dict:
        return {"video": self.path, "score": round(self.score, 6),
                "start": None if self.start is None else round(self.start, 3),
                "end": None if self.end is None else round(self.end, 3)}


@dataclass
class StoredVideo:
    """One live video of an index and its stored rows (read on demand, for inspection and tests)."""

    entry: dict
    embedding: np.ndarray  # float16 [D]
    windows: np.ndarray | None  # float16 [windows, D]
    window_times: np.ndarray | None  # float64 [windows, 2]

    @property
    def path(self) -> str:
        return self.entry["path"]


class VideoIndex:
    """An index folder opened for search. Its segments are memory-mapped: opening costs a few small reads at
    any size, and a search reads a bounded chunk of rows at a time."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        check_folder(self.root)
        # Read under a shared lock, so a build deleting what its commit replaced is never caught halfway; once
        # memory-mapped, the arrays stay valid after a later build deletes their files.
        while True:
            with FileLock(self.root / COMMIT_LOCK, shared=True) if self.root.is_dir() else nullcontext():
                if not (self.root / JOURNAL).is_file():
                    self._read_files()
                    break
            finish_commit(self.root)  # a format-1 build died halfway through its swap: finish it, then read

    def _read_files(self) -> None:
        meta = read_meta_file(self.root)
        if meta is None:
            raise UsageError(f"{self.root}: no index here (build one with `vidprompt index VIDEOS --out "
                             f"{self.root}`)")
        self.meta = meta
        self.segments: list[Segment] = open_segments(self.root, meta)
        self._by_number = {segment.number: segment for segment in self.segments}
        self._checked = None  # the last model that passed check_model
        record = shortlist.record_of(meta)  # opened (memory-mapped) while the lock keeps its file in place
        self.shortlist = shortlist.Shortlist(self.root, record, self.segments) if record else None
        self.last_search = None  # how the last search was answered, in words: "exact: ..." or "approximate: ..."

    def __len__(self) -> int:
        """Videos with an embedding."""
        return sum(segment.live_rows for segment in self.segments)

    @property
    def model(self) -> dict:
        return self.meta["model"]

    @property
    def view(self) -> ViewConfig:
        return ViewConfig.from_dict(self.meta["view"])

    @property
    def has_windows(self) -> bool:
        return bool(self.meta.get("windows"))

    def videos(self, *, failed: bool = False) -> Iterator[StoredVideo | dict]:
        """Every live video with its rows, segment by segment (``failed``: the entries of the videos that could
        not be read instead, as dicts)."""
        for segment in self.segments:
            for _, entry in segment.live_entries():
                if (entry.get("error") is not None) != failed:
                    continue
                if failed:
                    yield entry
                    continue
                windows = times = None
                if segment.windows is not None:
                    first, count = entry["windows"]
                    windows = np.asarray(segment.windows[first:first + count])
                    times = np.asarray(segment.window_times[first:first + count])
                yield StoredVideo(entry, np.asarray(segment.embeddings[entry["row"]]), windows, times)

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
               whole_clips: bool = False, exact: bool = False) -> list[Hit]:
        """The ``top_k`` best matches for a text query or a query video (``like``)."""
        if (text is None) == (like is None):
            raise OptionValueError("like", "give text (a query) or like (a query video), one of them")
        query = self.text_embedding(clf, text) if text is not None else self.video_embedding(clf, like)
        return self.search_embedding(query, top_k=top_k, whole_clips=whole_clips, exact=exact)

    def search_embedding(self, query: np.ndarray, top_k: int = 10, whole_clips: bool = False,
                         exact: bool = False) -> list[Hit]:
        """Rank by cosine with a normalised query ``[D]``: windows when the index has them (at most one hit
        per overlapping stretch of a video), else whole clips. The index's approximate index shortlists the
        rows when it has one for that table (scores are exact either way); ``exact``: scan every row.
        :attr:`last_search` says which answered."""
        if top_k < 1:
            raise out_of_range("top_k", top_k, "at least 1")
        query = np.asarray(query, np.float32).reshape(-1)
        if query.shape[0] != self.model["embed_dim"]:
            raise UsageError(f"query has {query.shape[0]} dimensions, the index {self.model['embed_dim']}")
        use_windows = self.has_windows and not whole_clips
        tables = [segment_table(segment, use_windows) for segment in self.segments]
        approximate = self.shortlist if (
            not exact and self.shortlist is not None and self.shortlist.usable
            and self.shortlist.table == ("windows" if use_windows else "clips")) else None
        pool = top_k if not use_windows else max(4 * top_k, top_k + 16)
        while True:
            found = approximate.top(query, pool) if approximate is not None else None
            if found is None:
                ids, scores = exact_top_k(tables, query, pool)
                rows = sum(len(table) - (0 if table.dead is None else len(table.dead)) for table in tables)
                exhausted = len(ids) < pool
                self.last_search = f"exact: all {rows:,} {'windows' if use_windows else 'clips'} scanned"
            else:
                (ids, scores, exhausted), self.last_search = found, approximate.describe()
            hits = self._hits(ids, scores, use_windows, top_k)
            if len(hits) >= top_k or exhausted:
                return hits
            pool *= 4  # overlapping windows of one video took the places: look further down

    def _hits(self, ids: np.ndarray, scores: np.ndarray, use_windows: bool, top_k: int) -> list[Hit]:
        hits: list[Hit] = []
        taken: dict[tuple[int, int], list[tuple[float, float]]] = {}
        try:
            for ident, score in zip(ids.tolist(), scores.tolist()):
                number, local = split_id(ident)
                segment = self._by_number[number]
                if use_windows:
                    row = int(segment.window_rows[local])
                    start, end = (float(t) for t in segment.window_times[local])
                    spans = taken.setdefault((number, row), [])
                    if any(start < e and s < end for s, e in spans):
                        continue  # an overlapping window of the same video is already a hit
                    spans.append((start, end))
                    entry = segment.entry_of_row(row)
                    hits.append(Hit(entry["path"], float(score), start, end, global_id(number, row), ident))
                else:
                    entry = segment.entry_of_row(local)
                    hits.append(Hit(entry["path"], float(score), 0.0 if entry.get("duration") is not None else None,
                                    entry.get("duration"), ident))
                if len(hits) == top_k:
                    break
        except SegmentDamaged as exc:
            raise DamagedIndex(self.root, str(exc)) from None
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
