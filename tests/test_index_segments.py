"""The index as segments: an update appends a segment and marks deletions, compaction merges, a crash at any
write of a commit leaves a readable index, format-1 indexes are read and migrated, and the chunked exact scan
equals a brute-force ranking."""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import COLOURS
from media import solid_video, write_video
from vidprompt.index import VideoIndex, build_index, compact_index
from vidprompt.index import build as vpbuild
from vidprompt.index import segment as vpsegment
from vidprompt.index import store as vpstore
from vidprompt.index.scan import Table, exact_top_k



@pytest.fixture(scope="module")
def clf(index_clf):
    return index_clf


def _library(folder: Path, colours=COLOURS[:6], n=12) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [str(write_video(folder / f"c{i}.mp4", solid_video(rgb, n=n))) for i, rgb in enumerate(colours)]


def _rows(root) -> dict[str, tuple]:
    """path -> (embedding, windows, window times) of the index's live videos."""
    return {v.path: (v.embedding, v.windows, v.window_times) for v in VideoIndex(root).videos()}


def _assert_same_rows(a: dict, b: dict, atol: float = 0.0) -> None:
    assert sorted(a) == sorted(b)
    for path in a:
        for x, y in zip(a[path], b[path]):
            if x is None:
                assert y is None
            else:
                np.testing.assert_allclose(np.asarray(x, np.float32), np.asarray(y, np.float32), atol=atol,
                                           err_msg=path)


def _update(folder: Path, paths: list[str]) -> list[str]:
    """A change of the library: one file rewritten, one deleted, two added."""
    changed, deleted = paths[0], paths[1]
    write_video(changed, solid_video((120, 60, 20), n=12))
    os.utime(changed, (1_000_000_000, 1_000_000_000))
    os.unlink(deleted)
    added = [str(write_video(folder / f"new{i}.mp4", solid_video(rgb, n=12))) for i, rgb in enumerate(COLOURS[6:])]
    return [p for p in paths if p != deleted] + added


def test_updates_append_segments_deletions_hide_rows_and_compaction_keeps_them(tmp_path, clf, monkeypatch):
    paths = _library(tmp_path / "lib")
    root = tmp_path / "idx"
    build_index(root, paths, clf, window=0.24)
    now = _update(tmp_path / "lib", paths)
    report = build_index(root, now, clf, window=0.24)
    assert (len(report.added), len(report.changed), len(report.removed)) == (2, 1, 1)
    index = VideoIndex(root)
    assert [s.number for s in index.segments] == [0, 1] and len(index) == len(now) == report.videos
    assert index.segments[0].dead_entries.tolist() == [0, 1]  # the changed and the deleted video's old entries
    assert index.meta["videos"] == len(now) and index.meta["window_rows"] == report.windows
    hits = index.search_embedding(index.segments[0].embeddings[1].astype(np.float32), top_k=len(now) * 4,
                                  whole_clips=True)
    assert paths[1] not in {h.path for h in hits} and len(hits) == len(now)  # a deleted video is never found
    window_hits = index.search_embedding(index.segments[0].windows[0].astype(np.float32), top_k=100)
    assert {h.path for h in window_hits} == set(now)

    before = _rows(root)
    fresh = tmp_path / "fresh"
    build_index(fresh, now, clf, window=0.24)
    _assert_same_rows(before, _rows(fresh), atol=2e-3)  # what a fresh build of the same files holds

    compact_index(root)
    after = VideoIndex(root)
    assert [s.number for s in after.segments] == [2] and len(after.segments[0].dead_entries) == 0
    _assert_same_rows(before, _rows(root))  # rows copied, not recomputed
    assert sorted(p.name for p in (root / "segments").iterdir()) == ["000002"]

    # Past the threshold, a commit compacts by itself.
    monkeypatch.setattr(vpbuild, "MAX_SEGMENTS", 1)
    os.utime(now[2], (1_000_000_500, 1_000_000_500))
    build_index(root, now, clf, window=0.24)
    assert len(VideoIndex(root).segments) == 1
    _assert_same_rows(before, _rows(root), atol=2e-3)


def test_removing_every_video_of_a_segment_drops_the_segment(tmp_path, clf):
    paths = _library(tmp_path / "lib", COLOURS[:3])
    root = tmp_path / "idx"
    build_index(root, paths[:2], clf)
    build_index(root, paths, clf)  # segment 1: the third video
    build_index(root, paths[:2], clf)
    index = VideoIndex(root)
    assert [s.number for s in index.segments] == [0] and len(index) == 2
    assert sorted(p.name for p in (root / "segments").iterdir()) == ["000000"]


@contextmanager
def _killed_after(kill_at: int | None):
    """Every file write and deletion of a commit counted (segment files, deletion lists, index.json, garbage
    removal); ``Killed`` raised right after number ``kill_at``."""
    targets = [(vpsegment, "_save"), (vpsegment, "_write_bytes"), (vpsegment, "atomic_write"),
               (vpstore, "atomic_write_json"), (vpstore.shutil, "rmtree")]
    real = {(module, name): getattr(module, name) for module, name in targets}
    done = []

    def counting(module, name):
        def step(*args, **kwargs):
            result = real[(module, name)](*args, **kwargs)
            done.append(name)
            if len(done) == kill_at:
                raise Killed
            return result
        return step

    for module, name in targets:
        setattr(module, name, counting(module, name))
    try:
        yield done
    finally:
        for (module, name), function in real.items():
            setattr(module, name, function)


