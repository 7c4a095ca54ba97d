"""Building an index: plan what changed since the last build, embed it in resumable chunks, commit.

A build embeds only videos that are new or whose size or mtime changed, keeps the rows of the others, and
drops videos that are no longer among the inputs. Embeddings go to ``pending/`` one chunk per few batches,
so a killed build resumes from its chunks and batches the rest exactly as it would have. The commit appends
one segment holding what was embedded and marks the replaced and dropped videos deleted; past a threshold of
segments or deletions, :func:`compact_index` merges everything into one segment.
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

from .. import distributed
from ..errors import UsageError
from ..fileio import atomic_write_json, make_folder
from ..loader import VideoViews
from ..localization import SlidingWindows
from ..locks import FileLock
from ..video import absolute_source, is_url
from . import shortlist
from .segment import NewSegment, segment_name, write_dead
from .store import (PENDING, SEGMENTS, Chunk, build_identity, check_folder, claim_index, collect_garbage,
                    commit_segments, jsonable, model_difference, model_record, open_segments, read_chunk, read_meta,
                    recommit, stored_rows, windows_setting)

log = logging.getLogger(__name__)

# Chunks of pending work hold whole batches, about this many videos each.
CHUNK_VIDEOS = 32
# A commit that leaves more segments than this, or more of the rows deleted than this share, compacts.
MAX_SEGMENTS = 16
MAX_DEAD_SHARE = 0.25


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
    rebuild the same model. An index built with another model, views or windows is refused. ``compact``:
    merge all segments into one after the commit (done anyway past :data:`MAX_SEGMENTS` segments or
    :data:`MAX_DEAD_SHARE` of the rows deleted). ``ann``: the approximate search index to keep (one of
    :data:`.shortlist.SETTINGS`; ``None``: the index's setting, ``"auto"`` for a new one), brought up to date
    after the commit; ``ann_progress(rows)`` gives a context counting the rows it adds (a progress bar).
    """

    def __init__(self, root: str | os.PathLike, paths: Sequence[str], clf, *, window: float | None = None,
                 window_stride: float | None = None, inputs: Sequence[str] | None = None,
                 checkpoint: str | os.PathLike | None = None, lock: FileLock | None = None,
                 compact: bool = False, ann: str | None = None, ann_progress: Callable | None = None):
        self.root = Path(root)
        self.compact = compact
        self.ann, self.ann_progress = shortlist.check_setting(ann), ann_progress
        self.clf = clf
        self.inputs = inputs
        self.windows = windows_setting(window, window_stride)
        self.record = model_record(clf, checkpoint)
        self.identity = build_identity(self.record, clf.view, self.windows)
        self._lock = None
        # Under torchrun process 0 alone holds the lock, plans (it may tidy the folder) and commits; every
        # process embeds its share of the plan.
        self.todo, self._first_chunk = distributed.share_from_main(lambda: self._claim_and_plan(paths, lock))

    def _claim_and_plan(self, paths: Sequence[str], lock: FileLock | None) -> tuple[list[str], int]:
        check_folder(self.root)
        make_folder(self.root, "index")
        self._lock = lock or claim_index(self.root)
        try:
            self._plan(paths)
        except BaseException:
            self._lock.release()
            raise
        return self.todo, max(self.chunks, default=-1) + 1

    def _plan(self, paths: Sequence[str]) -> None:
        self.meta = read_meta(self.root)
        if self.meta is not None:
            self._check_recorded(self.meta)
            if self.meta["format_version"] == 1:
                log.warning("%s: index format 1 turned into format 2 (segments), which vidprompt reads from "
                            "this version on", self.root)
                self.meta = compact_index(self.root)
            else:
                collect_garbage(self.root, self.meta)  # what a build killed before its commit left behind
        else:
            collect_garbage(self.root, {"segments": []})  # a first build killed before its commit
        self.segments = open_segments(self.root, self.meta) if self.meta is not None else []
        self.old_entries: dict[str, tuple[int, int, dict]] = {}  # path -> (segment position, line, entry)
        for position, segment in enumerate(self.segments):
            for line, entry in segment.live_entries():
                self.old_entries[entry["path"]] = (position, line, entry)
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
        self.kept: set[str] = set()  # paths whose entry stays where it is
        for path in self.wanted:
            old = self.old_entries.get(path, (None, None, None))[2]
            if stats[path] is None:  # listed but gone: reported as failed, dropped from the index
                if old is not None and old.get("error") == GONE:
                    self.kept.add(path)
                continue
            if old is not None and _same_file(old, stats[path]) and not (is_url(path) and old.get("error")):
                report.unchanged += 1
                self.kept.add(path)
                continue
            if path in self.done:
                report.resumed += 1
            else:
                self.todo.append(path)
            (report.changed if old is not None else report.added).append(path)
        report.removed = [p for p in self.old_entries if p not in stats or (stats[p] is None and p not in self.kept)]

    def _check_recorded(self, meta: dict) -> None:
        problem = model_difference(meta["model"], self.record)
        if problem is None and meta["view"] != self.identity["view"]:
            problem = f"the index was built with other views ({meta['view']})"
        if problem is None and meta.get("windows") != self.identity["windows"]:
            problem = f"the index was built with other windows ({meta.get('windows')})"
        if problem is not None:
            raise UsageError(f"{self.root}: {problem}; use another --out folder, or delete this one to rebuild")

    def run(self, progress: Callable[[int], None] | None = None,
            on_chunk: Callable[[int], None] | None = None) -> IndexReport | None:
        """:meth:`embed`, then :meth:`commit`; the folder is free for another build afterwards, also on error."""
        try:
            self.embed(progress, on_chunk)
            return self.commit()
        finally:
            if self._lock is not None:
                self._lock.release()

    def embed(self, progress: Callable[[int], None] | None = None,
              on_chunk: Callable[[int], None] | None = None) -> None:
        """Embed :attr:`todo` into pending chunks (``progress(n)`` counts videos; ``on_chunk(i)`` runs once
        chunk ``i`` is on disk).

        Under torchrun every process must call it: process ``r`` of ``n`` embeds ``todo[r::n]`` into its own
        pending chunks and returns once every process is through. Killed, the build resumes with any number of
        processes, and what was embedded is never embedded again."""
        if self.todo:
            self._embed_share(progress, on_chunk)

    def commit(self) -> IndexReport | None:
        """Commit what was embedded: the new state of the index, then its approximate index brought up to date
        (process 0 under torchrun; the others get ``None``). Returns the build report."""
        if not distributed.is_main():
            return None
        if distributed.is_distributed():  # the other processes' chunks, on the shared folder
            self.chunks = _pending_chunks(self.root / PENDING, self.identity)
            self.done.update({entry["path"]: (number, entry) for number, chunk in self.chunks.items()
                              for entry in chunk["entries"]
                              if entry["path"] in self.stats and _same_file(entry, self.stats[entry["path"]])})
        self.report.embedded = [path for path in self.todo if path in self.done]
        self._commit()
        return self.report

    def _embed_share(self, progress, on_chunk) -> None:
        """This process's share of :attr:`todo`, embedded into pending chunks numbered so that no two processes
        (or runs) write the same one."""
        pending_dir = self.root / PENDING
        me, world = distributed.rank(), distributed.world_size()
        if distributed.is_main():
            pending_dir.mkdir(exist_ok=True)
            atomic_write_json(pending_dir / "run.json", self.identity)
        distributed.barrier()
        try:
            for local, chunk in _embed(self.clf, self.todo[me::world], self.windows, 0, progress):
                number = self._first_chunk + local * world + me
                written = chunk.write(pending_dir / f"chunk-{number:06d}.npz", self.record["embed_dim"])
                if distributed.is_main():
                    self.chunks[number] = written
                    self.done.update({entry["path"]: (number, entry) for entry in written["entries"]})
                if on_chunk is not None:
                    on_chunk(number)
                distributed.step_together("running")
        except distributed.PeerFailed:
            raise
        except BaseException as exc:  # tell the others, who stop at their next step; the chunks are kept
            if distributed.is_distributed():
                try:
                    distributed.step_together("failed", f"{type(exc).__name__}: {exc}".splitlines()[0])
                except distributed.PeerFailed:
                    pass
            raise
        while not distributed.step_together("done"):
            pass

    def _commit(self) -> None:
        """Append one segment with every wanted video that is not kept where it is (embedded now, resumed from
        a chunk, or gone), mark the entries it replaces and the dropped ones deleted, and commit; then compact
        if the index has grown too many segments or deletions. Counts go into :attr:`report`."""
        report = self.report
        new = NewSegment(self.windows is not None)
        dead: dict[int, list[int]] = {}  # segment position -> its entries deleted by this commit
        for path in self.wanted:
            position, line, old = self.old_entries.get(path, (None, None, None))
            if path in self.kept:
                if old.get("error") is not None:
                    report.failed.append((path, old["error"]))
                continue
            if old is not None:
                dead.setdefault(position, []).append(line)
            if path in self.done:
                number, entry = self.done[path]
                chunk = self.chunks[number]
                entry, source = dict(entry), (chunk["clips"], chunk["windows"], chunk["window_times"])
            else:
                entry, source = {"path": path, "size": None, "mtime": None, "error": GONE}, None
            if entry.get("error") is not None:
                entry.pop("row", None)
                entry.pop("windows", None)
                report.failed.append((path, entry["error"]))
            new.add(entry, source)
        for path in report.removed:
            position, line, _ = self.old_entries[path]
            dead.setdefault(position, []).append(line)
        unreadable = {path for path, _ in report.failed}  # listed as failed, not as added or changed
        report.added = [p for p in report.added if p not in unreadable]
        report.changed = [p for p in report.changed if p not in unreadable]

        generation = self.meta["generation"] + 1 if self.meta is not None else 0
        records = []
        for position, segment in enumerate(self.segments):
            record = dict(self.meta["segments"][position])
            if position in dead:
                deleted = np.union1d(segment.dead_entries, np.asarray(dead[position], np.int64))
                if len(deleted) == len(segment.entry_rows):
                    continue  # nothing of it is left: the segment goes
                record["dead"] = write_dead(segment.folder, generation, deleted)
            records.append(record)
        if new.entries:
            new.write(self.root / SEGMENTS / segment_name(generation), self.record["embed_dim"])
            records.append({"number": generation, "dead": None})
        inputs = ([os.path.abspath(os.path.expanduser(i)) for i in self.inputs] if self.inputs is not None
                  else (self.meta or {}).get("inputs"))
        # The approximate index stays valid over an append: its ids name rows of segments that are kept or gone.
        summary = {"model": self.record, "view": self.identity["view"], "windows": self.identity["windows"],
                   "inputs": inputs, "segments": records, "generation": generation,
                   "ann": {"setting": shortlist.setting_of(self.meta), "index": shortlist.record_of(self.meta)}}
        meta, segments = commit_segments(self.root, summary)
        _close(self.segments)
        if self.compact or _needs_compaction(segments):
            _close(segments)
            meta = compact_index(self.root, ann=self.ann, ann_progress=self.ann_progress)
        else:
            meta = update_shortlist(self.root, meta, self.ann, self.ann_progress, segments)
        report.videos, report.windows = meta["videos"], meta["window_rows"]


