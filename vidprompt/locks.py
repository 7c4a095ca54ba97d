"""Advisory file locks (``flock``) for folders that several processes may touch, such as an index.

The kernel drops a process's locks when it dies, so a killed build never leaves a stale lock behind. Where
``fcntl`` does not exist (Windows) the locks are no-ops and keeping writers apart is up to the user.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import VidpromptError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class FileLock:
    """One lock on ``path`` (created if missing). Exclusive by default; ``shared`` lets readers in together.

        lock = FileLock(root / ".build.lock")
        if not lock.acquire(blocking=False):
            print("busy, held by process", lock.holder())

    The lock lives as long as this object holds its file: keep a reference until :meth:`release`.
    """

    def __init__(self, path: str | os.PathLike, *, shared: bool = False):
        self.path = Path(path)
        self.shared = shared
        self._handle = None

    def acquire(self, *, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False`` return False at once if another holder has it."""
        try:
            handle = open(self.path, "a+", encoding="utf-8")
        except OSError:
            if self.shared:  # a read-only folder: nobody can be writing to it either
                return True
            raise
        if fcntl is not None:
            mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
            try:
                fcntl.flock(handle.fileno(), mode if blocking else mode | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
        if not self.shared:  # who holds it, for the message another process prints
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the lock
            self._handle = None

    def holder(self) -> str:
        """The process id the last exclusive holder wrote, or ``"unknown"``."""
        try:
            return self.path.read_text("utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim(path: str | os.PathLike, what: str) -> FileLock:
    """The exclusive lock at ``path``, taken without waiting, or one line saying who holds it.

    ``what`` names the folder's use, e.g. "runs/kitchen is being trained by another `vidprompt train-prompts`".
    """
    lock = FileLock(path)
    if not lock.acquire(blocking=False):
        raise VidpromptError(f"{what} (process {lock.holder()}); wait for it to finish")
    return lock