class Killed(Exception):
    pass


def test_a_crash_at_any_write_of_a_commit_leaves_a_readable_index_that_resumes(tmp_path, clf):
    source = tmp_path / "source"
    paths = _library(source)
    first = tmp_path / "first"
    build_index(first, paths, clf, window=0.24)
    now = _update(source, paths)
    straight = tmp_path / "straight"
    shutil.copytree(first, straight)
    with _killed_after(None) as steps:
        build_index(straight, now, clf, window=0.24)
    expected, old = _rows(straight), _rows(first)
    assert len(steps) >= 8, steps
    for kill_at in range(1, len(steps) + 1):
        root = tmp_path / f"killed-{kill_at}"
        shutil.copytree(first, root)
        with _killed_after(kill_at), pytest.raises(Killed):
            build_index(root, now, clf, window=0.24)
        state = _rows(root)  # readable: the old state or the new one, whole
        assert state.keys() in (old.keys(), expected.keys()), (kill_at, steps[kill_at - 1])
        _assert_same_rows(state, old if state.keys() == old.keys() else expected)
        build_index(root, now, clf, window=0.24)  # the rerun finishes the job
        _assert_same_rows(_rows(root), expected)
        leftovers = sorted(p.name for p in root.rglob("*") if ".tmp" in p.name or p.name == "pending")
        assert leftovers == [], (kill_at, leftovers)


def _format_1_index(root: Path, clf, paths: list[str]) -> np.ndarray:
    """An index as vidprompt wrote it before segments (format 1): top-level manifest and arrays."""
    from vidprompt.index.store import model_record, stored_rows

    rows = np.stack([stored_rows(e) for _, _, e, _ in clf.video_embeddings(paths)]).astype(np.float16)
    root.mkdir()
    np.save(root / "embeddings.npy", rows)
    entries = [{"path": p, "size": os.stat(p).st_size, "mtime": os.stat(p).st_mtime, "frames": 12, "fps": 25.0,
                "duration": 0.48, "decoder": "pyav", "row": i} for i, p in enumerate(paths)]
    (root / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    (root / "index.json").write_text(json.dumps({
        "format": "vidprompt-index", "format_version": 1, "vidprompt_version": "0.1.0",
        "model": model_record(clf), "view": clf.view.to_dict(), "windows": None, "inputs": None,
        "videos": len(paths), "failed": 0, "window_rows": 0, "dtype": "float16", "updated": "2026-11-01"}))
    return rows


def test_a_format_1_index_is_searched_as_it_is_and_migrated_by_the_next_build(tmp_path, clf, caplog):
    paths = _library(tmp_path / "lib", COLOURS[:4])
    root = tmp_path / "old.vpindex"
    rows = _format_1_index(root, clf, paths)
    index = VideoIndex(root)
    assert len(index) == 4 and [v.path for v in index.videos()] == paths
    hits = index.search(clf, like=paths[2], top_k=1)
    assert hits[0].path == paths[2] and hits[0].score > 0.999

    with caplog.at_level(logging.WARNING, logger="vidprompt"):
        report = build_index(root, paths, clf)
    assert "index format 1 turned into format 2" in caplog.text
    assert report.unchanged == 4 and report.embedded == []  # nothing embedded again
    migrated = VideoIndex(root)
    assert migrated.meta["format_version"] == 2 and len(migrated.segments) == 1
    assert np.array_equal(np.stack([v.embedding for v in migrated.videos()]), rows)
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["index.json", "segments"]


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 100_000])
def test_the_chunked_scan_equals_a_brute_force_ranking(chunk_rows):
    rng = np.random.default_rng(chunk_rows)
    rows = rng.standard_normal((300, 16)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    rows[50] = rows[10]  # a tie: the lower id comes first
    matrix = rows.astype(np.float16)
    query = rows[10] + 0.05 * rng.standard_normal(16).astype(np.float32)
    dead = np.array([(1 << 32) + 3, (1 << 32) + 40])
    tables = [Table(matrix[:120]), Table(matrix[120:], 1 << 32, dead)]
    ids, scores = exact_top_k(tables, query, 25, chunk_rows=chunk_rows)
    all_ids = np.concatenate([np.arange(120), (1 << 32) + np.arange(180)])
    exact = matrix.astype(np.float32) @ query.astype(np.float32)
    keep = ~np.isin(all_ids, dead)
    order = np.lexsort((all_ids[keep], -exact[keep]))[:25]
    assert ids.tolist() == all_ids[keep][order].tolist()
    np.testing.assert_allclose(scores, exact[keep][order], atol=1e-6)
    assert ids.tolist().index(10) < ids.tolist().index(50)
