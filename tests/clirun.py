"""Run the ``vidprompt`` command in a child process and measure it: exit code, stdout, stderr, peak memory.

Two ways, the same entry point (``vidprompt.cli:main``, which the console script and ``python -m vidprompt``
call):

- :func:`run_process`: ``python -m vidprompt`` in a new process, exactly as a user runs it; its peak memory
  comes from ``os.wait4``.
- :func:`run_forked`: ``main(argv)`` in a process forked from a server that imported torch, open_clip and
  vidprompt once. Each run is still a process of its own (own memory, stdio, environment, exit code), but it
  skips the ~5 s of imports, which lets a table of a hundred hostile cases run in CI's time budget. Its
  peak memory comes from ``resource.getrusage`` in the child (itself and its decoding workers).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

PRELOAD = ["torch", "open_clip", "av", "vidprompt.cli", "vidprompt.classifier", "vidprompt.training",
           "vidprompt.index", "vidprompt.evaluation"]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    peak_mb: float
    seconds: float

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def _args(args: list) -> list:
    return [a if isinstance(a, (str, bytes)) else str(a) for a in args]


def run_process(args: list, *, env: dict, workdir: str | os.PathLike, timeout: float = 180,
                interrupt_when: Callable[[], bool] | None = None) -> Run:
    """``python -m vidprompt ARGS``; ``interrupt_when``: once it returns True, Ctrl-C (SIGINT to the process
    group, as a terminal sends it)."""
    argv = [sys.executable, "-m", "vidprompt", *_args(args)]
    out_path, err_path = _outputs(workdir)
    start = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=workdir,
                                start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            pid = 0
            if interrupt_when is not None:  # poll with wait4, which reaps the child and keeps its usage
                while not interrupt_when():
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        break
                    time.sleep(0.01)
                if not pid:
                    os.killpg(proc.pid, signal.SIGINT)
            if not pid:
                _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(proc.returncode, _read(out_path), _read(err_path), usage.ru_maxrss / 1024,
               time.perf_counter() - start)


def run_forked(args: list, *, env: dict, workdir: str | os.PathLike, timeout: float = 180,
               stdout: str | None = None, file_size_limit: int | None = None) -> Run:
    """``vidprompt ARGS`` in a process forked from the preloaded server. ``stdout``: ``"/dev/full"`` (a full
    disk) or ``"closed-pipe"`` (a reader that went away) instead of a file; ``file_size_limit``: bytes any
    file may grow to (``RLIMIT_FSIZE``: writes past it fail like on a full disk)."""
    out_path, err_path = _outputs(workdir)
    result_path = out_path.with_suffix(".json")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    _start_server(workdir)
    start = time.perf_counter()
    child = context.Process(target=_child_main, args=(_args(args), dict(env), str(workdir), stdout or str(out_path),
                                                       str(err_path), str(result_path), file_size_limit))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
    seconds = time.perf_counter() - start
    peak = json.loads(result_path.read_text())["peak_kb"] / 1024 if result_path.exists() else float("nan")
    return Run(child.exitcode if child.exitcode >= 0 else 128 - child.exitcode,
               _read(out_path) if stdout is None else "", _read(err_path), peak, seconds)


def _start_server(workdir) -> None:
    """Start the fork server from ``workdir``, not the repository: its ``python -c`` puts the working folder
    first on ``sys.path``, and from the repository root ``import vidprompt`` would load the source tree (where
    ``vidprompt.label_sets`` does not exist) instead of the installed package."""
    from multiprocessing import forkserver

    here = os.getcwd()
    os.chdir(workdir)
    try:
        forkserver.ensure_running()
    finally:
        os.chdir(here)


def _child_main(argv, env, workdir, stdout, stderr, result, file_size_limit) -> None:
    """In the forked child: the environment, working folder and stdio of a fresh process, then ``main``."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(workdir)
    if stdout == "closed-pipe":
        reader, writer = os.pipe()
        os.close(reader)
        os.dup2(writer, 1)
        os.close(writer)
    else:
        fd = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.close(fd)
    fd = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if file_size_limit is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    code = 0
    try:
        from vidprompt.cli import main

        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    try:  # what the interpreter does at exit; a failure here is what a user would see as a stray traceback
        sys.stdout.flush()
    except Exception as exc:
        print(f"Exception ignored while flushing sys.stdout: {exc!r}", file=sys.stderr)
    sys.stderr.flush()
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    Path(result).write_text(json.dumps({"peak_kb": peak}))
    os._exit(code)


def _outputs(workdir) -> tuple[Path, Path]:
    base = Path(workdir) / f"run-{os.getpid()}-{time.monotonic_ns()}"
    return base.with_suffix(".out"), base.with_suffix(".err")


def _read(path: Path) -> str:
    return path.read_text("utf-8", "replace") if path.exists() else ""
