"""The index folder on disk: what its files hold, reading them back (checked, memory-mapped), the chunks of
a build in progress, and the commit that makes a new state of the index visible in one rename.

An index folder holds::

    index.json        the commit: format, vidprompt version, model (method, backbone, weights, trained tensors
                      digest, checkpoint path, templates), views, window settings, inputs, counts, and the
                      segments that make up the index with each one's current list of deleted entries
    segments/NNNNNN/  the segments: immutable folders of embedded videos (layout in :mod:`.segment`)
    pending/          a build's finished chunks (``chunk-NNNNNN.npz``) and what it embeds with (``run.json``)
    ann/              an approximate search index over the rows, when one was built (:mod:`.ann`)

A build appends a segment and writes new deletion lists, then replaces ``index.json``; files that no commit
names any more are deleted afterwards, under the commit lock, so a reader that opened the previous state keeps
reading it. An index of format 1 (one ``embeddings.npy`` and ``manifest.jsonl`` at the top, swapped in by a
journal) is read as one segment, and turned into format 2 by the next build.

What goes into an index is decided by :mod:`.build`, how it is ranked by :mod:`.search`; this module knows
the files, and the two records a folder is checked against: the model that embedded it (:func:`model_record`)
and how one video's views become its stored row (:func:`stored_rows`), so a build and a query agree.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._version import __version__
from ..errors import OptionValueError, UsageError, VidpromptError
from ..fileio import atomic_write, atomic_write_json, make_folder
from ..locks import FileLock, claim
from ..video import ViewConfig, check_window
from .segment import Segment, SegmentDamaged, segment_name
from .shortlist import FOLDER as ANN
from .shortlist import record_of

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

FORMAT = "vidprompt-index"
FORMAT_VERSION = 2
META = "index.json"
SEGMENTS = "segments"
PENDING = "pending"
# Format 1's files, read (and migrated) still.
MANIFEST = "manifest.jsonl"
EMBEDDINGS = "embeddings.npy"
WINDOWS = "windows.npy"
WINDOW_TIMES = "window_times.npy"
JOURNAL = "commit.json"
BUILD_LOCK = ".build.lock"  # held by a build from planning to commit: one writer at a time
COMMIT_LOCK = ".commit.lock"  # exclusive while files are swapped in, shared while a reader opens them
DTYPE = np.float16
_STAMPED = ("format", "format_version", "vidprompt_version", "dtype", "updated")  # set by every commit
# Fields of the model record that decide the video embeddings; templates only change the text side.
VIDEO_SIDE = ("method", "backbone", "hparams", "trained_tensors")


# --- what built an index ---------------------------------------------------------------------------------------

def jsonable(value):
    return json.loads(json.dumps(value))


def _where(checkpoint: str | os.PathLike) -> str:
    """A checkpoint's place as the index records it: an absolute path, or its ``hf-hub:`` name as given."""
    from ..hub import is_hub_ref

    return os.fspath(checkpoint) if is_hub_ref(checkpoint) else os.path.abspath(checkpoint)


def model_record(clf, checkpoint: str | os.PathLike | None = None) -> dict:
    """How to rebuild ``clf``'s model and what identifies its video embeddings (JSON)."""
    from ..methods.base import model_identity

    model = clf.model
    backbone = model.backbone
    hparams = jsonable(model.hparams())
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
        "checkpoint": None if checkpoint is None else _where(checkpoint),
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


def windows_setting(window: float | None, stride: float | None) -> dict | None:
    if window is None:
        if stride is not None:
            raise OptionValueError("window_stride", "window_stride needs window", mentions=("window",))
        return None
    stride = window if stride is None else stride
    check_window(window, stride, "window_stride")
    return {"window": float(window), "stride": float(stride)}


def build_identity(record: dict, view: ViewConfig, windows: dict | None) -> dict:
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


def finish_commit(root: Path) -> None:
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


def check_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not an index folder")


def read_meta(root: str | os.PathLike) -> dict | None:
    """The index's ``index.json`` (after finishing an interrupted format-1 commit), or ``None`` if there is no
    index."""
    root = Path(root)
    check_folder(root)
    if root.is_dir():
        finish_commit(root)
    return read_meta_file(root)


def read_meta_file(root: Path) -> dict | None:
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
    if not isinstance(version, int) or version < 1:
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
    if meta["format_version"] >= 2:
        return _segments_problem(meta)
    return None


