"""Command-line inputs -> an ordered list of video paths: files, folders (recursive), globs, ``.txt`` files
that list paths (one per line, relative to the list file), and http(s) URLs, kept exactly as written."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable

from .errors import UsageError
from .video import VIDEO_EXTENSIONS, is_url

_GLOB_CHARS = set("*?[")


def _videos_in(folder: Path) -> list[str]:
    found = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
    return [str(p) for p in sorted(found, key=lambda p: str(p).casefold())]


def _read_path_list(list_file: Path) -> list[str]:
    from .fileio import read_text_file

    entries = []
    for line in read_text_file(list_file, "list of videos").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if is_url(line):
            entries.append(line)
            continue
        path = Path(line).expanduser()
        if not path.is_absolute() and not path.exists():
            path = list_file.parent / path  # relative to the list file, wherever it is run from
        entries.append(str(path))
    return entries


def expand_inputs(items: Iterable[str], keep_empty: bool = True) -> list[str]:
    """Expand inputs in order, without duplicates. Every input yields at least one entry, so that it gets a
    result or an error: paths that do not exist are kept (reported as failed videos instead of vanishing), and
    so are a glob that matches nothing and, with ``keep_empty``, a folder without videos and a list that lists
    none. A list file that lists itself, directly or through other lists, is a usage error."""
    out: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = path if is_url(path) else os.path.normpath(path)
        if key not in seen:
            seen.add(key)
            out.append(path)

    def expand(item: str, lists: tuple[Path, ...]) -> None:
        if is_url(item):
            add(item)
            return
        path = Path(item).expanduser()
        if path.is_dir():
            found = _videos_in(path)
            for video in found:
                add(video)
            if not found and keep_empty:
                add(str(path))
        elif path.is_file() and path.suffix.lower() == ".txt":
            real = path.resolve()
            if real in lists:
                chain = " -> ".join(str(p) for p in (*lists, real)[lists.index(real):])
                raise UsageError(f"{real}: a list of videos that lists itself ({chain})")
            entries = _read_path_list(path)
            for entry in entries:
                expand(entry, (*lists, real))
            if not entries and keep_empty:
                add(str(path))  # lists no video: reported, not dropped
        elif not path.exists() and _GLOB_CHARS & set(item):
            matches = sorted(glob.glob(os.path.expanduser(item), recursive=True), key=str.casefold)
            if not matches:
                add(item)
            for match in matches:
                expand(match, lists)
        else:
            add(str(path))

    for item in items:
        expand(item, ())
    return out
