"""Files in and out: text files read with one clear error line (missing, a folder, not UTF-8), atomic
writes (temp file in the same folder + rename) so a kill never leaves a half-written file, and checks that
an output path can be written, made before any long work starts."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import UsageError, VidpromptError

_UMASK = os.umask(0)  # reading the umask means setting it: put it straight back
os.umask(_UMASK)


def read_text_file(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of a file the user named (a byte-order mark is dropped), or one usage error that names
    the file and says what is wrong with it. ``what`` names the file's role: "labels file", "list file"..."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path}: is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); save the "
                         f"{what} as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _os_reason(exc: BaseException) -> str:
    """The system's words for a failed write; safetensors reports an OSError inside its own message."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = str(exc)
    for marker in ("No space left on device", "File too large", "Permission denied", "Read-only file system"):
        if marker.lower().replace(" ", "") in text.lower().replace(" ", "").replace("_", ""):
            return marker
    return text.splitlines()[0][:200] if text else type(exc).__name__


def describe_os_error(exc: OSError) -> str:
    """``path: reason`` for an OSError (the file it names, the system's words for the problem)."""
    return f"{exc.filename}: {_os_reason(exc)}" if exc.filename is not None else _os_reason(exc)


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
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError":  # a full disk, a file too large
            raise VidpromptError(f"cannot write {path}: {_os_reason(exc)}") from None
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