def _segments_problem(meta: dict) -> str | None:
    segments, generation = meta.get("segments"), meta.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        return "generation missing or of the wrong type"
    if not isinstance(segments, list):
        return "segments missing"
    numbers = []
    for record in segments:
        if not isinstance(record, dict) or not isinstance(record.get("number"), int) or \
                not 0 <= record["number"] <= generation:
            return "a segment record of the wrong type"
        dead = record.get("dead")
        if dead is not None and not (isinstance(dead, str) and re.fullmatch(r"dead-\d{6}\.npy", dead)):
            return f"segment {record['number']}: deletions named {dead!r}"
        numbers.append(record["number"])
    if numbers != sorted(set(numbers)):
        return "segments out of order"
    return None


def open_segments(root: Path, meta: dict) -> list[Segment]:
    """The index's segments, opened and checked (a format-1 index: its files as one segment)."""
    with_windows = bool(meta.get("windows"))
    if meta["format_version"] == 1:
        return [LegacySegment(root, meta)]
    dim = meta["model"]["embed_dim"]
    try:
        return [Segment(root / SEGMENTS / segment_name(record["number"]), record["number"], dim, with_windows,
                        record.get("dead")) for record in meta["segments"]]
    except SegmentDamaged as exc:
        raise DamagedIndex(root, str(exc)) from None


def live_counts(segments: list[Segment]) -> dict:
    """Videos with an embedding, videos without (their error recorded), and windows, deletions left out."""
    videos = sum(seg.live_rows for seg in segments)
    entries = sum(len(seg.entry_rows) - len(seg.dead_entries) for seg in segments)
    windows = sum(len(seg.windows) - len(seg.dead_windows) for seg in segments if seg.windows is not None)
    return {"videos": videos, "failed": entries - videos, "window_rows": windows}


class LegacySegment(Segment):
    """A format-1 index read as segment 0: its manifest held in memory, its arrays memory-mapped."""

    def __init__(self, root: Path, meta: dict):  # not super().__init__, which reads format 2 files
        with_windows = bool(meta.get("windows"))
        self.folder, self.number, self._handle = root, 0, None
        self._entries = _read_manifest(root / MANIFEST, with_windows)
        try:
            self.embeddings = load_array(root / EMBEDDINGS)
            self.windows = load_array(root / WINDOWS) if with_windows else None
            self.window_times = np.load(root / WINDOW_TIMES) if with_windows else None
        except (OSError, ValueError) as exc:
            raise DamagedIndex(root, f"arrays unreadable: {getattr(exc, 'strerror', None) or exc}") from None
        self.entry_rows = np.asarray([e["row"] if e.get("error") is None else -1 for e in self._entries], np.int64)
        self.row_entries = np.flatnonzero(self.entry_rows >= 0).astype(np.int64)
        dim = meta["model"]["embed_dim"]
        if self.embeddings.ndim != 2 or self.embeddings.shape != (len(self.row_entries), dim):
            raise DamagedIndex(root, f"{EMBEDDINGS} has shape {self.embeddings.shape}, the manifest "
                                     f"{len(self.row_entries)} videos of width {dim}")
        self.window_rows = None
        if with_windows:
            spans = [e["windows"] for e in self._entries if e.get("error") is None]
            ends = max((sum(span) for span in spans), default=0)
            if self.windows.ndim != 2 or self.windows.shape[1] != dim or self.windows.shape[0] < ends or \
                    self.window_times.shape != (self.windows.shape[0], 2):
                raise DamagedIndex(root, f"window arrays of shape {self.windows.shape} and "
                                         f"{self.window_times.shape} do not hold the manifest's {ends} windows")
            self.windows, self.window_times = self.windows[:ends], self.window_times[:ends]
            self.window_rows = np.zeros(ends, np.int64)
            for row, (first, count) in enumerate(spans):
                self.window_rows[first:first + count] = row
        self.dead_entries = self.dead_rows = np.zeros(0, np.int64)
        self.dead_windows = np.zeros(0, np.int64) if with_windows else None

    def entry(self, line: int) -> dict:
        return dict(self._entries[line])

    def live_entries(self):
        return ((line, dict(entry)) for line, entry in enumerate(self._entries))


def discard_index(root: str | os.PathLike) -> None:
    """Delete a damaged index's own files (not its pending chunks, which are checked on their own), so the
    next build starts fresh."""
    root = Path(root)
    with FileLock(root / COMMIT_LOCK):
        for path in _format_1_files(root):
            path.unlink()
        if (root / META).is_file():
            (root / META).unlink()
        for folder in (SEGMENTS, ANN):
            if (root / folder).is_dir():
                shutil.rmtree(root / folder)


def _format_1_files(root: Path) -> list[Path]:
    """What a format-1 index has beside ``index.json``: its arrays and manifest, the swap copies of those and of
    ``index.json``, its journal."""
    paths = [root / name for name in (*_SWAPPED, JOURNAL) if name != META]
    paths += [root / f".{name}.next" for name in (*_SWAPPED, JOURNAL)]
    return [path for path in paths if path.is_file()]


