"""Approximate nearest rows with FAISS (optional: ``pip install "vidprompt[ann]"``), for libraries too large
to scan per query.

The exact scan (:mod:`.scan`) reads every row: ~120 ms a query per million rows of width 512 on two idle CPU
cores, so 5M rows take over half a second. An approximate index looks at a small part of the rows, so it
has to be trained on a sample of them and it can miss. It is used as a candidate generator only: it returns
its best ``candidates`` ids (a hundred or two) and the caller re-ranks them exactly from the float16 rows on
disk (:func:`rerank`), so approximate scores never reach a user, and the index need only put the true top 10
somewhere among its candidates. That is what lets it store compressed codes (4 bits a dimension).

Kinds (parameters chosen from the expected number of rows, see :func:`choose_params`):

| kind | FAISS index | bytes a row (width 512) | build on 2 cores |
|---|---|---|---|
| ``ivf`` | inverted lists (k-means) of 4-bit scalar-quantised residuals | 256 + 8 (id) | 20 s at 1M, 119 s at 5M |
| ``hnsw`` | HNSW graph (32 links) over 8-bit scalar-quantised rows | 512 + ~260 + 8 | 187 s at 1M |
| ``flat`` | every row in float32, exact inner products | 2,048 + 8 | none (tests) |

Recall is measured, not assumed: ``tests/test_ann.py`` and ``benchmarks/search_scale.py`` check recall@10 after
re-ranking against the exact scan on clustered embeddings; the published bound is 0.95. Measured on 2 cores
(512-d, 200 held-out queries, 128 candidates, index + re-ranking): ivf 0.998 at 1M (1.3 ms median, exact scan
115 ms); hnsw 0.983 at 1M (2.2 ms); through an index folder and ``VideoIndex``, ivf 1.000 at 5M (7.6 ms median,
16.8 ms p95; exact scan 531 ms).

Files: :meth:`ApproximateIndex.save` writes one FAISS file atomically; its kind, parameters and row count are
read back from the FAISS index itself, so there is no second file to keep in step. ``load`` memory-maps the
codes and ids (every kind with FAISS >= 1.10), so they are page cache, not process memory (~6 MB held at 5M).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..errors import OptionValueError, UsageError, out_of_range
from ..fileio import atomic_write

KINDS = ("ivf", "hnsw", "flat")
CODES = ("sq4", "sq8", "fp32")  # how rows are stored: 4/8-bit scalar quantisation or plain float32
CANDIDATES = 128  # candidates to re-rank per query for a top 10: the figure the defaults were measured with
MISSING = 'approximate search needs FAISS: pip install "vidprompt[ann]"'


def faiss_available() -> bool:
    """Whether FAISS (``faiss-cpu`` or a GPU build) can be imported."""
    try:
        _faiss()
    except UsageError:
        return False
    return True


def _faiss():
    try:
        import faiss
    except ImportError:
        raise UsageError(MISSING) from None
    return faiss


def set_threads(n: int) -> None:
    """OpenMP threads FAISS uses (training, adding, batches of queries); FAISS's default is one per core."""
    if n < 1:
        raise out_of_range("threads", n, "at least 1")
    _faiss().omp_set_num_threads(int(n))


def _pow2(x: float) -> int:
    return 1 << max(0, round(math.log2(max(1.0, x))))


