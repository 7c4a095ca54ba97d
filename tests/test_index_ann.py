"""An index's approximate index (vidprompt index --ann): search through it returns what the exact scan returns
where it should (a flat index, every update), finds what it does not cover yet, never returns deleted rows,
holds its recall on clustered data, is kept current by builds (kept, added to, trained again, dropped), and
is an accelerator only: a missing FAISS or a damaged file leaves search exact and correct."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clustered import clustered_embeddings
from conftest import COLOURS, TINY_CONFIG
from media import solid_video, write_video
from synthetic_index import write_index
from vidprompt.errors import UsageError
from vidprompt.index import VideoIndex, build_index, compact_index
from vidprompt.index import ann as vpann
from vidprompt.index import shortlist
from vidprompt.index.build import update_shortlist
from vidprompt.index.store import read_meta

try:
    import faiss  # noqa: F401
except ImportError:  # in the test extra: a missing FAISS is a broken environment, not a reason to skip
    pytest.fail('FAISS is missing: the test extra installs it (pip install -e ".[test]")', pytrace=False)

TINY = ["--model", str(TINY_CONFIG), "--pretrained", "none", "--device", "cpu"]


@pytest.fixture(scope="module")
def clf(index_clf):
    return index_clf


@pytest.fixture
def cli_env(tmp_path):
    return {**os.environ, "VIDPROMPT_CACHE_DIR": str(tmp_path / "cache")}


def run_cli(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidprompt", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def _ann_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "ann").iterdir()) if (root / "ann").is_dir() else []


def _same_hits(index: VideoIndex, queries, top_k: int, whole_clips: bool = False) -> list:
    """Hits of every query through the approximate index, checked equal to the exact scan's."""
    all_hits = []
    for query in queries:
        fast = index.search_embedding(query, top_k, whole_clips=whole_clips)
        assert index.last_search.startswith("approximate")
        slow = index.search_embedding(query, top_k, whole_clips=whole_clips, exact=True)
        assert index.last_search.startswith("exact")
        assert [(h.path, h.start, h.row, h.window) for h in fast] == [(h.path, h.start, h.row, h.window) for h in slow]
        np.testing.assert_allclose([h.score for h in fast], [h.score for h in slow], rtol=0, atol=1e-6)
        all_hits.append(fast)
    return all_hits


def test_a_flat_approximate_index_answers_as_the_exact_scan_through_updates(tmp_path, clf):
    """Real videos and model, windows: the shortlist answers every query as the exact scan, after an append
    it does not cover (the new videos are found), after deletions (never returned) and after compaction."""
    lib = tmp_path / "lib"
    lib.mkdir()
    paths = [str(write_video(lib / f"c{i}.mp4", solid_video(rgb, n=12))) for i, rgb in enumerate(COLOURS[:6])]
    root = tmp_path / "idx"
    build_index(root, paths, clf, window=0.24, ann="flat")
    meta = read_meta(root)
    record = meta["ann"]["index"]
    assert meta["ann"]["setting"] == "flat" and record["table"] == "windows" and record["segments"] == [0]
    assert record["rows"] == meta["window_rows"] and _ann_files(root) == [record["file"]]
    index = VideoIndex(root)
    queries = [np.asarray(v.windows[0], np.float32) for v in index.videos()]
    _same_hits(index, queries, 5)
    index.search_embedding(queries[0], 3, whole_clips=True)
    assert index.last_search.startswith("exact")  # clips: not the table it covers

    added = [str(write_video(lib / f"new{i}.mp4", solid_video(rgb, n=12))) for i, rgb in enumerate(COLOURS[6:])]
    os.unlink(paths[1])
    now = [p for p in paths if p != paths[1]] + added
    build_index(root, now, clf, window=0.24)  # the setting is the index's: flat
    meta = read_meta(root)
    assert meta["ann"]["setting"] == "flat" and meta["ann"]["index"]["file"] != record["file"]  # 2 of 6: added
    index = VideoIndex(root)
    queries = [np.asarray(v.windows[0], np.float32) for v in index.videos()]
    hits = _same_hits(index, queries, 4)
    found = {h.path for one in hits for h in one}
    assert set(added) <= found and paths[1] not in found

    compact_index(root)
    meta = read_meta(root)
    assert [s["number"] for s in meta["segments"]] == [meta["generation"]]
    record = meta["ann"]["index"]
    assert record["segments"] == [meta["generation"]] and _ann_files(root) == [record["file"]]
    _same_hits(VideoIndex(root), queries, 4)

    build_index(root, now, clf, window=0.24, ann="none")
    meta = read_meta(root)
    assert meta["ann"] == {"setting": "none", "index": None} and _ann_files(root) == []
    VideoIndex(root).search_embedding(queries[0], 3)


