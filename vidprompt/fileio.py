"""Atomic file writes (temp file in the same folder + rename), so a kill never leaves a half-written file;
and checks that an output path can be written, made before any long work starts."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import UsageError

_UMASK = os.umask(0)  # reading the umask means setting it: put it straight back
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result over ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _mode_for(path))  # mkstemp makes files private (0600); keep what a plain open gives
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _mode_for(path: Path) -> int:
    """The replaced file's permissions, or those a new file gets under the process's umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, "utf-8"))


def atomic_write_json(path: str | Path, data) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def cache_dir() -> Path:
    """``$VIDPROMPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/vidprompt``, else ``~/.cache/vidprompt``."""
    if os.environ.get("VIDPROMPT_CACHE_DIR"):
        return Path(os.environ["VIDPROMPT_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "vidprompt"


def check_output_folder(path: str | Path, option: str) -> Path:
    """Fail now, not after hours of work, if ``path`` cannot be (or become) a folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: exists and is not a folder")
    _check_ancestors(path, option)
    return path


def check_output_file(path: str | Path, option: str) -> Path:
    """Fail now, not after hours of work, if ``path`` cannot be written as a file."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    _check_ancestors(path, option)
    return path


def make_folder(path: str | Path, option: str) -> Path:
    """``mkdir -p`` with one usage error line instead of an OSError."""
    path = check_output_folder(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot create the folder ({exc.strerror or exc})") from None
    return path


def _check_ancestors(path: Path, option: str) -> None:
    for ancestor in path.absolute().parents:  # the nearest existing one must be a folder
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UsageError(f"{option} {path}: {ancestor} is a file, not a folder")
            return
