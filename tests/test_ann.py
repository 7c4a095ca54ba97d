"""Approximate search (vidprompt.index.ann): recall after exact re-ranking measured against the exact scan on
clustered embeddings, the exact (flat) kind equal to the scan, ids kept, files round-tripped, and one error
line without FAISS."""

from __future__ import annotations

import sys

import numpy as np
import pytest

try:
    import faiss  # noqa: F401
except ImportError:  # in the test extra: a missing FAISS is a broken environment, not a reason to skip
    pytest.fail('FAISS is missing: the test extra installs it (pip install -e ".[test]")', pytrace=False)

from clustered import clustered_embeddings
from vidprompt.errors import UsageError
from vidprompt.index import ann
from vidprompt.index.ann import ApproximateIndex, recall_at_k, rerank
from vidprompt.index.scan import Table, exact_top_k

BASE = 3 << 32  # ids with high bits set, as a second segment's rows have
RECALL = 0.95  # the published bound: recall@10 after re-ranking ann.CANDIDATES candidates


def _data(n, dim, clusters, seed):
    rows, queries = clustered_embeddings(n, dim, clusters=clusters, queries=100, seed=seed)
    truth = [exact_top_k([Table(rows, first_id=BASE)], q, 10) for q in queries]
    return rows, queries, truth


@pytest.fixture(scope="module")
def big():
    return _data(50_000, 64, 400, seed=1)


@pytest.fixture(scope="module")
def small():
    return _data(10_000, 64, 100, seed=2)


def _build(rows, kind, **overrides):
    rng = np.random.default_rng(0)
    take = np.sort(rng.choice(len(rows), ann.sample_size(kind, len(rows)), replace=False))
    index = ApproximateIndex.train(rows[take], kind, rows_expected=len(rows), **overrides)
    for start in range(0, len(rows), 20_000):  # streamed, as a caller adds a large table
        index.add(BASE + np.arange(start, min(len(rows), start + 20_000)), rows[start:start + 20_000])
    return index


def _top10(index, rows, query, candidates=ann.CANDIDATES):
    ids, _ = index.search(query, candidates)
    return rerank(ids, rows[ids - BASE], query, 10)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_recall_at_10_after_reranking_meets_the_published_bound(big, small, kind):
    rows, queries, truth = big if kind == "ivf" else small
    index = _build(rows, kind)
    assert index.count == len(rows)
    found = [_top10(index, rows, q)[0] for q in queries]
    recall = recall_at_k(found, [t[0] for t in truth], 10)
    assert recall >= RECALL, f"{kind} {index.params}: recall@10 {recall:.3f}"
    for got, (ids, scores) in zip(found, truth):  # every id is a real row, scored exactly as the scan does
        assert np.all(got >= BASE) and np.all(got < BASE + len(rows))


def test_flat_kind_is_the_exact_scan(small):
    rows, queries, truth = small
    index = _build(rows, "flat")
    for q, (ids, scores) in zip(queries, truth):
        got_ids, got_scores = index.search(q, 10)
        np.testing.assert_array_equal(got_ids, ids)
        np.testing.assert_allclose(got_scores, scores, atol=1e-6)
        re_ids, re_scores = _top10(index, rows, q)  # the re-ranking path gives the same
        np.testing.assert_array_equal(re_ids, ids)
        np.testing.assert_allclose(re_scores, scores, atol=1e-6)


def test_ivf_scanning_every_list_of_float32_rows_is_exact(small, tmp_path):
    rows, queries, truth = small
    index = _build(rows, "ivf", codes="fp32", nlist=32)
    index.nprobe = 32  # every list
    assert ApproximateIndex.load(index.save(tmp_path / "all.faiss")).nprobe == 32  # kept in the file
    for q, (ids, scores) in zip(queries, truth):
        got_ids, got_scores = index.search(q, 10)
        np.testing.assert_array_equal(got_ids, ids)
        np.testing.assert_allclose(got_scores, scores, atol=1e-6)
    with pytest.raises(UsageError, match="ef_search must be at least 1, for an hnsw index"):
        index.ef_search = 64


@pytest.mark.parametrize("kind", ann.KINDS)
def test_save_and_load_give_the_same_results(small, tmp_path, kind):
    rows, queries, _ = small
    index = _build(rows, kind)
    path = index.save(tmp_path / f"{kind}.faiss")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{kind}.faiss"]  # no temp file left
    mapped = ApproximateIndex.load(path)
    loaded = ApproximateIndex.load(path, mmap=False)
    for other in (mapped, loaded):
        assert (other.kind, other.dim, other.count, other.params) == (kind, 64, len(rows), index.params)
        for q in queries[:20]:
            want = index.search(q, 50)
            got = other.search(q, 50)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
    with pytest.raises(UsageError, match="mmap=False"):
        mapped.add(np.array([1]), rows[:1])
    if kind == "hnsw":  # a search breadth set on a loaded index is saved with it
        loaded.ef_search = 200
        assert ApproximateIndex.load(loaded.save(tmp_path / "again.faiss")).ef_search == 200
    loaded.add(np.array([7]), rows[:1])  # a plain load can grow
    assert loaded.count == len(rows) + 1


