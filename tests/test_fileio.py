"""Atomic writes: all or nothing, and the permissions a plain write would give."""

import os
import stat

import pytest

from vidprompt import fileio
from vidprompt.fileio import atomic_write, atomic_write_text


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "_UMASK", 0o022)
    path = atomic_write_text(tmp_path / "report.json", "{}")
    assert mode(path) == 0o644  # shareable, as with open(); not mkstemp's 0600
    os.chmod(path, 0o640)
    atomic_write_text(path, "{ }")
    assert mode(path) == 0o640 and path.read_text() == "{ }"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "state", "old")

    def broken(tmp):
        with open(tmp, "w") as handle:
            handle.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["state"]
