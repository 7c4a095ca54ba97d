"""The approximate index an index folder keeps beside its segments, and how a search uses it.

An exact search multiplies the query with every live row: ~10 ms a query per 100k rows of width 512 on two
CPU cores, half a second at 5M. Past :data:`AUTO_ROWS` searched rows (with FAISS installed, ``vidprompt[ann]``)
a build also keeps an approximate index (:mod:`.ann`) over the searched table (the windows when the index has
them, else the clips). It only shortlists: a search asks it for a few hundred candidates, drops those deleted
since, re-scores the rest exactly from the segments' float16 rows, and scans the segments it does not cover
exactly, so a score shown is always an exact cosine and a new video is found before the approximate index
knows it.

Kept current at each build's commit (:func:`refresh`): new segments stay uncovered (scanned exactly) while
they hold at most :data:`STALE_SHARE` of the rows covered; past that their rows are added to the trained
index, until the rows are :data:`REGROW` times those it was trained on, when it is trained again (a
compaction renumbers every row, so it trains again too). Its record in ``index.json``::

    "ann": {"setting": "auto",                      # auto | none | ivf | hnsw | flat (vidprompt index --ann)
            "index": {"file": "ann-000007-ivf.faiss", "kind": "ivf", "table": "windows",
                      "segments": [0, 3, 7], "rows": 1234567, "trained_rows": 1200000}}

The file is written under a new name and named by a commit, so a killed build leaves the previous one in
use; a missing or unreadable file makes search exact (with a warning) until the next build replaces it.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np

from ..errors import OptionValueError
from . import ann
from .scan import exact_top_k, merge, segment_table
from .segment import ID_BITS, Segment, global_id

log = logging.getLogger(__name__)

FOLDER = "ann"
SETTINGS = ("auto", "none", *ann.KINDS)
AUTO_ROWS = 250_000  # an exact scan of 250k rows takes ~25 ms a query on 2 cores; past it, shortlist
AUTO_KIND = "ivf"  # hnsw builds ~10x slower on a CPU for a similar recall (benchmarks/search_scale.py)
STALE_SHARE = 0.2  # uncovered rows scanned exactly, as a share of the covered ones, before they are added
REGROW = 2.0  # rows added since training, as a multiple of the trained rows, before training again
ADD_ROWS = 65536  # rows converted to float32 and added at once
MAX_CANDIDATES = 8192  # past this many candidates a search scans exactly instead
FILE_NAME = re.compile(r"ann-\d{6}-(ivf|hnsw|flat)\.faiss")


def check_setting(setting: str | None) -> str | None:
    """``setting`` checked (``None``: keep the index's); an explicit kind needs FAISS, refused here (before a
    model loads) when it is missing."""
    if setting is None:
        return None
    if setting not in SETTINGS:
        raise OptionValueError("ann", f"ann must be one of {', '.join(SETTINGS)} (got {setting!r})")
    if setting in ann.KINDS and not ann.faiss_available():
        raise OptionValueError("ann", f"ann {setting}: {ann.MISSING}")
    return setting


def table_name(meta: dict) -> str:
    """The table a default search ranks: windows when the index has them, else clips."""
    return "windows" if meta.get("windows") else "clips"


def setting_of(meta: dict | None) -> str:
    record = (meta or {}).get("ann")
    setting = record.get("setting") if isinstance(record, dict) else None
    return setting if setting in SETTINGS else "auto"


def record_of(meta: dict | None) -> dict | None:
    """The approximate index ``index.json`` names, checked; ``None`` when there is none or its record is
    malformed (an accelerator only: the index is searched exactly and the next build makes a new one)."""
    record = (meta or {}).get("ann")
    record = record.get("index") if isinstance(record, dict) else None
    if not isinstance(record, dict):
        return None
    ints = all(isinstance(record.get(key), int) and record[key] >= 0 for key in ("rows", "trained_rows"))
    segments = record.get("segments")
    if not (isinstance(record.get("file"), str) and FILE_NAME.fullmatch(record["file"]) and ints
            and record.get("kind") in ann.KINDS and record.get("table") in ("clips", "windows")
            and isinstance(segments, list) and all(isinstance(n, int) for n in segments)):
        return None
    return record


def _rows(segment: Segment, table: str) -> tuple[np.ndarray, np.ndarray]:
    return segment.table(table == "windows")


def _live(segment: Segment, table: str) -> int:
    matrix, dead = _rows(segment, table)
    return len(matrix) - len(dead)


# --- keeping it current (a build, holding the build lock) ---------------------------------------------------------

def plan(meta: dict, segments: list[Segment], setting: str) -> str:
    """What :func:`refresh` does for the committed ``meta``: ``"keep"``, ``"drop"`` (none wanted),
    ``"add"`` (new segments into the trained index) or ``"train"``."""
    table, current = table_name(meta), record_of(meta)
    live = sum(_live(segment, table) for segment in segments)
    if setting == "none" or live == 0:
        return "drop"
    if (setting == "auto" and live < AUTO_ROWS) or not ann.faiss_available():
        return "drop"
    kind = AUTO_KIND if setting == "auto" else setting
    if current is None or current["kind"] != kind or current["table"] != table:
        return "train"
    covered = set(current["segments"])
    uncovered = sum(_live(segment, table) for segment in segments if segment.number not in covered)
    if uncovered == 0 or uncovered <= STALE_SHARE * (live - uncovered):
        return "keep"
    return "add" if live <= REGROW * max(1, current["trained_rows"]) else "train"


def refresh(root: Path, meta: dict, segments: list[Segment], setting: str | None = None,
            progress: Callable[[int], ContextManager[Callable[[int], None]]] | None = None) -> dict:
    """The ``ann`` record the committed ``meta`` should carry, its file written when it is a new one (its
    ``index`` is ``None`` when no approximate index is wanted). ``setting``: ``None`` keeps the index's.
    ``progress(total)``: a context giving a function that counts the rows added (a progress bar)."""
    setting = setting or setting_of(meta)
    current = record_of(meta)
    action = plan(meta, segments, setting)
    if action == "drop":
        if setting != "none" and not ann.faiss_available():
            _suggest_faiss(meta, segments, setting)
        return {"setting": setting, "index": None}
    if action == "keep" and _load(root, current, then="training a new one") is not None:  # mapped: cheap
        return {"setting": setting, "index": current}
    if action == "keep":
        action = "train"
    table = table_name(meta)
    kind = AUTO_KIND if setting == "auto" else setting
    live = sum(_live(segment, table) for segment in segments)
    name = f"ann-{meta['generation']:06d}-{kind}.faiss"
    if action == "add":
        index = _load(root, current, mmap=False, then="training a new one")
        if index is None:
            action = "train"
    if action == "train":
        log.info("building the approximate search index (%s over %s %s)", kind, f"{live:,}", table)
        index = ann.ApproximateIndex.train(_sample(segments, table, ann.sample_size(kind, live)), kind,
                                           rows_expected=live)
        covered, trained = set(), live
    else:
        log.info("adding new rows to the approximate search index (%s)", kind)
        covered, trained = set(current["segments"]), current["trained_rows"]
    numbers = [segment.number for segment in segments]
    adding = [segment for segment in segments if segment.number not in covered]
    with (progress or _no_progress)(sum(_live(segment, table) for segment in adding)) as advance:
        for segment in adding:
            _add_segment(index, segment, table, advance)
    index.save(root / FOLDER / name)
    return {"setting": setting, "index": {"file": name, "kind": kind, "table": table, "segments": numbers,
                                          "rows": live, "trained_rows": trained}}


def _suggest_faiss(meta: dict, segments: list[Segment], setting: str) -> None:
    """FAISS is missing where an approximate index would be used: say what that costs and how to fix it."""
    table = table_name(meta)
    live = sum(_live(segment, table) for segment in segments)
    if setting != "auto" or live >= AUTO_ROWS:
        log.warning('warning: FAISS is not installed, so search scans all %s %s exactly (~%d ms a query); '
                    'pip install "vidprompt[ann]" for approximate search', f"{live:,}", table,
                    max(1, round(live / 1e5 * 10)))


def _sample(segments: list[Segment], table: str, size: int, seed: int = 0) -> np.ndarray:
    """``size`` live rows drawn uniformly without replacement (seeded: the same index trains the same)."""
    lives = [np.setdiff1d(np.arange(len(_rows(s, table)[0]), dtype=np.int64), _rows(s, table)[1]) for s in segments]
    counts = np.asarray([len(live) for live in lives], np.int64)
    total = int(counts.sum())
    picks = np.sort(np.random.default_rng(seed).choice(total, size=min(size, total), replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    parts = []
    for segment, live, start, stop in zip(segments, lives, starts[:-1], starts[1:]):
        mine = picks[(picks >= start) & (picks < stop)] - start
        if len(mine):
            parts.append(np.asarray(_rows(segment, table)[0][live[mine]], np.float32))
    dim = _rows(segments[0], table)[0].shape[1]
    return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)


@contextmanager
def _no_progress(total: int):
    yield None


def _add_segment(index: ann.ApproximateIndex, segment: Segment, table: str,
                 progress: Callable[[int], None] | None) -> None:
    matrix, dead = _rows(segment, table)
    for start in range(0, len(matrix), ADD_ROWS):
        stop = min(len(matrix), start + ADD_ROWS)
        local = np.arange(start, stop, dtype=np.int64)
        keep = ~np.isin(local, dead)
        index.add(global_id(segment.number, local[keep]), np.asarray(matrix[start:stop])[keep])
        if progress is not None:
            progress(int(keep.sum()))


def _load(root: Path, record: dict, mmap: bool = True,
          then: str = "searching exactly (the next `vidprompt index` rebuilds it)") -> ann.ApproximateIndex | None:
    """The approximate index a record names, or ``None`` with a warning (ending in ``then``) when its file is
    missing or unreadable."""
    try:
        return ann.ApproximateIndex.load(root / FOLDER / record["file"], mmap=mmap)
    except Exception as exc:  # UsageError from FAISS's reader; anything else FAISS raises on a bad file
        log.warning("warning: %s: approximate index unusable (%s); %s", root,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__, then)
        return None


# --- searching (a reader) -----------------------------------------------------------------------------------------

class Shortlist:
    """An index folder's approximate index opened for search, with the segments it was opened with."""

    def __init__(self, root: Path, record: dict, segments: list[Segment]):
        self.record = record
        self.table = record["table"]
        self.index = _load(root, record) if ann.faiss_available() else None
        covered = set(record["segments"])
        self.covered = {s.number: s for s in segments if s.number in covered}
        self.uncovered = [s for s in segments if s.number not in covered]

    @property
    def usable(self) -> bool:
        return self.index is not None

    def describe(self) -> str:
        return f"approximate: {self.record['kind']} over {self.record['rows']:,} {self.table}, re-ranked exactly"

    def top(self, query: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray, bool] | None:
        """The ``pool`` best rows (global ids, exact float32 cosines, best first) and whether fewer exist; or
        ``None`` when the pool asked for is too deep to shortlist (scan exactly instead)."""
        candidates = max(ann.CANDIDATES, 4 * pool)
        if candidates > MAX_CANDIDATES:
            return None
        found, _ = self.index.search(query, candidates)
        ids, rows = self._live_rows(found)
        ids, scores = ann.rerank(ids, rows, query, pool) if len(ids) else (ids, np.zeros(0, np.float32))
        tables = [segment_table(s, self.table == "windows") for s in self.uncovered]
        more_ids, more_scores = exact_top_k(tables, query, pool)
        ids, scores = merge(ids, scores, more_ids, more_scores, pool)
        exhausted = len(found) < candidates and len(more_ids) < pool
        return ids, scores, exhausted

    def _live_rows(self, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The candidates still in the index (their segment kept, the row not deleted since) and their rows."""
        ids, rows = [], []
        numbers = np.asarray(found, np.int64) >> ID_BITS
        for number in np.unique(numbers):
            segment = self.covered.get(int(number))
            if segment is None:
                continue  # merged away or dropped since
            local = np.sort(np.asarray(found[numbers == number], np.int64) & ((1 << ID_BITS) - 1))
            matrix, dead = _rows(segment, self.table)
            local = local[(local < len(matrix)) & ~np.isin(local, dead)]
            if len(local):
                ids.append(global_id(int(number), local))
                rows.append(np.asarray(matrix[local], np.float32))
        if not ids:
            return np.zeros(0, np.int64), np.zeros((0, 1), np.float32)
        return np.concatenate(ids), np.concatenate(rows)

