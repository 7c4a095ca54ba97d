"""A searchable index of a video library: one CLIP-space embedding per clip (and optionally per window), on
disk, memory-mapped, updated incrementally.

    clf = load_classifier(model="ViT-B-16", pretrained="openai")
    build_index("videos.vpindex", expand_inputs(["~/videos"]), clf, window=4.0)   # rerun: only what changed
    index = VideoIndex("videos.vpindex")
    clf = index.classifier()                     # the model the index was built with
    for hit in index.search(clf, "someone flipping a pancake", top_k=10):
        print(hit.path, hit.start, hit.end, hit.score)

An index folder holds::

    index.json        what built it: format, vidprompt version, model (method, backbone, weights, trained
                      tensors digest, checkpoint path, templates), views, window settings, inputs, counts
    manifest.jsonl    one line per video in input order: path, size, mtime, frames, fps, duration, row,
                      windows [first, count]; or path, size, mtime, error for a video that does not decode
    embeddings.npy    float16 [videos, D], L2-normalised (row ``row`` of the manifest)
    windows.npy       float16 [windows, D], with ``--window`` only; window_times.npy float64 [windows, 2]

A build embeds only videos that are new or whose size or mtime changed, and drops videos that are no longer
among the inputs. Work goes to ``pending/`` one atomic chunk file per few batches; a killed build resumes
from its chunks. At the end the new arrays and manifest are written beside the old ones and swapped in by
a small journal (``commit.json``) that a later open finishes if the swap itself was interrupted, so the
folder is always one consistent index. Two builds of one folder at once are refused (``.build.lock``), and a
search opening the index waits out a swap in progress (``.commit.lock``); both are ``flock`` locks, which
the kernel drops when a process dies.

Search scores are cosines between the normalised query and the stored embeddings: text through the same
text side as classification (templates or learned prompts), or a query video embedded like the library.
An index is only searched with the model that built it; another one is refused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ._version import __version__
from .errors import UsageError, VidpromptError
from .fileio import atomic_write, atomic_write_json, atomic_write_text, make_folder
from .locks import FileLock, claim
from .loader import VideoViews, iterate_views
from .localize import SlidingWindows, check_window
from .video import ViewConfig, absolute_source, is_url

log = logging.getLogger(__name__)

FORMAT = "vidprompt-index"
FORMAT_VERSION = 1
META = "index.json"
MANIFEST = "manifest.jsonl"
EMBEDDINGS = "embeddings.npy"
WINDOWS = "windows.npy"
WINDOW_TIMES = "window_times.npy"
PENDING = "pending"
JOURNAL = "commit.json"
BUILD_LOCK = ".build.lock"  # held by a build from planning to commit: one writer at a time
COMMIT_LOCK = ".commit.lock"  # exclusive while files are swapped in, shared while a reader opens them
DTYPE = np.float16
# Fields of the model record that decide the video embeddings; templates only change the text side.
VIDEO_SIDE = ("method", "backbone", "hparams", "trained_tensors")
# Chunks of pending work hold whole batches, about this many videos each.
CHUNK_VIDEOS = 32


# --- what built an index ---------------------------------------------------------------------------------------

def _jsonable(value):
    return json.loads(json.dumps(value))


def model_record(clf, checkpoint: str | os.PathLike | None = None) -> dict:
    """How to rebuild ``clf``'s model and what identifies its video embeddings (JSON)."""
    from .methods.base import model_identity

    model = clf.model
    backbone = model.backbone
    hparams = _jsonable(model.hparams())
    templates = hparams.pop("templates", None)
    return {
        "method": model.method,
        "model": backbone.name,
        "model_source": backbone.config_path or backbone.name,
        "pretrained": backbone.pretrained,
        "backbone": backbone.identity,
        "hparams": hparams,
        "trained_tensors": model_identity(model)["trained_tensors"],
        "templates": templates,
        "checkpoint": None if checkpoint is None else os.path.abspath(checkpoint),
        "embed_dim": int(backbone.embed_dim),
    }


def describe_model(record: dict) -> str:
    text = f"{record.get('method')} on {record.get('model')} ({record.get('pretrained')})"
    if record.get("checkpoint"):
        text += f" from {record['checkpoint']}"
    return text