def test_a_damaged_or_foreign_file_is_one_usage_error(small, tmp_path):
    rows, _, _ = small
    path = _build(rows[:2000], "flat").save(tmp_path / "flat.faiss")
    path.write_bytes(path.read_bytes()[:100_000])  # cut short
    (tmp_path / "text.faiss").write_text("not an index")
    for bad in (path, tmp_path / "text.faiss"):
        for mmap in (True, False):
            with pytest.raises(UsageError, match="not a readable FAISS index") as caught:
                ApproximateIndex.load(bad, mmap=mmap)
            assert "\n" not in str(caught.value)
    with pytest.raises(UsageError, match="approximate index not found"):
        ApproximateIndex.load(tmp_path / "missing.faiss")

def test_adding_in_batches_equals_one_batch(small, tmp_path):
    rows, queries, _ = small
    trained = ApproximateIndex.train(rows[:5000], "ivf", rows_expected=len(rows), nlist=64)
    trained.save(tmp_path / "empty.faiss")
    one, two = (ApproximateIndex.load(tmp_path / "empty.faiss", mmap=False) for _ in range(2))
    ids = BASE + np.arange(len(rows))
    one.add(ids, rows)
    two.add(ids[:3000], rows[:3000])
    two.add(ids[3000:], rows[3000:].astype(np.float32))
    assert one.count == two.count == len(rows)
    for q in queries[:20]:
        a, b = one.search(q, 30), two.search(q, 30)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_ids_are_kept_whole():
    rows, queries = clustered_embeddings(500, 32, clusters=10, queries=5, seed=3)
    ids = (np.arange(len(rows), dtype=np.int64) << 32) + 12345  # every row in another "segment"
    index = ApproximateIndex.train(rows, "flat", rows_expected=len(rows))
    index.add(ids, rows)
    for q in queries:
        got, scores = index.search(q, 5)
        assert got.dtype == np.int64 and set(got) <= set(ids)
        np.testing.assert_allclose(scores, rows[(got - 12345) >> 32].astype(np.float32) @ q, atol=1e-6)


def test_fewer_rows_than_candidates_drops_the_padding():
    rows, queries = clustered_embeddings(40, 16, clusters=4, queries=1, seed=4)
    for kind in ann.KINDS:
        index = ApproximateIndex.train(rows, kind, rows_expected=len(rows))
        index.add(np.arange(len(rows)), rows)
        ids, scores = index.search(queries[0], 100)
        assert len(ids) == len(scores) == 40 and np.all(ids >= 0)


def test_parameters_follow_the_size_and_bad_input_is_one_line():
    assert ann.choose_params("ivf", 1_000_000) == {"nlist": 2048, "nprobe": 16, "codes": "sq4"}
    assert ann.choose_params("ivf", 5_000_000) == {"nlist": 4096, "nprobe": 32, "codes": "sq4"}
    assert ann.choose_params("ivf", 5_000_000, sample_rows=39 * 1000)["nlist"] == 512  # as many as it can train
    assert ann.sample_size("ivf", 1_000_000) == 64 * 2048 and ann.sample_size("ivf", 1000) == 1000
    assert ann.sample_size("flat", 10) == 0
    with pytest.raises(UsageError, match="kind must be one of ivf, hnsw, flat"):
        ann.choose_params("lsh", 10)
    index = ApproximateIndex.train(np.zeros((0, 8), np.float32), "flat", rows_expected=0)
    with pytest.raises(UsageError, match=r"rows must be a matrix \[n, 8\]"):
        index.add(np.arange(2), np.zeros((2, 9), np.float32))
    with pytest.raises(UsageError, match="3 ids for 2 rows"):
        index.add(np.arange(3), np.zeros((2, 8), np.float32))
    assert len(index.search(np.ones(8), 5)[0]) == 0


def test_recall_at_k():
    assert recall_at_k(np.array([1, 2, 3]), np.array([3, 2, 9]), 3) == pytest.approx(2 / 3)
    assert recall_at_k([[1, 2], [5, 6]], [[2, 1], [7, 8]], 2) == pytest.approx(0.5)
    assert recall_at_k([[4, 1]], [[1, 4]], 1) == 0.0  # only the first k found count
    assert recall_at_k([np.array([1, 2, 3]), np.array([7])], [[1, 2], [7, 8]], 2) == pytest.approx(0.75)


def test_without_faiss_one_usage_error_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    assert not ann.faiss_available()
    for call in (lambda: ApproximateIndex.train(np.zeros((4, 8), np.float32), "flat", rows_expected=4),
                 lambda: ApproximateIndex.load(tmp_path / "x.faiss"), lambda: ann.set_threads(1)):
        with pytest.raises(UsageError) as caught:
            call()
        assert str(caught.value) == 'approximate search needs FAISS: pip install "vidprompt[ann]"'