def _read_manifest(path: Path, with_windows: bool = False) -> list[dict]:
    """A format-1 manifest's entries, each checked: a video with an embedding has an integer row (and a window
    span when the index has windows), rows in order."""
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


def load_array(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r")


# --- a build's hold on the folder ------------------------------------------------------------------------------

def claim_index(root: str | os.PathLike) -> FileLock:
    """The folder's build lock (the folder is created if needed), or one line saying another build holds it.
    Taken first thing, so a second build of one folder is refused at once, before any model loads."""
    root = Path(root)
    check_folder(root)
    make_folder(root, "index")
    return claim(root / BUILD_LOCK, f"{root} is being updated by another `vidprompt index`")


def open_for_update(root: str | os.PathLike) -> dict | None:
    """``index.json`` of the index at ``root`` for a build (``None``: no index yet). A damaged index is
    deleted with a warning, so running ``vidprompt index`` again rebuilds it; the caller holds the build lock."""
    root = Path(root)
    try:
        meta = read_meta(root)
        if meta is not None:
            open_segments(root, meta)
        return meta
    except DamagedIndex as exc:
        log.warning("warning: %s: damaged index (%s); rebuilding it from the inputs", root, exc.problem)
        discard_index(root)
        return None


# --- a build's pending chunks ----------------------------------------------------------------------------------

class Chunk:
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
        """Write the chunk; returns what :func:`read_chunk` would read back."""
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


def read_chunk(path: Path) -> dict | None:
    try:
        with np.load(path) as data:
            return {"clips": data["clips"], "windows": data["windows"], "window_times": data["window_times"],
                    "entries": json.loads(data["entries"].tobytes().decode("utf-8"))}
    except Exception:  # a damaged chunk is redone, never fatal
        log.debug("ignoring unreadable chunk %s", path)
        return None


def stored_rows(views: torch.Tensor) -> np.ndarray:
    """Embeddings ``[..., views, D]`` -> one row per item (float32 numpy): a stored row, and a query video
    compared with the rows; the views are combined by :func:`~vidprompt.methods.base.view_embedding`."""
    from ..methods.base import view_embedding

    return view_embedding(views).cpu().numpy()


# --- the commit ------------------------------------------------------------------------------------------------

def commit(root: Path, summary: dict) -> dict:
    """Make ``summary`` (model, view, windows, inputs, segments, generation, counts) the index's state: one
    atomic replace of ``index.json``. Then delete what no longer belongs to it: segments and deletion lists it
    does not name, format 1's files, the pending chunks."""
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "vidprompt_version": __version__, **summary,
            "dtype": "float16", "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with FileLock(root / COMMIT_LOCK):  # a reader opening the index sees the old state or the new one, whole
        atomic_write_json(root / META, meta)
    collect_garbage(root, meta, pending=True)
    return meta


def commit_segments(root: Path, summary: dict) -> tuple[dict, list[Segment]]:
    """:func:`commit` ``summary`` with its live counts, read from the segments it names, which are returned
    opened (a build goes on with them: compaction check, approximate index)."""
    segments = open_segments(root, {**summary, "format_version": FORMAT_VERSION})
    return commit(root, {**summary, **live_counts(segments)}), segments


def recommit(root: Path, meta: dict, **changes) -> dict:
    """Commit the state ``meta`` describes with ``changes`` to its keys (e.g. a new ``ann`` record)."""
    summary = {key: value for key, value in meta.items() if key not in _STAMPED}
    return commit(root, {**summary, **changes})


def collect_garbage(root: Path, meta: dict, pending: bool = False) -> None:
    """Delete the files of ``root`` that the committed ``meta`` (format 2) does not name: left by an older
    state, or by a build killed before its commit. ``pending``: the pending chunks too (after a commit)."""
    keep = {segment_name(record["number"]): record.get("dead") for record in meta["segments"]}
    keep_ann = (record_of(meta) or {}).get("file")
    with FileLock(root / COMMIT_LOCK):  # not while a reader is opening the files
        folder = root / SEGMENTS
        for child in (folder.iterdir() if folder.is_dir() else ()):
            if child.name not in keep:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
                continue
            for stale in child.glob("*dead-*.npy*"):
                if stale.name != keep[child.name]:
                    stale.unlink()
        for path in _format_1_files(root):  # once migrated
            path.unlink()
        ann = root / ANN
        for stale in (ann.iterdir() if ann.is_dir() else ()):
            if stale.name != keep_ann:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        if pending and (root / PENDING).is_dir():
            shutil.rmtree(root / PENDING)
