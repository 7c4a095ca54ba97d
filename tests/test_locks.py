"""File locks: exclusive and shared holders, the holder's pid, and no stale lock after a kill."""

import signal
import subprocess
import sys
import threading
import time

import pytest

from vidprompt.locks import FileLock, fcntl

pytestmark = pytest.mark.skipif(fcntl is None, reason="no flock on this platform")


def test_exclusive_excludes_and_shared_admits_shared(tmp_path):
    path = tmp_path / "lock"
    writer = FileLock(path)
    assert writer.acquire(blocking=False)
    assert not FileLock(path).acquire(blocking=False)
    assert not FileLock(path, shared=True).acquire(blocking=False)
    assert writer.holder() == str(__import__("os").getpid())
    writer.release()
    a, b = FileLock(path, shared=True), FileLock(path, shared=True)
    assert a.acquire(blocking=False) and b.acquire(blocking=False)
    assert not FileLock(path).acquire(blocking=False)
    a.release(), b.release()
    with FileLock(path):
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    path = tmp_path / "lock"
    code = ("import sys, time\nfrom vidprompt.locks import FileLock\n"
            f"lock = FileLock({str(path)!r})\nlock.acquire()\nprint('held', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        lock = FileLock(path)
        assert not lock.acquire(blocking=False)
        assert lock.holder() == str(proc.pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert lock.acquire(blocking=False)
    lock.release()


def test_blocking_acquire_waits_for_the_holder(tmp_path):
    path = tmp_path / "lock"
    holder = FileLock(path)
    holder.acquire()
    got = threading.Event()

    def wait_for_it():
        with FileLock(path, shared=True):
            got.set()

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    time.sleep(0.3)
    assert not got.is_set()
    holder.release()
    thread.join(10)
    assert got.is_set()


def test_readers_go_on_where_no_lock_file_can_be_made(tmp_path):
    """A reader of an index on a read-only share cannot create the lock file; nobody can write there
    either, so it reads without one. (A directory in the lock's place stands in for the read-only share:
    this suite may run as root, who can write anywhere.)"""
    blocked = tmp_path / "lock"
    blocked.mkdir()
    assert FileLock(blocked, shared=True).acquire()
    with pytest.raises(OSError):
        FileLock(blocked).acquire()
