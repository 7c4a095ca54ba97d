"""Video library index: search by example and by text, incremental and resumable builds, model checks, CLI."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import TINY_CONFIG
from media import solid_video, write_video
from vidprompt import index as vpindex
from vidprompt.classifier import VideoClassifier, load_classifier
from vidprompt.errors import UsageError
from vidprompt.index import VideoIndex, build_index
from vidprompt.index import build as vpbuild
from vidprompt.index import store as vpstore
from vidprompt.localization import SlidingWindows, window_spans
from vidprompt.methods import build_method
from vidprompt.methods.base import normalize
from vidprompt.video import ViewConfig

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
           "cyan": (30, 210, 220), "magenta": (210, 30, 200), "white": (240, 240, 240)}


def checkerboard(n=16, size=32, cell=4, phase=0):
    y, x = np.mgrid[:size, :size]
    board = (((y // cell) + (x // cell) + phase) % 2 * 200 + 30).astype(np.uint8)
    return np.repeat(np.repeat(board[None, :, :, None], 3, axis=3), n, axis=0)


def make_library(root):
    """Solid colours, two textures and an exact copy of one clip (same bytes, another name)."""
    paths = [write_video(root / f"{name}.mp4", solid_video(rgb, n=16)) for name, rgb in COLOURS.items()]
    paths.append(write_video(root / "checks.mp4", checkerboard()))
    paths.append(write_video(root / "checks_coarse.mp4", checkerboard(cell=8)))
    shutil.copy(root / "green.mp4", root / "green_copy.mp4")
    paths.append(root / "green_copy.mp4")
    return sorted(str(p) for p in paths)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDPROMPT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return make_library(tmp_path_factory.mktemp("library"))


@pytest.fixture(scope="module")
def clf(env):
    return load_classifier(str(TINY_CONFIG), "none", device="cpu", num_workers=0, batch_size=3)


@pytest.fixture(scope="module")
def built(library, clf, tmp_path_factory):
    root = tmp_path_factory.mktemp("idx") / "lib.vpindex"
    report = build_index(root, library, clf, inputs=[os.path.dirname(library[0])])
    return root, report


def direct_embeddings(clf, paths):
    rows = [normalize(e.mean(dim=0)) for _, _, e, _ in clf.video_embeddings(paths)]
    return torch.stack(rows).numpy()


def test_nearest_neighbour_of_every_clip_is_itself_or_its_exact_copy(built, library, clf):
    root, report = built
    assert report.videos == len(library) and report.failed == [] and len(report.added) == len(library)
    index = VideoIndex(root)
    copies = {p: {p} for p in library}
    pair = {p for p in library if os.path.basename(p) in ("green.mp4", "green_copy.mp4")}
    for p in pair:
        copies[p] = pair
    for path in library:
        hits = index.search(clf, like=path, top_k=len(copies[path]) + 1)
        assert {h.path for h in hits[:len(copies[path])]} == copies[path], (path, hits)
        assert hits[0].score > 0.999 and hits[len(copies[path])].score < hits[0].score - 1e-3
        assert hits[0].start == 0.0 and hits[0].end == pytest.approx(16 / 25)


def test_index_holds_exactly_the_classifiers_embeddings_and_text_scores_match(built, library, clf):
    root, _ = built
    index = VideoIndex(root)
    videos = list(index.videos())
    assert [v.path for v in videos] == library and all(v.embedding.dtype == np.float16 for v in videos)
    assert len(index.segments) == 1 and isinstance(index.segments[0].embeddings, np.memmap)
    direct = direct_embeddings(clf, library)  # same batches as the build: identical floats before fp16
    assert np.array_equal(np.stack([v.embedding for v in videos]), direct.astype(np.float16))

    query = "a red square"
    text = clf.label_embeddings([query])[0].numpy()
    expected = direct.astype(np.float16).astype(np.float32) @ text
    hits = index.search(clf, query, top_k=len(library))
    assert [h.path for h in hits] == [library[i] for i in np.argsort(-expected, kind="stable")]
    np.testing.assert_allclose([h.score for h in hits], np.sort(expected)[::-1], atol=1e-5)
    np.testing.assert_allclose(expected, direct @ text, atol=2e-3)  # fp16 storage costs < 2e-3 of cosine
    assert len(index.search(clf, query, top_k=3)) == 3


def test_window_index_finds_the_moment_inside_a_long_clip(tmp_path, clf):
    lib = tmp_path / "lib"
    red_then_blue = np.concatenate([solid_video(COLOURS["red"], n=20), solid_video(COLOURS["blue"], n=20)])
    long_clip = str(write_video(lib / "red_then_blue.mp4", red_then_blue, fps=10))  # 2 s red, 2 s blue
    green = str(write_video(lib / "green.mp4", solid_video(COLOURS["green"], n=20), fps=10))
    query = str(write_video(tmp_path / "blue.mp4", solid_video(COLOURS["blue"], n=10), fps=10))
    report = build_index(tmp_path / "idx", [long_clip, green], clf, window=1.0, window_stride=0.5)
    assert report.windows == len(window_spans(4.0, 1.0, 0.5)) + len(window_spans(2.0, 1.0, 0.5)) == 10
    index = VideoIndex(tmp_path / "idx")
    hit = index.search(clf, like=query, top_k=1)[0]
    assert hit.path == long_clip and hit.start >= 2.0 and hit.end <= 4.0
    clip_hits = {h.path: h for h in index.search(clf, like=query, top_k=2, whole_clips=True)}
    assert (clip_hits[long_clip].start, clip_hits[long_clip].end) == (0.0, 4.0)
    hits = index.search(clf, like=query, top_k=5)  # overlapping windows of one video are one moment
    spans = sorted((h.start, h.end) for h in hits if h.path == long_clip)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    stream = SlidingWindows(clf, long_clip, 1.0, 0.5)
    rows = np.stack([normalize(e.mean(0)).numpy() for _, e, _ in stream.embeddings()])
    stored = next(index.videos())
    assert stored.path == long_clip and np.array_equal(stored.windows, rows.astype(np.float16))
    assert stored.window_times.tolist() == [[w.start, w.end] for w in stream.windows]


def test_rebuild_embeds_only_added_changed_and_deleted_files(tmp_path, clf, monkeypatch):
    lib = tmp_path / "lib"
    paths = make_library(lib)
    root = tmp_path / "idx"
    build_index(root, paths, clf)
    before = VideoIndex(root)
    old_rows = {v.path: v.embedding for v in before.videos()}
    first_segment = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in before.segments[0].folder.iterdir()}

    added = str(write_video(lib / "new.mp4", checkerboard(phase=1, cell=2)))
    changed = str(lib / "red.mp4")
    write_video(changed, solid_video((120, 60, 20), n=16))
    os.utime(changed, (1_000_000_000, 1_000_000_000))  # a new mtime even within the clock's resolution
    deleted = str(lib / "cyan.mp4")
    os.unlink(deleted)
    now = sorted(str(p) for p in lib.glob("*.mp4"))

    decoded = []
    import vidprompt.loader

    real = vidprompt.loader.load_clip_frames
    monkeypatch.setattr(vidprompt.loader, "load_clip_frames", lambda p, *a, **k: decoded.append(p) or real(p, *a, **k))
    report = build_index(root, now, clf)
    assert sorted(decoded) == sorted(report.embedded) == sorted([added, changed])
    assert (report.added, report.changed, report.removed) == ([added], [changed], [deleted])
    assert report.unchanged == len(paths) - 2 and report.videos == len(paths)
    after = VideoIndex(root)
    rows = {v.path: v.embedding for v in after.videos()}
    assert sorted(rows) == now
    for path, row in rows.items():
        if path in old_rows and path != changed:
            assert np.array_equal(row, old_rows[path])  # kept, not recomputed
    assert not np.array_equal(rows[changed], old_rows[changed])
    np.testing.assert_allclose(np.stack([rows[p] for p in now]).astype(np.float32), direct_embeddings(clf, now),
                               atol=2e-3)
    # The update appended one segment and marked the changed and deleted videos' old entries deleted; the
    # first segment's files were not rewritten (only a small list of deletions was added beside them).
    assert len(after.segments) == 2 and len(after.segments[0].dead_entries) == 2
    assert [e["path"] for _, e in after.segments[1].live_entries()] == sorted([changed, added])
    kept = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in after.segments[0].folder.iterdir()}
    assert {name: kept[name] for name in first_segment} == first_segment

    decoded.clear()
    again = build_index(root, now, clf)
    assert decoded == [] and again.embedded == [] and again.unchanged == len(now)
    assert not (root / "pending").exists()


def test_killed_build_resumes_to_the_same_index(tmp_path, library, clf, monkeypatch):
    monkeypatch.setattr(vpbuild, "CHUNK_VIDEOS", 3)  # chunks of one batch (3 videos)
    options = dict(window=0.4, window_stride=0.2)
    build_index(tmp_path / "straight", library, clf, **options)

    class Killed(Exception):
        pass

    def kill(number):
        if number == 1:
            raise Killed

    with pytest.raises(Killed):
        build_index(tmp_path / "killed", library, clf, on_chunk=kill, **options)
    assert len(list((tmp_path / "killed" / "pending").glob("chunk-*.npz"))) == 2
    assert not (tmp_path / "killed" / "index.json").exists()
    report = build_index(tmp_path / "killed", library, clf, **options)
    assert report.resumed == 6 and len(report.embedded) == len(library) - 6
    assert not (tmp_path / "killed" / "pending").exists()
    assert_same_index(tmp_path / "straight", tmp_path / "killed")

    # Killed just before its commit (the segment written, index.json not yet): the rerun resumes from the
    # chunks, and the unnamed segment is cleared away.
    real = vpstore.atomic_write_json
    monkeypatch.setattr(vpstore, "atomic_write_json", lambda *a: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        build_index(tmp_path / "swap", library, clf, **options)
    assert not (tmp_path / "swap" / "index.json").exists() and (tmp_path / "swap" / "segments").is_dir()
    monkeypatch.setattr(vpstore, "atomic_write_json", real)
    assert build_index(tmp_path / "swap", library, clf, **options).embedded == []
    assert_same_index(tmp_path / "straight", tmp_path / "swap")


def assert_same_index(a, b):
    """The same videos, entries and rows, in the same segment layout."""
    x, y = VideoIndex(a), VideoIndex(b)
    assert [s.number for s in x.segments] == [s.number for s in y.segments]
    for s, t in zip(x.segments, y.segments):
        for name in ("embeddings.npy", "windows.npy", "window_times.npy", "window_rows.npy", "entries.jsonl"):
            assert (s.folder / name).read_bytes() == (t.folder / name).read_bytes(), name
    meta = [{k: v for k, v in m.items() if k != "updated"} for m in (x.meta, y.meta)]
    assert meta[0] == meta[1]
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())


def test_one_build_at_a_time_and_readers_wait_for_a_swap(library, clf, tmp_path):
    import threading
    import time

    from vidprompt.errors import VidpromptError
    from vidprompt.locks import FileLock, fcntl

    if fcntl is None:
        pytest.skip("no flock on this platform")
    root = tmp_path / "idx"
    root.mkdir()
    other_build = FileLock(root / vpindex.BUILD_LOCK)
    assert other_build.acquire(blocking=False)
    with pytest.raises(VidpromptError, match=rf"being updated by another `vidprompt index` \(process {os.getpid()}\)"):
        build_index(root, library[:2], clf)
    other_build.release()
    build_index(root, library[:2], clf)
    assert FileLock(root / vpindex.BUILD_LOCK).acquire(blocking=False), "a finished build keeps no lock"

    # A reader opening the index while a build swaps files in waits for the swap to end.
    swap = FileLock(root / vpindex.COMMIT_LOCK)
    swap.acquire()
    opened = []
    reader = threading.Thread(target=lambda: opened.append(len(VideoIndex(root))))
    reader.start()
    time.sleep(0.3)
    assert opened == []
    swap.release()
    reader.join(10)
    assert opened == [2]


def test_another_model_or_other_views_are_refused(built, clf, tmp_path, tiny_backbone):
    root, _ = built
    index = VideoIndex(root)
    other_config = tmp_path / "vp-tiny-other.json"
    config = json.loads(TINY_CONFIG.read_text())
    config["vision_cfg"]["layers"] = 1
    other_config.write_text(json.dumps(config))
    with pytest.raises(UsageError, match="built with zeroshot on vp-tiny .*, not .*vp-tiny-other.json"):
        index.classifier(model=str(other_config), pretrained="none", device="cpu")  # refused before building
    same_name = tmp_path / "elsewhere" / "vp-tiny.json"  # another config under the index's model name
    same_name.parent.mkdir()
    same_name.write_text(json.dumps(config))
    with pytest.raises(UsageError, match="built with zeroshot on vp-tiny .*this is zeroshot on vp-tiny"):
        index.classifier(model=str(same_name), pretrained="none", device="cpu")
    prompted = VideoClassifier(build_method("promptclip", tiny_backbone, temporal_heads=4), device="cpu")
    with pytest.raises(UsageError, match="this is promptclip on vp-tiny"):
        index.search(prompted, "cooking")
    with pytest.raises(UsageError, match="built with zeroshot"):
        build_index(root, [], prompted)
    fewer_frames = VideoClassifier(clf.model, ViewConfig(frames=4), device="cpu", num_workers=0)
    with pytest.raises(UsageError, match="other views"):
        build_index(root, [], fewer_frames)
    with pytest.raises(UsageError, match="other windows"):
        build_index(root, [], clf, window=2.0)
    same = index.classifier(device="cpu", num_workers=0)  # the recorded model, rebuilt: accepted
    assert index.search(same, "cooking", top_k=1)


def test_cli_index_search_and_refusals(tmp_path, library, env):
    lib = tmp_path / "lib"
    shutil.copytree(os.path.dirname(library[0]), lib)
    (lib / "notes.mp4").write_text("not a video\n")
    out = tmp_path / "idx"
    cmd = shutil.which("vidprompt", path=os.path.dirname(sys.executable))
    run = subprocess.run([cmd or "vidprompt", "index", str(lib), "--out", str(out), "--model", str(TINY_CONFIG),
                          "--pretrained", "none", "--frames", "4", "-j", "0", "--json", "-q"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["videos"] == len(library) and summary["added"] == len(library)  # not the unreadable one
    assert [f["video"] for f in summary["failed"]] == [str(lib / "notes.mp4")]
    assert "notes.mp4: not a readable video" in run.stderr and "Traceback" not in run.stderr

    code, stdout, stderr = cli("search", out, "--like", lib / "blue.mp4", "-k", "2", "--json")
    assert code == 0, stderr
    hits = json.loads(stdout)
    assert hits[0]["video"] == str(lib / "blue.mp4") and hits[0]["rank"] == 1 and len(hits) == 2
    code, stdout, _ = cli("search", out, "someone flipping a pancake", "-k", "3")
    assert code == 0 and "search: someone flipping a pancake" in stdout

    code, _, stderr = cli("index", "--out", out, "--strict", "-q")  # nothing new, but notes.mp4 still fails
    assert code == 1 and "notes.mp4: not a readable video" in stderr
    code, _, stderr = cli("index", tmp_path / "nothing*.mp4", "--out", out)
    assert code == 2 and "input matches no files" in stderr
    (tmp_path / "empty").mkdir()
    code, _, stderr = cli("index", tmp_path / "empty", "--out", out)
    assert code == 1 and "no video files found in" in stderr and "left as it was" in stderr
    assert VideoIndex(out).meta["videos"] == len(library)

    (lib / "white.mp4").unlink()
    code, stdout, stderr = cli("index", "--out", out, "--json", "-q")  # inputs and model from the index
    assert code == 0, stderr
    again = json.loads(stdout)
    assert (again["removed"], again["embedded"], again["videos"]) == (1, 0, len(library) - 1)

    other = tmp_path / "vp-tiny-other.json"
    other.write_text(TINY_CONFIG.read_text().replace('"layers": 2, "width": 64', '"layers": 1, "width": 64'))
    code, _, stderr = cli("search", out, "a dog", "--model", other, "--pretrained", "none")
    assert code == 2 and "the index was built with zeroshot on vp-tiny (none)" in stderr
    assert len(stderr.strip().splitlines()) == 2  # the random-weights warning and the one-line error
    from vidprompt.locks import FileLock

    busy = FileLock(out / ".build.lock")
    if busy.acquire(blocking=False):  # as if another `vidprompt index` were updating it
        code, _, stderr = cli("index", "--out", out, "-q")
        busy.release()
        assert code == 1 and "Traceback" not in stderr
        assert "is being updated by another `vidprompt index`" in stderr.strip().splitlines()[-1]
    code, _, stderr = cli("index", tmp_path / "missing_folder", "--out", out)
    assert code == 2 and "input not found" in stderr
    code, _, stderr = cli("search", tmp_path / "nothing_here", "a dog")
    assert code == 2 and "no index here" in stderr


def cli(*args):
    """The CLI in this process (no torch import per call): exit code, stdout, stderr."""
    import contextlib
    import io

    from vidprompt.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    return exit_.value.code, out.getvalue(), err.getvalue()