def _clustered_index(root: Path, n: int, dim: int = 64, seed: int = 0, first_video: int = 0, queries: int = 0):
    rows, held_out = clustered_embeddings(n, dim, queries=queries, seed=seed)
    write_index(root, rows, first_video=first_video)
    return held_out


def test_builds_keep_add_to_retrain_and_drop_the_approximate_index(tmp_path, monkeypatch):
    """The life of an ivf index under automatic upkeep, on clustered rows: trained past the row threshold,
    kept while new segments are small (searched exactly meanwhile), added to, trained again once the rows
    have doubled, dropped below the threshold."""
    monkeypatch.setattr(shortlist, "AUTO_ROWS", 3000)
    root = tmp_path / "idx"
    _clustered_index(root, 2000)
    meta = update_shortlist(root, read_meta(root))
    assert meta["ann"] == {"setting": "auto", "index": None}  # below the threshold: exact

    _clustered_index(root, 1500, seed=1, first_video=2000)
    meta = update_shortlist(root, read_meta(root))
    first = meta["ann"]["index"]
    assert first["kind"] == "ivf" and first["rows"] == first["trained_rows"] == 3500
    assert first["segments"] == [0, 1] and _ann_files(root) == [first["file"]]

    held_out = _clustered_index(root, 500, seed=2, first_video=3500, queries=20)  # 500 <= 0.2 x 3500: kept
    meta = update_shortlist(root, read_meta(root))
    assert meta["ann"]["index"] == first
    index = VideoIndex(root)
    new_rows = index.segments[-1].embeddings
    for row in range(0, 500, 50):  # a new row is its own best match, though the ivf index does not hold it
        hit = index.search_embedding(np.asarray(new_rows[row], np.float32), 1)[0]
        assert index.last_search.startswith("approximate: ivf") and hit.path == f"/videos/clip{3500 + row:07d}.mp4"

    _clustered_index(root, 1000, seed=3, first_video=4000)  # 1500 uncovered > 0.2 x 3500: added, not retrained
    meta = update_shortlist(root, read_meta(root))
    second = meta["ann"]["index"]
    assert second["file"] != first["file"] and second["trained_rows"] == 3500 and second["rows"] == 5000
    assert second["segments"] == [0, 1, 2, 3] and _ann_files(root) == [second["file"]]
    assert vpann.ApproximateIndex.load(root / "ann" / second["file"]).count == 5000

    _clustered_index(root, 2500, seed=4, first_video=5000)  # 7500 > 2 x 3500: trained again
    meta = update_shortlist(root, read_meta(root))
    third = meta["ann"]["index"]
    assert third["trained_rows"] == third["rows"] == 7500

    monkeypatch.setattr(shortlist, "AUTO_ROWS", 10_000)
    meta = update_shortlist(root, read_meta(root))
    assert meta["ann"]["index"] is None and _ann_files(root) == []
    assert len(VideoIndex(root).search_embedding(held_out[0], 10)) == 10