def choose_params(kind: str, rows_expected: int, sample_rows: int | None = None) -> dict:
    """The parameters an index of ``rows_expected`` rows gets.

    ivf: ``nlist`` lists, the power of 2 nearest ``2 * sqrt(rows)`` (2,048 at 1M, 4,096 at 5M: fewer than the
    textbook 4 x sqrt, because training and adding cost grow with ``nlist`` and are the slow part on a CPU),
    never more than ``sample_rows / 39`` (FAISS's minimum of training points a list); ``nprobe`` lists scanned
    per query, 1/128 of them and at least 16 (16 at 1M: recall@10 0.998; 32 at 5M: 1.000, and 0.998 with 16:
    the margin is for data harder than the benchmark's); 4-bit codes, which are re-ranked away.
    hnsw: 32 links a node, ``ef_construction`` 40, ``ef_search`` 128 (raised to the number of candidates asked
    for), 8-bit codes. flat: exact, no parameters.
    """
    if kind not in KINDS:
        raise OptionValueError("kind", f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    if kind == "ivf":
        nlist = min(65536, _pow2(2 * math.sqrt(max(1, rows_expected))))
        if sample_rows is not None:
            nlist = min(nlist, 1 << max(0, int(math.log2(max(1, sample_rows // 39)))))
        return {"nlist": nlist, "nprobe": min(nlist, max(16, nlist // 128)), "codes": "sq4"}
    if kind == "hnsw":
        return {"m": 32, "ef_construction": 40, "ef_search": 128, "codes": "sq8"}
    return {"codes": "fp32"}


def sample_size(kind: str, rows_expected: int) -> int:
    """How many rows to draw (uniformly at random) for :meth:`ApproximateIndex.train`: 64 a list for IVF
    (k-means needs 39 at least, FAISS uses 256 at most), 65,536 for the 8-bit ranges of HNSW, none for flat;
    never more than ``rows_expected``."""
    if kind == "ivf":
        need = 64 * choose_params("ivf", rows_expected)["nlist"]
    elif kind == "hnsw":
        need = 65536
    else:
        need = 0
    return min(need, max(0, rows_expected))


def _quantizer_type(faiss, codes: str):
    return {"sq4": faiss.ScalarQuantizer.QT_4bit, "sq8": faiss.ScalarQuantizer.QT_8bit}[codes]


class ApproximateIndex:
    """A FAISS index of L2-normalised rows under 64-bit ids; scores are inner products (cosines)."""

    def __init__(self, index, kind: str, params: dict, *, read_only: bool = False):
        self.index = index  # the FAISS object
        self.kind = kind
        self.params = params
        self.read_only = read_only  # loaded memory-mapped: search only
        self.dim = int(index.d)
        self._hnsw = _faiss().downcast_index(index.index).hnsw if kind == "hnsw" else None

    @property
    def count(self) -> int:
        """Rows added."""
        return int(self.index.ntotal)

    def __repr__(self) -> str:
        return f"ApproximateIndex({self.kind}, dim={self.dim}, count={self.count}, params={self.params})"

    @classmethod
    def train(cls, sample: np.ndarray, kind: str = "ivf", *, rows_expected: int, seed: int = 0,
              **overrides) -> "ApproximateIndex":
        """A new, empty index trained on ``sample`` [n, D] (rows of the data, float16 or float32; draw
        :func:`sample_size` of them at random). ``overrides`` replace chosen parameters (``nlist=...``,
        ``codes="sq8"``...). IVF: k-means takes ~40 s for 4,096 lists (5M rows) on 2 cores."""
        faiss = _faiss()
        sample = _as_rows(sample, None, "sample")
        params = {**choose_params(kind, rows_expected, len(sample)), **overrides}
        dim = sample.shape[1]
        if params.get("codes") not in CODES:
            raise OptionValueError("codes", f"codes must be one of {', '.join(CODES)} (got {params.get('codes')!r})")
        metric = faiss.METRIC_INNER_PRODUCT
        if kind == "ivf":
            if len(sample) < params["nlist"]:
                raise UsageError(f"an IVF index of {params['nlist']} lists needs at least {params['nlist']} training "
                                 f"rows ({39 * params['nlist']} or more for good lists); got {len(sample)}")
            quantizer = faiss.IndexFlatIP(dim)
            if params["codes"] == "fp32":
                index = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], metric)
            else:
                index = faiss.IndexIVFScalarQuantizer(quantizer, dim, params["nlist"],
                                                      _quantizer_type(faiss, params["codes"]), metric, True)
            index.cp.seed = seed
            index.train(sample)
            index.nprobe = params["nprobe"]
        elif kind == "hnsw":
            if params["codes"] == "fp32":
                inner = faiss.IndexHNSWFlat(dim, params["m"], metric)
            else:
                inner = faiss.IndexHNSWSQ(dim, _quantizer_type(faiss, params["codes"]), params["m"], metric)
            inner.hnsw.efConstruction = params["ef_construction"]
            inner.hnsw.efSearch = params["ef_search"]
            if len(sample):
                inner.train(sample)
            index = faiss.IndexIDMap(inner)  # the Python wrapper keeps ``inner`` alive
        else:
            if params["codes"] != "fp32":
                raise OptionValueError("codes", "a flat index stores float32 rows: codes must be fp32")
            inner = faiss.IndexFlatIP(dim)
            index = faiss.IndexIDMap(inner)  # the Python wrapper keeps ``inner`` alive
        return cls(index, kind, params)

    def add(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """Add ``rows`` [n, D] (float16 or float32, converted here a call at a time: stream a large table in
        batches) under ``ids`` [n] (any int64 values)."""
        if self.read_only:
            raise UsageError("this index was loaded memory-mapped (read-only): load it with mmap=False to add rows")
        rows = _as_rows(rows, self.dim, "rows")
        ids = np.ascontiguousarray(np.asarray(ids).reshape(-1), dtype=np.int64)
        if len(ids) != len(rows):
            raise UsageError(f"{len(ids)} ids for {len(rows)} rows")
        if len(rows):
            self.index.add_with_ids(rows, ids)

    @property
    def nprobe(self) -> int:
        """IVF: lists scanned a query (more: better recall, slower); saved with the index."""
        return int(self.params["nprobe"])

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self.kind != "ivf" or value < 1:
            raise OptionValueError("nprobe", f"nprobe must be at least 1, for an ivf index (got {value}, {self.kind})")
        self.params["nprobe"] = self.index.nprobe = int(value)

    @property
    def ef_search(self) -> int:
        """HNSW: candidates kept while walking the graph (at least the candidates asked for); saved."""
        return int(self.params["ef_search"])

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        if self.kind != "hnsw" or value < 1:
            raise OptionValueError("ef_search", f"ef_search must be at least 1, for an hnsw index (got {value}, "
                                                f"{self.kind})")
        self.params["ef_search"] = self._hnsw.efSearch = int(value)

    def search(self, query: np.ndarray, candidates: int = CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
        """The index's ``candidates`` best rows for ``query`` [D] -> (ids int64, approximate scores float32),
        best first; fewer where the index holds fewer (FAISS's -1 padding is dropped). Safe to call from
        several threads at once (the search breadth travels with the call, not in the index)."""
        if candidates < 1:
            raise out_of_range("candidates", candidates, "at least 1")
        faiss = _faiss()
        query = _as_rows(np.asarray(query).reshape(1, -1), self.dim, "query")
        options = None
        if self.kind == "ivf":
            options = faiss.SearchParametersIVF(nprobe=self.nprobe)
        elif self.kind == "hnsw":
            options = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, int(candidates)))
        scores, ids = self.index.search(query, int(candidates), params=options)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Write the index to ``path`` in one atomic rename (a kill leaves the old file or the new one)."""
        faiss = _faiss()
        return atomic_write(path, lambda tmp: faiss.write_index(self.index, tmp))

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> "ApproximateIndex":
        """An index written by :meth:`save`. ``mmap`` (the default): map the codes and ids from the file
        instead of reading them, so they are page cache (shared, evictable) rather than process memory, and
        the index is search-only (FAISS aborts the process on a write to a mapped index, so :meth:`add`
        refuses). Every kind is mapped with FAISS >= 1.10 (``IO_FLAG_MMAP_IFC``), only IVF lists before."""
        faiss = _faiss()
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"approximate index not found: {path}")
        flags = 0
        if mmap:
            if hasattr(faiss, "IO_FLAG_MMAP_IFC"):
                flags = faiss.IO_FLAG_MMAP_IFC
            else:
                with open(path, "rb") as handle:
                    if handle.read(2) == b"Iw":  # the fourcc of every IVF index
                        flags = faiss.IO_FLAG_MMAP
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            reason = re.sub(r"^Error in .*? at \S+:\d+: ", "", (str(exc).strip().splitlines() or [""])[-1])
            raise UsageError(f"{path}: not a readable FAISS index ({reason[:200] or type(exc).__name__})") from None
        kind, params = _describe(faiss, index)
        return cls(index, kind, params, read_only=mmap)


def _describe(faiss, index) -> tuple[str, dict]:
    """Kind and parameters of a FAISS index this module made, read back from the index itself."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIVF):
        codes = "fp32"
        if isinstance(index, faiss.IndexIVFScalarQuantizer):
            codes = {int(faiss.ScalarQuantizer.QT_4bit): "sq4",
                     int(faiss.ScalarQuantizer.QT_8bit): "sq8"}.get(int(index.sq.qtype), "sq")
        return "ivf", {"nlist": int(index.nlist), "nprobe": int(index.nprobe), "codes": codes}
    if isinstance(index, faiss.IndexIDMap):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSW):
            codes = "fp32" if isinstance(inner, faiss.IndexHNSWFlat) else "sq8"
            if isinstance(inner, faiss.IndexHNSWSQ):
                storage = faiss.downcast_index(inner.storage)
                codes = {int(faiss.ScalarQuantizer.QT_4bit): "sq4"}.get(int(storage.sq.qtype), "sq8")
            m = int(inner.hnsw.nb_neighbors(1))
            return "hnsw", {"m": m, "ef_construction": int(inner.hnsw.efConstruction),
                            "ef_search": int(inner.hnsw.efSearch), "codes": codes}
        if isinstance(inner, faiss.IndexFlat):
            return "flat", {"codes": "fp32"}
    raise UsageError(f"not an index vidprompt made: {type(index).__name__}")


def _as_rows(rows: np.ndarray, dim: int | None, name: str) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim != 2 or (dim is not None and rows.shape[1] != dim):
        want = f"[n, {dim}]" if dim is not None else "[n, D]"
        raise UsageError(f"{name} must be a matrix {want} (got shape {list(rows.shape)})")
    return np.ascontiguousarray(rows, dtype=np.float32)


def rerank(ids: np.ndarray, rows: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` of candidates: ``rows`` [n, D] are the candidates' stored rows (``ids`` [n]) ->
    (ids, float32 cosines), best first, ties to the lower id (as :func:`.scan.exact_top_k`)."""
    ids = np.asarray(ids, np.int64).reshape(-1)
    scores = (np.asarray(rows, np.float32) @ np.asarray(query, np.float32).reshape(-1)).astype(np.float32)
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order]


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """The share of the true top ``k`` ids (``truth`` [k'] or [queries, k']) among the first ``k`` found
    (``found``, same layout; rows may be shorter), averaged over queries."""
    if k < 1:
        raise out_of_range("k", k, "at least 1")
    found_rows, truth_rows = _id_lists(found), _id_lists(truth)
    if len(found_rows) != len(truth_rows):
        raise UsageError(f"{len(found_rows)} result lists for {len(truth_rows)} queries")
    shares = []
    for got, want in zip(found_rows, truth_rows):
        want = np.asarray(want)[:k]
        if len(want):
            shares.append(np.isin(want, np.asarray(got)[:k]).sum() / len(want))
    return float(np.mean(shares)) if shares else 1.0


def _id_lists(ids) -> list[np.ndarray]:
    """One array of ids per query, from one list of ids, a matrix, or a list of lists of any lengths."""
    if isinstance(ids, np.ndarray):
        return [ids] if ids.ndim == 1 else list(ids)
    ids = list(ids)
    if ids and np.ndim(ids[0]) == 0:
        return [np.asarray(ids)]
    return [np.asarray(one) for one in ids]