def build_index(root: str | os.PathLike, paths: Sequence[str], clf, *, window: float | None = None,
                window_stride: float | None = None, inputs: Sequence[str] | None = None,
                checkpoint: str | os.PathLike | None = None, progress: Callable[[int], None] | None = None,
                on_chunk: Callable[[int], None] | None = None, compact: bool = False,
                ann: str | None = None) -> IndexReport:
    """Plan and run an :class:`IndexBuild` in one call."""
    build = IndexBuild(root, paths, clf, window=window, window_stride=window_stride, inputs=inputs,
                       checkpoint=checkpoint, compact=compact, ann=ann)
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


GONE = "file not found"


def _needs_compaction(segments: list) -> bool:
    rows = sum(len(segment.row_entries) for segment in segments)
    deleted = sum(len(segment.dead_rows) for segment in segments)
    return len(segments) > MAX_SEGMENTS or (rows > 0 and deleted / rows > MAX_DEAD_SHARE)


def compact_index(root: str | os.PathLike, *, ann: str | None = None, ann_progress: Callable | None = None) -> dict:
    """Merge every segment of the index at ``root`` into one that holds only its live videos, in the same
    order, and commit it; the caller holds the build lock. Reads an index of format 1 too (which this turns
    into format 2). The approximate index, whose ids the merge renumbers, is trained again when one is kept
    (``ann``, ``ann_progress``: as for :class:`IndexBuild`). Returns the new ``index.json``."""
    root = Path(root)
    meta = read_meta(root)
    if meta is None:
        raise UsageError(f"{root}: no index here")
    segments = open_segments(root, meta)
    new = NewSegment(bool(meta.get("windows")))
    for segment in segments:
        arrays = (segment.embeddings, segment.windows, segment.window_times)
        for _, entry in segment.live_entries():
            new.add(entry, arrays)
    generation = meta.get("generation", -1) + 1
    records = []
    if new.entries:
        new.write(root / SEGMENTS / segment_name(generation), meta["model"]["embed_dim"])
        records.append({"number": generation, "dead": None})
    _close(segments)
    summary = {key: meta.get(key) for key in ("model", "view", "windows", "inputs")}
    summary.update(segments=records, generation=generation,
                   ann={"setting": shortlist.setting_of(meta), "index": None})
    meta, segments = commit_segments(root, summary)
    return update_shortlist(root, meta, ann, ann_progress, segments)


def update_shortlist(root: Path, meta: dict, setting: str | None = None, progress: Callable | None = None,
                     segments: list | None = None) -> dict:
    """Bring the approximate index of the committed ``meta`` up to date (:func:`.shortlist.refresh`) and
    commit its record when it changed; the caller holds the build lock. ``segments``: those of ``meta``,
    already opened (closed here). Returns the ``index.json`` in force."""
    segments = open_segments(root, meta) if segments is None else segments
    try:
        record = shortlist.refresh(root, meta, segments, setting, progress)
    finally:
        _close(segments)
    return meta if record == meta.get("ann") else recommit(root, meta, ann=record)


def _close(segments: list) -> None:
    for segment in segments:
        segment.close()
