"""Exact nearest rows of a query over embedding tables of any size, a bounded chunk of rows at a time.

A table is a (memory-mapped) float16 matrix of L2-normalised rows, the global id of its first row, and the ids
of its deleted rows. The scan keeps the best candidates of every chunk and re-scores them in float32, so its
memory is set by ``chunk_rows`` and the number of candidates, never by the number of rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from .segment import Segment, global_id

CHUNK_ROWS = 65536  # rows multiplied at once: 64 MB of float16 at width 512


@dataclass
class Table:
    """Rows ``first_id .. first_id + len(matrix) - 1``; ``dead``: sorted global ids to leave out."""

    matrix: np.ndarray  # [rows, D] float16 (usually a read-only memory map)
    first_id: int = 0
    dead: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.matrix.shape[0])


def segment_table(segment: Segment, windows: bool) -> Table:
    """A segment's window or clip rows as a table of global ids, its deleted rows left out."""
    matrix, dead = segment.table(windows)
    return Table(matrix, global_id(segment.number, 0), global_id(segment.number, dead))


def exact_top_k(tables: Iterable[Table], query: np.ndarray, k: int, chunk_rows: int = CHUNK_ROWS,
                ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows for ``query`` [D] -> (global ids, float32 cosines), best first; ties go to the lower
    id. Chunks are ranked by a float16 matrix-vector product and their candidates re-scored in float32."""
    query = np.asarray(query, np.float32).reshape(-1)
    best_ids = np.zeros(0, np.int64)
    best_scores = np.zeros(0, np.float32)
    for table in tables:
        for start in range(0, len(table), chunk_rows):
            ids, scores = _chunk_candidates(table, start, min(len(table), start + chunk_rows), query, k)
            best_ids, best_scores = merge(best_ids, best_scores, ids, scores, k)
    return best_ids, best_scores


def _chunk_candidates(table: Table, start: int, stop: int, query: np.ndarray, k: int):
    """The chunk's ``k`` best live rows, scored exactly. A wider pool is taken from the float16 ranking, so a
    row that float16 rounding puts just below the ``k``-th is still re-scored."""
    rows = table.matrix[start:stop]
    with warnings.catch_warnings():  # a read-only memory map: torch only reads it
        warnings.simplefilter("ignore", UserWarning)
        scores = (torch.from_numpy(np.asarray(rows)) @ torch.from_numpy(query).to(torch.float16)).float()
    if table.dead is not None and len(table.dead):
        lo, hi = np.searchsorted(table.dead, [table.first_id + start, table.first_id + stop])
        if hi > lo:
            scores[torch.from_numpy(table.dead[lo:hi] - table.first_id - start)] = float("-inf")
    live = int(torch.isfinite(scores).sum())
    if live == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    local = torch.topk(scores, min(max(8 * k, k + 64), live)).indices.numpy()
    local.sort()  # memory-map reads in file order
    exact = np.asarray(rows[local], np.float32) @ query
    ids, exact = merge(np.zeros(0, np.int64), np.zeros(0, np.float32),
                        local.astype(np.int64) + table.first_id + start, exact.astype(np.float32), k)
    return ids, exact


def merge(ids_a, scores_a, ids_b, scores_b, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of two (ids, scores) lists: by score, ties to the lower id."""
    ids = np.concatenate([np.asarray(ids_a, np.int64), np.asarray(ids_b, np.int64)])
    scores = np.concatenate([np.asarray(scores_a, np.float32), np.asarray(scores_b, np.float32)])
    order = np.lexsort((ids, -scores))[:k]  # by score, then by id
    return ids[order], scores[order]


def rescore(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Exact float32 cosines of a few rows (candidates from an approximate index) with ``query``."""
    return (np.asarray(rows, np.float32) @ np.asarray(query, np.float32).reshape(-1)).astype(np.float32)