def test_recall_through_the_index_on_clustered_rows(tmp_path):
    """ivf with automatic parameters, through VideoIndex (three segments, deletions): the top 10 of held-out
    queries against the exact scan's, and the scores of what it finds are the exact ones."""
    rows, queries = clustered_embeddings(30_000, 128, queries=50, seed=5)
    root = tmp_path / "idx"
    write_index(root, rows, segments=3)
    update_shortlist(root, read_meta(root), "ivf")
    index = VideoIndex(root)
    found, truth = [], []
    for query in queries:
        fast = index.search_embedding(query, 10, whole_clips=True)
        assert index.last_search.startswith("approximate: ivf over 30,000 clips")
        slow = index.search_embedding(query, 10, whole_clips=True, exact=True)
        found.append([h.row for h in fast])
        truth.append([h.row for h in slow])
        exact = {h.row: h.score for h in slow}
        assert all(abs(h.score - exact[h.row]) < 1e-6 for h in fast if h.row in exact)
    recall = vpann.recall_at_k(found, truth, 10)
    assert recall >= 0.95, recall


def test_without_faiss_or_with_a_damaged_file_search_is_exact(tmp_path, monkeypatch, caplog):
    rows, queries = clustered_embeddings(4000, 32, queries=5, seed=6)
    root = tmp_path / "idx"
    write_index(root, rows)
    meta = update_shortlist(root, read_meta(root), "ivf")
    expected = [[(h.path, h.score) for h in VideoIndex(root).search_embedding(q, 5, exact=True)] for q in queries]

    def no_faiss():
        raise UsageError(vpann.MISSING)

    with monkeypatch.context() as mp:
        mp.setattr(vpann, "_faiss", no_faiss)
        index = VideoIndex(root)
        assert [[(h.path, h.score) for h in index.search_embedding(q, 5)] for q in queries] == expected
        assert index.last_search.startswith("exact")
        with pytest.raises(UsageError, match=r"ann ivf: .*pip install"):
            shortlist.check_setting("ivf")
        assert shortlist.check_setting("auto") == "auto"
        with caplog.at_level(logging.WARNING):  # a build keeps going, exact, and says so
            meta = update_shortlist(root, meta)
        assert meta["ann"] == {"setting": "ivf", "index": None}
        assert "FAISS is not installed" in caplog.text

    meta = update_shortlist(root, meta)  # FAISS back: the setting (ivf) brings the index back
    (root / "ann" / meta["ann"]["index"]["file"]).write_bytes(b"not a faiss index")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        index = VideoIndex(root)
        assert [[(h.path, h.score) for h in index.search_embedding(q, 5)] for q in queries] == expected
    assert index.last_search.startswith("exact") and "approximate index unusable" in caplog.text
    meta = update_shortlist(root, meta)  # the next build trains a new one
    assert VideoIndex(root).shortlist.usable

    with pytest.raises(UsageError, match="ann must be one of"):
        shortlist.check_setting("annoy")


