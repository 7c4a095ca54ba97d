"""One segment of an index: an immutable folder of videos embedded together, and what later builds deleted.

A segment folder (``segments/000007/``) holds::

    entries.jsonl     one line per video: path, size, mtime, frames, fps, duration, decoder, row (its row in
                      embeddings.npy), windows [first, count] (with windows); or path, size, mtime, error
    offsets.npy       int64 [entries + 1]: where each line starts, so one entry is read without the others
    entry_rows.npy    int64 [entries]: each entry's row (-1: no embedding); row_entries.npy int64 [rows]: back
    embeddings.npy    float16 [rows, D], L2-normalised
    windows.npy       float16 [windows, D], window_times.npy float64 [windows, 2], window_rows.npy int64
                      [windows] (the row each window belongs to): with ``--window`` only
    dead-NNNNNN.npy   int64, sorted: entries deleted since (a file changed or left the library); the index's
                      ``index.json`` names the current one, so deleting is writing a new small file

Nothing in a segment is rewritten after its folder is renamed into place; a build appends a segment and a
compaction merges segments into a new one. A segment holds at most 2**32 rows: global row ids are
``segment number << 32 | row``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..fileio import atomic_write

DTYPE = np.float16
ENTRIES = "entries.jsonl"
ID_BITS = 32


def global_id(number: int, local):
    """The index-wide id of row (or window) ``local`` of segment ``number``; works on int64 arrays too."""
    return (int(number) << ID_BITS) + local


def split_id(ident: int) -> tuple[int, int]:
    return int(ident) >> ID_BITS, int(ident) & ((1 << ID_BITS) - 1)


def segment_name(number: int) -> str:
    return f"{number:06d}"


class SegmentDamaged(Exception):
    """A segment's files do not agree (the caller names the index)."""