def model_difference(recorded: dict, current: dict) -> str | None:
    """``None`` when both records give the same video embeddings, else what differs, in words."""
    differ = [key for key in VIDEO_SIDE if recorded.get(key) != current.get(key)]
    if not differ:
        return None
    if "method" in differ or "backbone" in differ:
        return f"the index was built with {describe_model(recorded)}, this is {describe_model(current)}"
    if "trained_tensors" in differ:
        return (f"the index was built with other trained weights ({describe_model(recorded)}) than this "
                f"{describe_model(current)}")
    changed = sorted(k for k in set(recorded["hparams"]) | set(current["hparams"])
                     if recorded["hparams"].get(k) != current["hparams"].get(k))
    return f"the index was built with other {recorded.get('method')} settings ({', '.join(changed)})"


def _windows_setting(window: float | None, stride: float | None) -> dict | None:
    if window is None:
        if stride is not None:
            raise UsageError("--window-stride needs --window")
        return None
    stride = window if stride is None else stride
    check_window(window, stride, "--window-stride")
    return {"window": float(window), "stride": float(stride)}


def _build_identity(record: dict, view: ViewConfig, windows: dict | None) -> dict:
    return {"model": {k: record[k] for k in VIDEO_SIDE}, "view": view.to_dict(), "windows": windows}


# --- reading the folder ----------------------------------------------------------------------------------------

class DamagedIndex(VidpromptError):
    """An index folder whose files do not say what an index says (edited, truncated, half-copied)."""

    def __init__(self, root: Path, problem: str):
        super().__init__(f"{root}: damaged index ({problem}); run `vidprompt index` on it again to rebuild it")
        self.problem = problem


# The only names a commit journal may rename and remove: a crafted journal cannot touch other files.
_SWAPPED = (EMBEDDINGS, MANIFEST, META, WINDOWS, WINDOW_TIMES)
_REMOVABLE = (PENDING, WINDOWS, WINDOW_TIMES)


def _finish_commit(root: Path) -> None:
    """Replay an interrupted commit: rename what is still to be renamed, delete what is to be deleted."""
    if not (root / JOURNAL).is_file():
        return
    with FileLock(root / COMMIT_LOCK):
        _replay_journal(root)


def _read_journal(root: Path) -> dict:
    try:
        plan = json.loads((root / JOURNAL).read_text("utf-8"))
        renames = [(str(tmp), str(final)) for tmp, final in plan["renames"]]
        remove = [str(name) for name in plan["remove"]]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DamagedIndex(root, f"{JOURNAL} unreadable: {type(exc).__name__}") from None
    if any(final not in _SWAPPED or tmp != f".{final}.next" for tmp, final in renames) or \
            any(name not in _REMOVABLE for name in remove):
        raise DamagedIndex(root, f"{JOURNAL} names files that are not part of an index")
    return {"renames": renames, "remove": remove}


def _replay_journal(root: Path) -> None:
    """The swap itself; the caller holds the commit lock."""
    journal = root / JOURNAL
    if not journal.is_file():  # finished by another process while this one waited for the lock
        return
    plan = _read_journal(root)
    for tmp, final in plan["renames"]:
        if (root / tmp).exists():
            os.replace(root / tmp, root / final)
    for name in plan["remove"]:
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    journal.unlink()


def _check_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not an index folder")


def read_meta(root: str | os.PathLike) -> dict | None:
    """The index's ``index.json`` (after finishing an interrupted commit), or ``None`` if there is no index."""
    root = Path(root)
    _check_folder(root)
    if root.is_dir():
        _finish_commit(root)
    return _read_meta_file(root)


