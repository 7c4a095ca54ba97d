"""Building an index: plan what changed since the last build, embed it in resumable chunks, commit.

A build embeds only videos that are new or whose size or mtime changed, keeps the rows of the others, and
drops videos that are no longer among the inputs. Embeddings go to ``pending/`` one chunk per few batches,
so a killed build resumes from its chunks and batches the rest exactly as it would have.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import UsageError
from ..fileio import atomic_write_json, make_folder
from ..loader import VideoViews
from ..localization import SlidingWindows
from ..locks import FileLock
from ..video import absolute_source, is_url
from .store import (EMBEDDINGS, PENDING, WINDOW_TIMES, WINDOWS, Chunk, build_identity, check_folder, claim_index,
                    commit_files, jsonable, load_array, model_difference, model_record, read_chunk, read_index,
                    read_meta, stored_rows, windows_setting)

log = logging.getLogger(__name__)

# Chunks of pending work hold whole batches, about this many videos each.
CHUNK_VIDEOS = 32


def _stat(path: str) -> tuple[int | None, float | None] | None:
    """Size and modification time of a local file (``None``: gone). A URL has neither: it counts as
    unchanged once embedded, and is tried again on the next run only if it failed."""
    if is_url(path):
        return None, None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime


def _same_file(entry: dict, stat: tuple[int, float] | None) -> bool:
    return stat is not None and entry.get("size") == stat[0] and entry.get("mtime") == stat[1]


@dataclass
class IndexReport:
    """What a build did."""

    root: str
    videos: int = 0  # indexed videos (with an embedding)
    windows: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    resumed: int = 0  # videos taken from an interrupted build's chunks
    embedded: list[str] = field(default_factory=list)  # videos decoded and embedded by this build
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, error), all current failures

    def to_dict(self) -> dict:
        return {"index": self.root, "videos": self.videos, "windows": self.windows, "added": len(self.added),
                "changed": len(self.changed), "removed": len(self.removed), "unchanged": self.unchanged,
                "resumed": self.resumed, "embedded": len(self.embedded),
                "failed": [{"video": p, "error": e} for p, e in self.failed]}


class IndexBuild:
    """One build of the index at ``root``: planned on creation (what is new, changed, removed, resumed),
    embedded and committed by :meth:`run`.

        build = IndexBuild("videos.vpindex", paths, clf)
        with progress_bar(len(build.todo), "indexing", unit="clips") as advance:
            report = build.run(progress=advance)

    The index ends up holding exactly ``paths``, embedded with ``clf`` at its views: new and changed files
    (size or mtime) are embedded, the others keep their rows, files no longer among ``paths`` are dropped.
    With ``window`` (seconds; ``window_stride`` defaults to it) every video also gets one embedding per
    window. ``inputs`` (what the user asked for) and ``checkpoint`` are recorded, so a rerun or a search can
    rebuild the same model. An index built with another model, views or windows is refused.
    """

    def __init__(self, root: str | os.PathLike, paths: Sequence[str], clf, *, window: float | None = None,
                 window_stride: float | None = None, inputs: Sequence[str] | None = None,
                 checkpoint: str | os.PathLike | None = None, lock: FileLock | None = None):
        self.root = Path(root)
        self.clf = clf
        self.inputs = inputs
        self.windows = windows_setting(window, window_stride)
        self.record = model_record(clf, checkpoint)
        self.identity = build_identity(self.record, clf.view, self.windows)
        check_folder(self.root)
        make_folder(self.root, "index")
        self._lock = lock or claim_index(self.root)
        try:
            self._plan(paths)
        except BaseException:
            self._lock.release()
            raise

    def _plan(self, paths: Sequence[str]) -> None:
        self.meta = read_meta(self.root)
        if self.meta is not None:
            self._check_recorded(self.meta)
        self.old_entries = ({e["path"]: e for e in read_index(self.root, self.meta)[0]}
                            if self.meta is not None else {})
        self.chunks = _pending_chunks(self.root / PENDING, self.identity)

        self.report = report = IndexReport(str(self.root))
        self.wanted = list(dict.fromkeys(absolute_source(p) for p in paths))
        self.stats = stats = {p: _stat(p) for p in self.wanted}
        self.done: dict[str, tuple[int, dict]] = {}  # path -> (chunk, entry) embedded by an interrupted build
        for number, chunk in self.chunks.items():
            for entry in chunk["entries"]:
                if entry["path"] in stats and _same_file(entry, stats[entry["path"]]):
                    self.done[entry["path"]] = (number, entry)
        self.todo: list[str] = []
        for path in self.wanted:
            old = self.old_entries.get(path)
            if stats[path] is None:  # listed but gone: reported as failed, dropped from the index
                continue
            if old is not None and _same_file(old, stats[path]) and not (is_url(path) and old.get("error")):
                report.unchanged += 1
                continue
            if path in self.done:
                report.resumed += 1
            else:
                self.todo.append(path)
            (report.changed if old is not None else report.added).append(path)
        report.removed = [p for p in self.old_entries if p not in stats or stats[p] is None]

    def _check_recorded(self, meta: dict) -> None:
        problem = model_difference(meta["model"], self.record)
        if problem is None and meta["view"] != self.identity["view"]:
            problem = f"the index was built with other views ({meta['view']})"
        if problem is None and meta.get("windows") != self.identity["windows"]:
            problem = f"the index was built with other windows ({meta.get('windows')})"
        if problem is not None:
            raise UsageError(f"{self.root}: {problem}; use another --out folder, or delete this one to rebuild")

    def run(self, progress: Callable[[int], None] | None = None,
            on_chunk: Callable[[int], None] | None = None) -> IndexReport:
        """Embed :attr:`todo` (``progress(n)`` counts videos; ``on_chunk(i)`` runs once pending chunk ``i`` is
        on disk), then commit the new index. The folder is free for another build afterwards, also on error."""
        try:
            return self._run(progress, on_chunk)
        finally:
            self._lock.release()

    def _run(self, progress, on_chunk) -> IndexReport:
        pending_dir = self.root / PENDING
        if self.todo:
            pending_dir.mkdir(exist_ok=True)
            atomic_write_json(pending_dir / "run.json", self.identity)
            first = max(self.chunks, default=-1) + 1
            for number, chunk in _embed(self.clf, self.todo, self.windows, first, progress):
                self.chunks[number] = chunk.write(pending_dir / f"chunk-{number:06d}.npz",
                                                  self.record["embed_dim"])
                for entry in self.chunks[number]["entries"]:
                    self.done[entry["path"]] = (number, entry)
                self.report.embedded.extend(e["path"] for e in chunk.entries)
                if on_chunk is not None:
                    on_chunk(number)
        _commit(self.root, self.wanted, self.stats, self.old_entries, self.done, self.chunks, self.meta,
                self.record, self.identity, self.inputs, self.report)
        return self.report


def build_index(root: str | os.PathLike, paths: Sequence[str], clf, *, window: float | None = None,
                window_stride: float | None = None, inputs: Sequence[str] | None = None,
                checkpoint: str | os.PathLike | None = None, progress: Callable[[int], None] | None = None,
                on_chunk: Callable[[int], None] | None = None) -> IndexReport:
    """Plan and run an :class:`IndexBuild` in one call."""
    build = IndexBuild(root, paths, clf, window=window, window_stride=window_stride, inputs=inputs,
                       checkpoint=checkpoint)
    return build.run(progress=progress, on_chunk=on_chunk)


def _pending_chunks(pending_dir: Path, identity: dict) -> dict[int, dict]:
    """Chunks an interrupted build of the same model, views and windows left behind; others are deleted."""
    if not pending_dir.is_dir():
        return {}
    run = pending_dir / "run.json"
    try:
        same = json.loads(run.read_text("utf-8")) == jsonable(identity)
    except (OSError, ValueError):
        same = False
    if not same:
        log.info("discarding an interrupted build of another model or settings in %s", pending_dir)
        shutil.rmtree(pending_dir)
        return {}
    chunks = {}
    for path in sorted(pending_dir.glob("chunk-*.npz")):
        chunk = read_chunk(path)
        if chunk is not None:
            chunks[int(path.stem.split("-")[1])] = chunk
    return chunks


def _embed(clf, paths: list[str], windows: dict | None, first_chunk: int,
           progress: Callable[[int], None] | None):
    """Yield ``(chunk number, Chunk)`` as whole batches of ``paths`` are embedded (in input order).

    Chunks hold whole batches, so a resumed build batches the remaining videos exactly as an uninterrupted
    one would (same batches, same numbers)."""
    dataset = VideoViews(paths, clf.view, clf.preprocessor, decoder=clf.decoder, with_timing=True)
    batch_size = clf.videos_per_batch(len(paths))
    per_chunk = batch_size * max(1, CHUNK_VIDEOS // batch_size)
    chunk, number = Chunk(), first_chunk
    for batch in clf.embedded(dataset, batch_size, progress=progress):
        good = [video for video in batch if video.embedding is not None]
        # one device-to-host copy per batch, not per video
        rows = stored_rows(torch.stack([video.embedding for video in good])) if good else []
        clips = dict(zip((video.index for video in good), rows))
        for video in batch:
            _add_video(chunk, clf, video, clips.get(video.index), windows)
        if len(chunk.entries) >= per_chunk:
            yield number, chunk
            chunk, number = Chunk(), number + 1
    if chunk.entries:
        yield number, chunk


def _add_video(chunk: Chunk, clf, video, clip: np.ndarray | None, windows: dict | None) -> None:
    """One video's manifest entry and rows (its clip row, and its windows' when the index has windows), or its
    entry with the reason it has none."""
    item = video.item
    stat = _stat(item.path)
    entry = {"path": item.path, "size": stat[0] if stat else None, "mtime": stat[1] if stat else None}
    if clip is None:
        chunk.add({**entry, "error": video.error})
        return
    timing = item.timing
    entry.update(frames=timing.num_frames if timing else None, fps=timing.fps if timing else None,
                 duration=round(timing.duration, 6) if timing else None, decoder=item.decoder)
    if windows is None:
        chunk.add(entry, clip)
        return
    if timing is None:
        chunk.add({**entry, "error": "the video reports no frame rate, so its windows cannot be timed"})
        return
    stream = SlidingWindows(clf, item.path, windows["window"], windows["stride"], timing=timing)
    views, times = [], []
    for index, embedding, _ in stream.embeddings():
        if embedding is not None:
            views.append(embedding)
            times.append((stream.windows[index].start, stream.windows[index].end))
    if not views:
        chunk.add({**entry, "error": "no window decodes"})
        return
    chunk.add(entry, clip, stored_rows(torch.stack(views)), np.asarray(times, np.float64))


def _commit(root: Path, wanted: list[str], stats: dict, old_entries: dict, done: dict, chunks: dict,
            meta: dict | None, record: dict, identity: dict, inputs: Sequence[str] | None,
            report: IndexReport) -> None:
    """Assemble the new index from the old one and the pending chunks, count it into ``report``, then have it
    written and swapped in (:func:`.store.commit_files`)."""
    with_windows = identity["windows"] is not None
    old = None
    if meta is not None:
        old = (load_array(root / EMBEDDINGS), load_array(root / WINDOWS) if with_windows else None,
               np.load(root / WINDOW_TIMES) if with_windows else None)

    # Every wanted video in input order, with where its rows come from: the old index or a pending chunk.
    entries, sources = [], []
    window_rows = 0
    for path in wanted:
        previous = old_entries.get(path)
        if previous is not None and _same_file(previous, stats[path]):
            entry, source = dict(previous), old
        elif path in done:
            number, entry = done[path]
            chunk = chunks[number]
            entry, source = dict(entry), (chunk["clips"], chunk["windows"], chunk["window_times"])
        else:
            entry, source = {"path": path, "size": None, "mtime": None, "error": "file not found"}, None
        if entry.get("error") is not None:
            entry.pop("row", None)
            entry.pop("windows", None)
            report.failed.append((path, entry["error"]))
        else:
            sources.append((source, entry["row"], entry.get("windows")))
            entry["row"] = len(sources) - 1
            if with_windows:
                entry["windows"] = [window_rows, entry["windows"][1]]
                window_rows += entry["windows"][1]
        entries.append(entry)
    report.videos = len(sources)
    unreadable = {path for path, _ in report.failed}  # listed as failed, not as added or changed
    report.added = [p for p in report.added if p not in unreadable]
    report.changed = [p for p in report.changed if p not in unreadable]
    report.windows = window_rows

    commit_files(root, entries, sources, {
        "model": record, "view": identity["view"], "windows": identity["windows"],
        "inputs": ([os.path.abspath(os.path.expanduser(i)) for i in inputs] if inputs is not None
                   else (meta or {}).get("inputs")),
        "videos": report.videos, "failed": len(report.failed), "window_rows": report.windows,
    })