def test_cli_ann_and_exact(tmp_path, cli_env):
    """vidprompt index --ann flat; search says it answered approximately and --exact prints the same results;
    --ann ivf where FAISS cannot be imported is one line, exit 2, before anything is written."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for i, rgb in enumerate(COLOURS[:4]):
        write_video(lib / f"c{i}.mp4", solid_video(rgb, n=12))
    root = tmp_path / "idx"
    built = run_cli("index", str(lib), "--out", str(root), "--ann", "flat", "-q", "-j", "0", *TINY, env=cli_env)
    assert built.returncode == 0, built.stderr
    table = run_cli("search", str(root), "a red clip", "-k", "3", *TINY, env=cli_env)
    assert table.returncode == 0 and "approximate: flat over 4 clips, re-ranked exactly" in table.stdout, table.stdout
    exact_table = run_cli("search", str(root), "a red clip", "-k", "3", "--exact", *TINY, env=cli_env)
    assert exact_table.returncode == 0 and "exact: all 4 clips scanned" in exact_table.stdout, exact_table.stdout
    fast = run_cli("search", str(root), "a red clip", "-k", "3", "--json", *TINY, env=cli_env)
    slow = run_cli("search", str(root), "a red clip", "-k", "3", "--json", "--exact", *TINY, env=cli_env)
    assert fast.returncode == slow.returncode == 0 and json.loads(fast.stdout) == json.loads(slow.stdout)

    hide = tmp_path / "hide"
    (hide / "faiss").mkdir(parents=True)
    (hide / "faiss" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = {**cli_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(hide), cli_env.get("PYTHONPATH")]))}
    refused = run_cli("index", str(lib), "--out", str(tmp_path / "other"), "--ann", "ivf", *TINY, env=env)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 2 and len(lines) == 1 and 'pip install "vidprompt[ann]"' in lines[0], refused.stderr
    assert "--ann ivf" in lines[0] and not (tmp_path / "other").exists()
    searched = run_cli("search", str(root), "a red clip", "-k", "3", "--json", *TINY, env=env)
    assert searched.returncode == 0 and json.loads(searched.stdout) == json.loads(slow.stdout)


@pytest.mark.parametrize("record", [
    {"setting": "auto", "index": {"file": "../../../etc/passwd", "kind": "ivf", "table": "clips", "segments": [0],
                                  "rows": 10, "trained_rows": 10}},
    {"setting": "bogus", "index": {"file": "ann-000000-ivf.faiss", "kind": "ivf", "table": "clips",
                                   "segments": "all", "rows": 10, "trained_rows": 10}},
    {"setting": "ivf", "index": "yes"},
    "nonsense",
])
def test_a_malformed_record_is_no_approximate_index(tmp_path, record):
    """index.json's ann record only ever names a file of the ann folder by its own pattern; anything else in
    it is ignored (search is exact) and the next build writes a proper record."""
    rows, queries = clustered_embeddings(500, 16, queries=1, seed=7)
    root = tmp_path / "idx"
    meta = write_index(root, rows)
    from vidprompt.index.store import recommit

    meta = recommit(root, meta, ann=record)
    index = VideoIndex(root)
    assert index.shortlist is None and len(index.search_embedding(queries[0], 3)) == 3
    assert index.last_search.startswith("exact")
    meta = update_shortlist(root, meta)  # a well-formed record: auto (500 rows: none), or the valid setting's
    expected = "ivf" if isinstance(record, dict) and record["setting"] == "ivf" else "auto"
    assert meta["ann"]["setting"] == expected and shortlist.record_of(meta) == meta["ann"]["index"]
    assert _ann_files(root) == ([meta["ann"]["index"]["file"]] if expected == "ivf" else [])


class Killed(BaseException):
    """Stands for SIGKILL at a chosen point (BaseException: no handler on the way catches it)."""


def test_a_build_killed_while_it_updates_the_approximate_index_loses_nothing(tmp_path, monkeypatch):
    """Killed after the new FAISS file is written but before index.json names it: the index is the previous
    state (old approximate index, new rows scanned exactly), and the next commit deletes the orphan; a
    temporary file a killed save left behind goes the same way."""
    from vidprompt.index import build as vpbuild

    rows, queries = clustered_embeddings(3000, 32, queries=3, seed=8)
    root = tmp_path / "idx"
    first = update_shortlist(root, write_index(root, rows), "flat")["ann"]["index"]["file"]
    more, _ = clustered_embeddings(1000, 32, seed=9)
    write_index(root, more, first_video=3000)  # 1000 uncovered > a fifth of 3000: the update adds them

    def killed(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as mp:
        mp.setattr(vpbuild, "recommit", killed)
        with pytest.raises(Killed):
            update_shortlist(root, read_meta(root))
    assert len(_ann_files(root)) == 2 and read_meta(root)["ann"]["index"]["file"] == first
    index = VideoIndex(root)
    for query in [*queries, np.asarray(more[10], np.float32)]:
        fast = index.search_embedding(query, 5)
        assert index.last_search.startswith("approximate: flat over 3,000 clips")
        assert [h.row for h in fast] == [h.row for h in index.search_embedding(query, 5, exact=True)]

    (root / "ann" / ".ann-000009-flat.faiss.x1y2.tmp").write_bytes(b"half a file")
    meta = update_shortlist(root, read_meta(root))
    assert meta["ann"]["index"]["segments"] == [0, 1] and _ann_files(root) == [meta["ann"]["index"]["file"]]