def _read_meta_file(root: Path) -> dict | None:
    path = root / META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        raise DamagedIndex(root, f"{META} is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise VidpromptError(f"{root} is not a vidprompt index")
    version = meta.get("format_version", 0)
    if not isinstance(version, int):
        raise DamagedIndex(root, f"{META}: format_version {version!r}")
    if version > FORMAT_VERSION:
        raise VidpromptError(f"{root} has index format {meta['format_version']}, newer than this vidprompt "
                             f"({__version__}) reads ({FORMAT_VERSION}); upgrade vidprompt")
    problem = _meta_problem(meta)
    if problem is not None:
        raise DamagedIndex(root, f"{META}: {problem}")
    return meta


def _meta_problem(meta: dict) -> str | None:
    """What in ``index.json`` is missing or of the wrong type or range (``None``: nothing)."""
    model = meta.get("model")
    if not isinstance(model, dict):
        return "no model record"
    for key, kind in (("method", str), ("model", str), ("model_source", str), ("pretrained", str),
                      ("backbone", str), ("hparams", dict), ("embed_dim", int)):
        if not isinstance(model.get(key), kind):
            return f"model {key} missing or of the wrong type"
    if not 0 < model["embed_dim"] <= 65536:
        return f"embedding width {model['embed_dim']}"
    if not isinstance(model.get("checkpoint"), (str, type(None))) or \
            not isinstance(model.get("templates"), (list, type(None))):
        return "model checkpoint or templates of the wrong type"
    try:
        ViewConfig.from_dict(meta.get("view"))
    except ValueError as exc:
        return str(exc)
    windows = meta.get("windows")
    if windows is not None:
        if not isinstance(windows, dict) or not all(isinstance(windows.get(k), (int, float)) and windows[k] > 0
                                                    for k in ("window", "stride")):
            return "window settings of the wrong type"
    inputs = meta.get("inputs")
    if inputs is not None and not (isinstance(inputs, list) and all(isinstance(i, str) for i in inputs)):
        return "inputs of the wrong type"
    return None


def _read_manifest(path: Path, with_windows: bool = False) -> list[dict]:
    """The manifest's entries, each checked: a video with an embedding has an integer row (and a window span
    when the index has windows), rows in order."""
    if not path.is_file():
        return []
    entries, rows = [], 0
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        raise DamagedIndex(path.parent, f"{MANIFEST} unreadable") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise DamagedIndex(path.parent, f"{MANIFEST} line {number} is not JSON") from None
        if not _entry_ok(entry, rows, with_windows):
            raise DamagedIndex(path.parent, f"{MANIFEST} line {number} is not a video entry")
        rows += entry.get("error") is None
        entries.append(entry)
    return entries


def _read_index(root: Path, meta: dict) -> tuple[list[dict], np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Manifest entries and the memory-mapped arrays, checked against each other: one row per video with an
    embedding, the width the model record says, window spans inside the window arrays."""
    with_windows = bool(meta.get("windows"))
    entries = _read_manifest(root / MANIFEST, with_windows)
    try:
        embeddings = _load_array(root / EMBEDDINGS)
        windows = _load_array(root / WINDOWS) if with_windows else None
        window_times = np.load(root / WINDOW_TIMES) if with_windows else None
    except (OSError, ValueError) as exc:
        raise DamagedIndex(root, f"arrays unreadable: {exc.strerror or exc}") from None
    videos = sum(e.get("error") is None for e in entries)
    if embeddings.ndim != 2 or embeddings.shape != (videos, meta["model"]["embed_dim"]):
        raise DamagedIndex(root, f"{EMBEDDINGS} has shape {embeddings.shape}, the manifest {videos} videos of "
                                 f"width {meta['model']['embed_dim']}")
    if with_windows:
        ends = max((sum(e["windows"]) for e in entries if e.get("error") is None), default=0)
        if windows.ndim != 2 or windows.shape[1] != embeddings.shape[1] or windows.shape[0] < ends or \
                window_times.shape != (windows.shape[0], 2):
            raise DamagedIndex(root, f"window arrays of shape {windows.shape} and {window_times.shape} do not hold "
                                     f"the manifest's {ends} windows")
    return entries, embeddings, windows, window_times


def discard_index(root: str | os.PathLike) -> None:
    """Delete a damaged index's own files (not its pending chunks, which are checked on their own), so the
    next build starts fresh."""
    root = Path(root)
    with FileLock(root / COMMIT_LOCK):
        for name in (*_SWAPPED, JOURNAL):
            for path in (root / name, root / f".{name}.next"):
                if path.is_file():
                    path.unlink()


def _entry_ok(entry, row: int, with_windows: bool) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return False
    if entry.get("error") is not None:
        return isinstance(entry["error"], str)
    if entry.get("row") != row or isinstance(entry.get("row"), bool):
        return False
    if with_windows:
        span = entry.get("windows")
        return (isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) and v >= 0 for v in span))
    return True


def _load_array(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r")


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


# --- building --------------------------------------------------------------------------------------------------

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


class _Chunk:
    """Embeddings of a few batches of videos, written as one atomic ``.npz`` in ``pending/``."""

    def __init__(self):
        self.entries: list[dict] = []
        self.clips: list[np.ndarray] = []
        self.windows: list[np.ndarray] = []
        self.window_times: list[np.ndarray] = []

    def add(self, entry: dict, clip: np.ndarray | None = None, windows: np.ndarray | None = None,
            times: np.ndarray | None = None) -> None:
        entry = dict(entry)
        if clip is not None:
            entry["row"] = len(self.clips)
            self.clips.append(clip)
            if windows is not None:
                first = sum(len(w) for w in self.windows)
                entry["windows"] = [first, len(windows)]
                self.windows.append(windows)
                self.window_times.append(times)
        self.entries.append(entry)

    def write(self, path: Path, dim: int) -> dict:
        """Write the chunk; returns what :func:`_read_chunk` would read back."""
        def stacked(parts, width, dtype):
            return np.concatenate(parts).astype(dtype) if parts else np.zeros((0, width), dtype)

        data = {"clips": stacked([c[None] for c in self.clips], dim, DTYPE),
                "windows": stacked(self.windows, dim, DTYPE),
                "window_times": stacked(self.window_times, 2, np.float64)}
        entries = json.dumps(self.entries).encode("utf-8")
        atomic_write(path, lambda tmp: _save_npz(tmp, entries=np.frombuffer(entries, np.uint8), **data))
        return {**data, "entries": json.loads(entries)}


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a file object: np.savez would add ".npz" to a name
        np.savez(handle, **arrays)


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array)


def _read_chunk(path: Path) -> dict | None:
    try:
        with np.load(path) as data:
            return {"clips": data["clips"], "windows": data["windows"], "window_times": data["window_times"],
                    "entries": json.loads(data["entries"].tobytes().decode("utf-8"))}
    except Exception:  # a damaged chunk is redone, never fatal
        log.debug("ignoring unreadable chunk %s", path)
        return None


def _normalised_mean(views: torch.Tensor) -> np.ndarray:
    """Embeddings ``[..., views, D]`` -> one normalised embedding per item, float32 numpy."""
    from .methods.base import normalize

    return normalize(views.float().mean(dim=-2)).cpu().numpy()


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
        self.windows = _windows_setting(window, window_stride)
        self.record = model_record(clf, checkpoint)
        self.identity = _build_identity(self.record, clf.view, self.windows)
        _check_folder(self.root)
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
        self.old_entries = ({e["path"]: e for e in _read_index(self.root, self.meta)[0]}
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


def claim_index(root: str | os.PathLike) -> FileLock:
    """The folder's build lock (the folder is created if needed), or one line saying another build holds it.
    Taken first thing, so a second build of one folder is refused at once, before any model loads."""
    root = Path(root)
    _check_folder(root)
    make_folder(root, "index")
    return claim(root / BUILD_LOCK, f"{root} is being updated by another `vidprompt index`")


def open_for_update(root: str | os.PathLike) -> dict | None:
    """``index.json`` of the index at ``root`` for a build (``None``: no index yet). A damaged index is
    deleted with a warning, so running ``vidprompt index`` again rebuilds it; the caller holds the build lock."""
    root = Path(root)
    try:
        meta = read_meta(root)
        if meta is not None:
            _read_index(root, meta)
        return meta
    except DamagedIndex as exc:
        log.warning("warning: %s: damaged index (%s); rebuilding it from the inputs", root, exc.problem)
        discard_index(root)
        return None


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
        same = json.loads(run.read_text("utf-8")) == _jsonable(identity)
    except (OSError, ValueError):
        same = False
    if not same:
        log.info("discarding an interrupted build of another model or settings in %s", pending_dir)
        shutil.rmtree(pending_dir)
        return {}
    chunks = {}
    for path in sorted(pending_dir.glob("chunk-*.npz")):
        chunk = _read_chunk(path)
        if chunk is not None:
            chunks[int(path.stem.split("-")[1])] = chunk
    return chunks


def _embed(clf, paths: list[str], windows: dict | None, first_chunk: int,
           progress: Callable[[int], None] | None):
    """Yield ``(chunk number, _Chunk)`` as whole batches of ``paths`` are embedded (in input order).

    Chunks hold whole batches, so a resumed build batches the remaining videos exactly as an uninterrupted
    one would (same batches, same numbers)."""
    dataset = VideoViews(paths, clf.view, clf.preprocessor, decoder=clf.decoder, with_timing=True)
    batch_size = clf.videos_per_batch(len(paths))
    per_chunk = batch_size * max(1, CHUNK_VIDEOS // batch_size)
    chunk, number = _Chunk(), first_chunk
    for batch in iterate_views(dataset, batch_size, clf.num_workers, pin_memory=clf.device.type == "cuda"):
        good = [item for item in batch if item.frames is not None]
        clips = {}
        if good:
            emb = clf.encode_views(torch.stack([item.frames for item in good]))
            clips = {item.index: row for item, row in zip(good, _normalised_mean(emb))}
        for item in batch:
            stat = _stat(item.path)
            entry = {"path": item.path, "size": stat[0] if stat else None, "mtime": stat[1] if stat else None}
            if item.index not in clips:
                chunk.add({**entry, "error": item.error or "cannot decode video"})
                continue
            timing = item.timing
            entry.update(frames=timing.num_frames if timing else None, fps=timing.fps if timing else None,
                         duration=round(timing.duration, 6) if timing else None, decoder=item.decoder)
            if windows is None:
                chunk.add(entry, clips[item.index])
                continue
            if timing is None:
                chunk.add({**entry, "error": "the video reports no frame rate, so its windows cannot be timed"})
                continue
            stream = SlidingWindows(clf, item.path, windows["window"], windows["stride"], timing=timing)
            rows, times = [], []
            for index, views, _ in stream.embeddings():
                if views is not None:
                    rows.append(_normalised_mean(views[None])[0])
                    times.append((stream.windows[index].start, stream.windows[index].end))
            if not rows:
                chunk.add({**entry, "error": "no window decodes"})
                continue
            chunk.add(entry, clips[item.index], np.stack(rows), np.asarray(times, np.float64))
        if progress is not None:
            progress(len(batch))
        if len(chunk.entries) >= per_chunk:
            yield number, chunk
            chunk, number = _Chunk(), number + 1
    if chunk.entries:
        yield number, chunk


def _commit(root: Path, wanted: list[str], stats: dict, old_entries: dict, done: dict, chunks: dict,
            meta: dict | None, record: dict, identity: dict, inputs: Sequence[str] | None,
            report: IndexReport) -> None:
    """Write the new arrays, manifest and index.json beside the old ones, then swap them in (journalled)."""
    with_windows = identity["windows"] is not None
    old = None
    if meta is not None:
        old = (_load_array(root / EMBEDDINGS), _load_array(root / WINDOWS) if with_windows else None,
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

    names = {EMBEDDINGS: f".{EMBEDDINGS}.next", MANIFEST: f".{MANIFEST}.next", META: f".{META}.next"}
    if with_windows:
        names.update({WINDOWS: f".{WINDOWS}.next", WINDOW_TIMES: f".{WINDOW_TIMES}.next"})
    _write_arrays(root, names, entries, sources, record["embed_dim"], with_windows, report.windows)
    # ASCII JSON: a file name that is not UTF-8 survives as a \udcXX escape
    atomic_write_text(root / names[MANIFEST], "".join(json.dumps(e) + "\n" for e in entries))
    atomic_write_json(root / names[META], {
        "format": FORMAT, "format_version": FORMAT_VERSION, "vidprompt_version": __version__,
        "model": record, "view": identity["view"], "windows": identity["windows"],
        "inputs": ([os.path.abspath(os.path.expanduser(i)) for i in inputs] if inputs is not None
                   else (meta or {}).get("inputs")),
        "videos": report.videos, "failed": len(report.failed), "window_rows": report.windows,
        "dtype": "float16", "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    remove = [PENDING] + ([] if with_windows else [WINDOWS, WINDOW_TIMES])
    del old
    with FileLock(root / COMMIT_LOCK):  # readers opening the index wait until the swap is done
        atomic_write_json(root / JOURNAL, {"renames": [[tmp, final] for final, tmp in names.items()],
                                           "remove": remove})
        _replay_journal(root)


def _write_arrays(root: Path, names: dict, entries: list[dict], sources: list[tuple], dim: int,
                  with_windows: bool, window_rows: int) -> None:
    """Fill the new (memory-mapped) arrays from their sources, one fancy-indexed copy per source."""
    clips_out = np.lib.format.open_memmap(root / names[EMBEDDINGS], mode="w+", dtype=DTYPE,
                                          shape=(len(sources), dim))
    windows_out = times_out = None
    if with_windows:
        windows_out = np.lib.format.open_memmap(root / names[WINDOWS], mode="w+", dtype=DTYPE,
                                                shape=(window_rows, dim))
        times_out = np.zeros((window_rows, 2), np.float64)
    placed = [e for e in entries if e.get("error") is None]  # the same order as sources
    groups: dict[int, tuple] = {}
    for entry, (source, row, span) in zip(placed, sources):
        arrays, dest, rows, window_dest, window_rows_src = groups.setdefault(id(source[0]),
                                                                             (source, [], [], [], []))
        dest.append(entry["row"])
        rows.append(row)
        if with_windows:
            first = entry["windows"][0]
            window_dest.extend(range(first, first + span[1]))
            window_rows_src.extend(range(span[0], span[0] + span[1]))
    for (clips, windows, times), dest, rows, window_dest, window_src in groups.values():
        clips_out[dest] = clips[rows]
        if window_dest:
            windows_out[window_dest] = windows[window_src]
            times_out[window_dest] = times[window_src]
    for out in (clips_out, windows_out):
        if out is not None:
            out.flush()
    del clips_out, windows_out
    for name in (EMBEDDINGS, WINDOWS):  # on disk before the journal can swap them in
        if name in names:
            with open(root / names[name], "rb+") as handle:
                os.fsync(handle.fileno())
    if with_windows:
        atomic_write(root / names[WINDOW_TIMES], lambda tmp: _save_npy(tmp, times_out))


# --- searching -------------------------------------------------------------------------------------------------

@dataclass
class Hit:
    path: str
    score: float  # cosine between the query and the clip (or window) embedding
    start: float | None  # seconds; the whole clip for a clip-level hit
    end: float | None
    row: int  # the video's row in embeddings.npy
    window: int | None = None  # the window's row in windows.npy, for a window-level hit

    def to_dict(self) -> dict:
        return {"video": self.path, "score": round(self.score, 6),
                "start": None if self.start is None else round(self.start, 3),
                "end": None if self.end is None else round(self.end, 3)}


class VideoIndex:
    """An index folder opened for search (arrays memory-mapped: opening is instant at any size)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        _check_folder(self.root)
        # Read under a shared lock, so a build swapping in new files is never caught halfway; once
        # memory-mapped, the arrays stay valid after a later swap replaces their names.
        while True:
            with FileLock(self.root / COMMIT_LOCK, shared=True) if self.root.is_dir() else nullcontext():
                if not (self.root / JOURNAL).is_file():
                    self._read_files()
                    break
            _finish_commit(self.root)  # a build died halfway through its swap: finish it, then read

    def _read_files(self) -> None:
        meta = _read_meta_file(self.root)
        if meta is None:
            raise UsageError(f"{self.root}: no index here (build one with `vidprompt index VIDEOS --out "
                             f"{self.root}`)")
        self.meta = meta
        entries, self.embeddings, self.windows, self.window_times = _read_index(self.root, meta)
        self.entries = [e for e in entries if e.get("error") is None]
        self.window_owner = None
        if self.windows is not None:
            owner = np.zeros(self.windows.shape[0], np.int64)
            for entry in self.entries:
                first, count = entry["windows"]
                owner[first:first + count] = entry["row"]
            self.window_owner = owner
        self._tensors: dict[str, torch.Tensor] = {}
        self._checked = None  # the last model that passed check_model

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def model(self) -> dict:
        return self.meta["model"]

    @property
    def view(self) -> ViewConfig:
        return ViewConfig.from_dict(self.meta["view"])

    # --- the query model ---------------------------------------------------------------------------------
    def classifier(self, *, model: str | None = None, pretrained: str | None = None,
                   checkpoint: str | os.PathLike | None = None, templates: Sequence[str] | None = None,
                   device: str = "auto", precision: str = "auto", batch_size: int = 4,
                   num_workers: int | None = None, decoder: str = "auto"):
        """The query model: by default the one that built the index (its checkpoint, or its backbone and
        templates); with ``model``/``pretrained``/``checkpoint`` that model, which must give the same video
        embeddings. Views are the index's."""
        if model is not None and checkpoint is None:  # another backbone: say so before loading its weights
            named = Path(model).stem if model.endswith(".json") else model.replace("/", "-")
            if named != self.model["model"]:
                raise UsageError(f"{self.root}: the index was built with {describe_model(self.model)}, not "
                                 f"{model}; search with the index's own model (drop --model, --pretrained and "
                                 "--checkpoint) or build an index with this one")
        clf, _ = classifier_for(self.model, self.view, model=model, pretrained=pretrained,
                                checkpoint=checkpoint, templates=templates, device=device, precision=precision,
                                batch_size=batch_size, num_workers=num_workers, decoder=decoder)
        self.check_model(clf)
        return clf

    def check_model(self, clf) -> None:
        """Refuse a classifier whose video embeddings differ from the index's (other method, backbone,
        weights or settings)."""
        if self._checked is clf.model:
            return
        problem = model_difference(self.model, model_record(clf))
        if problem is not None:
            raise UsageError(f"{self.root}: {problem}; search with the index's own model (drop --model, "
                             "--pretrained and --checkpoint) or build an index with this one")
        self._checked = clf.model

    # --- queries -----------------------------------------------------------------------------------------
    def text_embedding(self, clf, text: str) -> np.ndarray:
        """The normalised text embedding of ``text`` through ``clf``'s text side (templates or prompts)."""
        from .text_cache import TextEmbeddingCache

        if not text or not text.strip():
            raise UsageError("the query is empty")
        self.check_model(clf)
        cache, clf.text_cache = clf.text_cache, TextEmbeddingCache(enabled=False)  # queries are one-offs
        try:
            return clf.label_embeddings([text.strip()])[0].float().cpu().numpy()
        finally:
            clf.text_cache = cache

    def video_embedding(self, clf, path: str | os.PathLike) -> np.ndarray:
        """The normalised embedding of a query video, computed like the library's."""
        self.check_model(clf)
        if clf.view != self.view:
            raise UsageError(f"{self.root}: the index was built with views {self.meta['view']}; the query "
                             f"video must be sampled the same way (got {clf.view.to_dict()})")
        for _, _, emb, error in clf.video_embeddings([os.fspath(path)]):
            if emb is None:
                raise VidpromptError(f"{path}: {error}")
            return _normalised_mean(emb)
        raise VidpromptError(f"{path}: no embedding")

    def search(self, clf, text: str | None = None, *, like: str | os.PathLike | None = None, top_k: int = 10,
               whole_clips: bool = False) -> list[Hit]:
        """The ``top_k`` best matches for a text query or a query video (``like``)."""
        if (text is None) == (like is None):
            raise UsageError("give a text query or --like VIDEO (one of them)")
        query = self.text_embedding(clf, text) if text is not None else self.video_embedding(clf, like)
        return self.search_embedding(query, top_k=top_k, whole_clips=whole_clips)

    def search_embedding(self, query: np.ndarray, top_k: int = 10, whole_clips: bool = False) -> list[Hit]:
        """Rank by cosine with a normalised query ``[D]``: windows when the index has them (at most one hit
        per overlapping stretch of a video), else whole clips."""
        if top_k < 1:
            raise UsageError(f"--top-k must be at least 1 (got {top_k})")
        query = np.asarray(query, np.float32).reshape(-1)
        if query.shape[0] != self.embeddings.shape[1]:
            raise UsageError(f"query has {query.shape[0]} dimensions, the index {self.embeddings.shape[1]}")
        use_windows = self.windows is not None and not whole_clips
        matrix = self.windows if use_windows else self.embeddings
        total = matrix.shape[0]
        if total == 0:
            return []
        scores = self._scores("windows" if use_windows else "clips", matrix, query)
        pool = min(total, max(8 * top_k, top_k + 64))
        while True:
            candidates = torch.topk(scores, pool).indices.numpy()
            # The fp16 product ranks; the candidates are re-scored in float32 so ties and order are exact.
            exact = np.asarray(matrix[np.sort(candidates)], np.float32) @ query
            order = np.sort(candidates)[np.argsort(-exact, kind="stable")]
            exact = np.sort(exact)[::-1]
            hits = self._hits(order, exact, use_windows, top_k)
            if len(hits) >= top_k or pool == total:
                return hits
            pool = min(total, pool * 4)

    def _scores(self, name: str, matrix: np.ndarray, query: np.ndarray) -> torch.Tensor:
        """Cosines of every row with the query: one fp16 matrix-vector product over the memory map."""
        tensor = self._tensors.get(name)
        if tensor is None:
            with warnings.catch_warnings():  # read-only memory map: torch is never asked to write to it
                warnings.simplefilter("ignore", UserWarning)
                tensor = torch.from_numpy(matrix)
            self._tensors[name] = tensor
        return (tensor @ torch.from_numpy(query).to(tensor.dtype)).float()

    def _hits(self, order: np.ndarray, scores: np.ndarray, use_windows: bool, top_k: int) -> list[Hit]:
        hits: list[Hit] = []
        taken: dict[int, list[tuple[float, float]]] = {}
        for index, score in zip(order.tolist(), scores.tolist()):
            if use_windows:
                row = int(self.window_owner[index])
                start, end = (float(t) for t in self.window_times[index])
                spans = taken.setdefault(row, [])
                if any(start < e and s < end for s, e in spans):
                    continue  # an overlapping window of the same video is already a hit
                spans.append((start, end))
                hits.append(Hit(self.entries[row]["path"], float(score), start, end, row, index))
            else:
                entry = self.entries[index]
                hits.append(Hit(entry["path"], float(score), 0.0 if entry.get("duration") is not None else None,
                                entry.get("duration"), index))
            if len(hits) == top_k:
                break
        return hits


def classifier_for(record: dict | None, view: ViewConfig | None, *, model: str | None = None,
                   pretrained: str | None = None, checkpoint: str | os.PathLike | None = None,
                   templates: Sequence[str] | None = None, device: str = "auto", precision: str = "auto",
                   batch_size: int = 4, num_workers: int | None = None, decoder: str = "auto"):
    """A classifier and the checkpoint path it came from: from the options when ``model``, ``pretrained`` or
    ``checkpoint`` is given (defaults as for classify), else the recorded model (``record``) with
    ``templates`` if given. ``view`` (when given) replaces the model's default views."""
    from .classifier import load_classifier

    common = dict(view=view, device=device, precision=precision, batch_size=batch_size,
                  num_workers=num_workers, decoder=decoder)
    given = model is not None or pretrained is not None or checkpoint is not None
    if not given and record is not None:
        if record.get("checkpoint"):
            checkpoint = record["checkpoint"]
            if not Path(checkpoint).is_file():
                raise UsageError(f"the index was built with the checkpoint {checkpoint}, which is gone; give "
                                 "--checkpoint with its new place")
            return load_classifier(None, record["pretrained"], checkpoint=str(checkpoint), templates=templates,
                                   **common), checkpoint
        return load_classifier(record["model_source"], record["pretrained"],
                               templates=templates or record.get("templates"), **common), None
    if checkpoint is not None:
        return load_classifier(model, pretrained, checkpoint=str(checkpoint), templates=templates,
                               **common), os.fspath(checkpoint)
    return load_classifier(model, pretrained, templates=templates, **common), None