class Segment:
    """A segment opened for reading: arrays memory-mapped, entries read one at a time on demand."""

    def __init__(self, folder: Path, number: int, dim: int, with_windows: bool, dead: str | None = None):
        self.folder, self.number = folder, number
        try:
            self.embeddings = _mapped(folder / "embeddings.npy")
            self.row_entries = _mapped(folder / "row_entries.npy")
            self.entry_rows = _mapped(folder / "entry_rows.npy")
            self.offsets = _mapped(folder / "offsets.npy")
            self.windows = _mapped(folder / "windows.npy") if with_windows else None
            self.window_times = _mapped(folder / "window_times.npy") if with_windows else None
            self.window_rows = _mapped(folder / "window_rows.npy") if with_windows else None
            self.dead_entries = np.load(folder / dead) if dead else np.zeros(0, np.int64)
        except (OSError, ValueError) as exc:
            raise SegmentDamaged(f"segment {folder.name}: {getattr(exc, 'strerror', None) or exc}") from None
        self._check(dim)
        self._handle = None
        rows = self.entry_rows[self.dead_entries] if len(self.dead_entries) else np.zeros(0, np.int64)
        self.dead_rows = np.sort(rows[rows >= 0])
        self.dead_windows = self._windows_of(self.dead_rows) if with_windows else None

    def table(self, windows: bool) -> tuple[np.ndarray, np.ndarray]:
        """The window rows or the clip rows, and the sorted numbers of those deleted since."""
        return (self.windows, self.dead_windows) if windows else (self.embeddings, self.dead_rows)

    def _check(self, dim: int) -> None:
        entries, rows = len(self.entry_rows), len(self.row_entries)
        problem = None
        if self.embeddings.ndim != 2 or self.embeddings.shape != (rows, dim):
            problem = f"embeddings of shape {self.embeddings.shape} for {rows} rows of width {dim}"
        elif self.offsets.shape != (entries + 1,) or (entries and self.offsets[-1] > _size(self.folder / ENTRIES)):
            problem = "entry offsets do not fit entries.jsonl"
        elif rows and (self.row_entries.min() < 0 or self.row_entries.max() >= entries):
            problem = "rows name entries that do not exist"
        elif self.dead_entries.ndim != 1 or (len(self.dead_entries) and (
                self.dead_entries.min() < 0 or self.dead_entries.max() >= entries)):
            problem = "deleted entries that do not exist"
        elif self.windows is not None and not (
                self.windows.ndim == 2 and self.windows.shape[1] == dim
                and self.window_times.shape == (len(self.windows), 2) and self.window_rows.shape == (len(self.windows),)
                and (not len(self.windows) or (self.window_rows.min() >= 0 and self.window_rows.max() < rows))):
            problem = f"window arrays of shapes {self.windows.shape}, {self.window_times.shape} do not agree"
        if problem is not None:
            raise SegmentDamaged(f"segment {self.folder.name}: {problem}")

    def _windows_of(self, rows: np.ndarray) -> np.ndarray:
        """The windows (sorted) of the given sorted rows."""
        if not len(rows) or not len(self.window_rows):
            return np.zeros(0, np.int64)
        return np.flatnonzero(np.isin(self.window_rows, rows)).astype(np.int64)

    @property
    def live_rows(self) -> int:
        return len(self.row_entries) - len(self.dead_rows)

    def entry(self, line: int) -> dict:
        """Entry ``line`` of entries.jsonl, read alone."""
        if self._handle is None:
            self._handle = open(self.folder / ENTRIES, "rb")
        start, end = int(self.offsets[line]), int(self.offsets[line + 1])
        self._handle.seek(start)
        try:
            return json.loads(self._handle.read(end - start))
        except ValueError:
            raise SegmentDamaged(f"segment {self.folder.name}: entry {line} is not JSON") from None

    def entry_of_row(self, row: int) -> dict:
        return self.entry(int(self.row_entries[row]))

    def live_entries(self) -> Iterator[tuple[int, dict]]:
        """(line, entry) of every entry not deleted, in order (reads the whole file)."""
        dead = set(self.dead_entries.tolist())
        try:
            with open(self.folder / ENTRIES, "rb") as handle:
                for line, text in enumerate(handle):
                    if line not in dead:
                        yield line, json.loads(text)
        except ValueError:
            raise SegmentDamaged(f"segment {self.folder.name}: entries.jsonl is not JSON lines") from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _mapped(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


# --- writing ---------------------------------------------------------------------------------------------------

class NewSegment:
    """What a new segment will hold, gathered in order: the entries, renumbered for it, and where the rows of
    each embedded one are now (a pending chunk's arrays, or an older segment's)."""

    def __init__(self, with_windows: bool):
        self.with_windows = with_windows
        self.entries: list[dict] = []
        self.sources: list[tuple] = []
        self.window_rows = 0

    def add(self, entry: dict, arrays: tuple | None = None) -> None:
        """Append ``entry`` (changed in place: its row and window span become the new segment's); ``arrays``:
        (clips, windows, times) holding its rows at the entry's current ``row`` and ``windows``."""
        if entry.get("error") is None:
            self.sources.append((arrays, entry["row"], entry.get("windows")))
            entry["row"] = len(self.sources) - 1
            if self.with_windows:
                entry["windows"] = [self.window_rows, entry["windows"][1]]
                self.window_rows += entry["windows"][1]
        self.entries.append(entry)

    def write(self, folder: Path, dim: int) -> None:
        write_segment(folder, self.entries, self.sources, dim, self.with_windows)


def write_segment(folder: Path, entries: Sequence[dict], sources: Sequence[tuple], dim: int,
                  with_windows: bool) -> None:
    """Write a complete segment at ``folder`` (which must not exist yet; it appears in one rename).

    ``entries``: in order; the ones with an embedding carry ``row`` (their rank among those) and, with windows,
    ``windows`` [first, count] in the new segment. ``sources``: one ``((clips, windows, times), row, span)`` per
    entry with an embedding, saying where its rows are now (a pending chunk's arrays or an older segment's)."""
    tmp = folder.parent / f".{folder.name}.tmp"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    window_count = sum(e["windows"][1] for e in entries if e.get("error") is None) if with_windows else 0
    _write_rows(tmp, entries, sources, dim, with_windows, window_count)
    lines = [(json.dumps(e) + "\n").encode("utf-8") for e in entries]  # ASCII JSON: odd names as \udcXX escapes
    offsets = np.zeros(len(lines) + 1, np.int64)
    np.cumsum([len(line) for line in lines], out=offsets[1:])
    _write_bytes(tmp / ENTRIES, b"".join(lines))
    entry_rows = np.asarray([e["row"] if e.get("error") is None else -1 for e in entries], np.int64)
    _save(tmp / "offsets.npy", offsets)
    _save(tmp / "entry_rows.npy", entry_rows)
    _save(tmp / "row_entries.npy", np.flatnonzero(entry_rows >= 0).astype(np.int64))
    _fsync_dir(tmp)
    os.replace(tmp, folder)
    _fsync_dir(folder.parent)


def _write_rows(folder: Path, entries, sources, dim: int, with_windows: bool, window_count: int) -> None:
    """The embedding arrays, filled from their sources with one fancy-indexed copy per source array."""
    clips_out = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=DTYPE,
                                          shape=(len(sources), dim))
    windows_out = times_out = owners = None
    if with_windows:
        windows_out = np.lib.format.open_memmap(folder / "windows.npy", mode="w+", dtype=DTYPE,
                                                shape=(window_count, dim))
        times_out = np.zeros((window_count, 2), np.float64)
        owners = np.zeros(window_count, np.int64)
    placed = [e for e in entries if e.get("error") is None]  # the same order as sources
    groups: dict[int, tuple] = {}
    for entry, (source, row, span) in zip(placed, sources):
        arrays, dest, rows, window_dest, window_src = groups.setdefault(id(source[0]), (source, [], [], [], []))
        dest.append(entry["row"])
        rows.append(row)
        if with_windows:
            first, count = entry["windows"]
            window_dest.extend(range(first, first + count))
            window_src.extend(range(span[0], span[0] + span[1]))
            owners[first:first + count] = entry["row"]
    for (clips, windows, times), dest, rows, window_dest, window_src in groups.values():
        order = np.argsort(rows, kind="stable")  # read the source in file order
        clips_out[np.asarray(dest)[order]] = clips[np.asarray(rows)[order]]
        if window_dest:
            windows_out[window_dest] = windows[window_src]
            times_out[window_dest] = times[window_src]
    for out in (clips_out, windows_out):
        if out is not None:
            out.flush()
            with open(out.filename, "rb+") as handle:
                os.fsync(handle.fileno())
    del clips_out, windows_out
    if with_windows:
        _save(folder / "window_times.npy", times_out)
        _save(folder / "window_rows.npy", owners)


def write_dead(folder: Path, generation: int, dead: np.ndarray) -> str:
    """A segment's new list of deleted entries (sorted, unique) -> its file name."""
    name = f"dead-{generation:06d}.npy"
    atomic_write(folder / name, lambda tmp: _save_npy(tmp, np.unique(np.asarray(dead, np.int64))))
    return name


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array)


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
