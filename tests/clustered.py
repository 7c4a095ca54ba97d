"""Synthetic CLIP-like embeddings for approximate-search tests and benchmarks (tests/test_ann.py,
benchmarks/search_scale.py).

Random unit vectors are the easy case for an index and the hardest for recall, and neither looks like real
embeddings. These are clustered the way a video library tends to be: topics, clusters of similar clips inside
a topic (centres at cosine ~0.6 to their topic), clusters of very different sizes and tightness, and spread
inside a cluster that lives mostly in a few dozen directions (a decaying spectrum in a random basis), so that
nearest neighbours are meaningful rather than near ties. Rows are L2-normalised float16, like an index's tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCK_ROWS = 50_000  # rows generated at once: 100 MB of float32 at width 512


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered_embeddings(n: int, dim: int, *, clusters: int | None = None, spread: float = 1.0,
                         decay: float = 0.5, queries: int = 0, seed: int = 0, out: str | Path | None = None,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` clustered unit rows [n, dim] float16, and ``queries`` held-out rows [queries, dim] float32 drawn
    from the same clusters (new points near the data, not rows of the table).

    ``clusters``: default one per 500 rows. ``spread``: noise norm over centre norm (1: a row at cosine ~0.7 to
    its centre), scaled per cluster by 0.5-1.5. ``decay``: the noise spectrum falls as ``(j+1)**-decay`` (0.5:
    ~30 effective directions). ``out``: write the rows into a memory-mapped ``.npy`` there, a block at a time
    (5M x 512 never needs more than a block in memory) and return the memory map.
    """
    rng = np.random.default_rng(seed)
    clusters = clusters or max(8, n // 500)
    topics = _unit(rng.standard_normal((max(1, clusters // 16), dim)).astype(np.float32))
    centres = _unit(topics[rng.integers(0, len(topics), clusters)]
                    + 0.75 * _unit(rng.standard_normal((clusters, dim)).astype(np.float32)))
    weights = rng.lognormal(0.0, 1.0, clusters)
    weights /= weights.sum()
    spreads = (spread * rng.uniform(0.5, 1.5, clusters)).astype(np.float32)
    spectrum = (np.arange(dim, dtype=np.float32) + 1) ** -decay
    spectrum *= np.sqrt(1.0 / np.sum(spectrum ** 2))  # noise of norm ~1 before the cluster's spread
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)

    def draw(count: int) -> np.ndarray:
        which = rng.choice(clusters, count, p=weights)
        noise = (rng.standard_normal((count, dim), dtype=np.float32) * spectrum) @ basis
        return _unit(centres[which] + spreads[which, None] * noise)

    held_out = draw(queries).astype(np.float32) if queries else np.zeros((0, dim), np.float32)
    if out is None:
        rows = np.empty((n, dim), np.float16)
    else:
        rows = np.lib.format.open_memmap(Path(out), mode="w+", dtype=np.float16, shape=(n, dim))
    for start in range(0, n, BLOCK_ROWS):
        rows[start:start + BLOCK_ROWS] = draw(min(BLOCK_ROWS, n - start))
    if out is not None:
        rows.flush()
    return rows, held_out
