"""Command-line inputs -> an ordered list of video paths: files, folders (recursive), globs, ``.txt`` files
that list paths (one per line, relative to the list file), and http(s) URLs, kept exactly as written."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable

from .video import VIDEO_EXTENSIONS, is_url

_GLOB_CHARS = set("*?[")


def _videos_in(folder: Path) -> list[str]:
    found = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
    return [str(p) for p in sorted(found, key=lambda p: str(p).casefold())]


def _read_path_list(list_file: Path) -> list[str]:
    entries = []
    for line in list_file.read_text("utf-8-sig").splitlines():
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


def expand_inputs(items: Iterable[str]) -> list[str]:
    """Expand inputs in order, without duplicates. Paths that do not exist are kept, so they are
    reported as failed videos instead of vanishing; a glob that matches nothing is kept the same way."""
    out: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = path if is_url(path) else os.path.normpath(path)
        if key not in seen:
            seen.add(key)
            out.append(path)

    for item in items:
        if is_url(item):
            add(item)
            continue
        path = Path(item).expanduser()
        if path.is_dir():
            for video in _videos_in(path):
                add(video)
        elif path.is_file() and path.suffix.lower() == ".txt":
            for entry in expand_inputs(_read_path_list(path)):
                add(entry)
        elif not path.exists() and _GLOB_CHARS & set(item):
            matches = sorted(glob.glob(os.path.expanduser(item), recursive=True), key=str.casefold)
            if not matches:
                add(item)
            for match in expand_inputs(matches):
                add(match)
        else:
            add(str(path))
    return out
