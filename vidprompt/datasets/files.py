"""Finding annotated videos on disk: which files count as videos, walking a root, tolerant path lookup.

Dataset copies drift from their annotation files: folders renamed in another case, clips flattened into
one folder, symlink farms. Lookups here try the exact path first (one ``stat``) and fall back to an index
of the root that is built once, so a large dataset never costs a directory scan per annotation line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from ..video import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)



def is_video(path: Path) -> bool:
    """A video by extension (any case); hidden files such as macOS ``._clip.mp4`` are not."""
    return not path.name.startswith(".") and path.suffix.lower() in VIDEO_EXTENSIONS


def walk_files(root: Path) -> Iterator[Path]:
    """Every non-hidden file under ``root`` in a fixed (name-sorted, depth-first) order.

    Symlinked folders are followed, because datasets are often assembled from links, but each real folder
    is visited once so a link cycle cannot loop forever.
    """
    seen: set[tuple[int, int]] = set()
    stack = [Path(root)]
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            log.warning("cannot read folder %s: %s", folder, exc)
            continue
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    subfolders.append(Path(entry.path))
                elif entry.is_file():
                    yield Path(entry.path)
            except OSError:  # a dangling link or a file that vanished while we looked
                continue
        stack.extend(reversed(subfolders))


def walk_videos(root: Path) -> Iterator[Path]:
    return (path for path in walk_files(root) if is_video(path))


def index_videos(root: Path, key: Callable[[Path], str]) -> dict[str, list[Path]]:
    """Videos under ``root`` grouped by ``key(path)`` (e.g. the file stem or its YouTube id), one scan."""
    index: dict[str, list[Path]] = {}
    for path in walk_videos(root):
        index.setdefault(key(path), []).append(path)
    return index


class FileIndex:
    """Resolves annotation paths (relative to ``root``) to files, tolerating case and flattened folders.

    The exact path wins. Otherwise the relative path is looked up case-insensitively (UCF101's
    ``HandstandPushups`` folder is ``HandStandPushups`` on some copies), then by file name alone when that
    name is unique under the root (clips moved out of their class folders). The index behind the fallbacks
    is built on the first miss, once.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._by_path: dict[str, Path] | None = None
        self._by_name: dict[str, Path | None] = {}

    def find(self, relative: str) -> Path | None:
        text = relative.strip().replace("\\", "/")
        if Path(text).is_absolute():
            return Path(text) if Path(text).is_file() else None
        path = self.root / text
        if path.is_file():
            return path
        self._build()
        folded = str(PurePosixPath(text)).casefold()
        return self._by_path.get(folded) or self._by_name.get(PurePosixPath(text).name.casefold())

    def _build(self) -> None:
        if self._by_path is not None:
            return
        self._by_path = {}
        for path in walk_files(self.root):
            relative = path.relative_to(self.root).as_posix().casefold()
            self._by_path.setdefault(relative, path)
            name = path.name.casefold()
            # a name seen twice is ambiguous: None marks it so it never matches
            self._by_name[name] = None if name in self._by_name else path
