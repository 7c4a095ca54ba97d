"""Multi-process runs under ``torchrun``: a thin, generic layer over :mod:`torch.distributed`.

A process started by ``torchrun`` (or ``python -m torch.distributed.run``) finds ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address in its environment; :func:`init_from_env` joins the process group
from there (``nccl`` when the ranks use CUDA, one GPU each, ``gloo`` otherwise). Without those variables
nothing happens and every helper answers as for a single process (rank 0 of 1), so the same code runs
unchanged with or without ``torchrun``.

    device = distributed.init_from_env("auto")   # cuda:LOCAL_RANK under torchrun on a GPU machine
    try:
        ...
        parts = distributed.all_gather_object(my_records)   # [rank 0's, rank 1's, ...]
        if distributed.is_main():
            write(parts)
    finally:
        distributed.cleanup()

Importing this module does not import torch.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable

from .errors import VidpromptError

if TYPE_CHECKING:
    import torch

_ENV_KEYS = ("RANK", "WORLD_SIZE")


def launched() -> bool:
    """True when started by torchrun (``RANK`` and ``WORLD_SIZE`` are set), whether or not the group is
    initialised yet."""
    return all(os.environ.get(key) not in (None, "") for key in _ENV_KEYS)


def _initialized() -> bool:
    import sys

    if "torch" not in sys.modules:  # nothing can be initialised without torch; keep imports lazy
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def is_distributed() -> bool:
    """True when the process group is initialised with more than one process."""
    return _initialized() and world_size() > 1


def rank() -> int:
    """This process's global rank (from the group, else from torchrun's environment, else 0)."""
    if _initialized():
        import torch.distributed as dist

        return dist.get_rank()
    return int(os.environ.get("RANK") or 0) if launched() else 0


def world_size() -> int:
    """Number of processes (from the group, else from torchrun's environment, else 1)."""
    if _initialized():
        import torch.distributed as dist

        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE") or 1) if launched() else 1


def local_rank() -> int:
    """Rank on this node (``LOCAL_RANK``; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK") or 0) if launched() else 0


def is_main() -> bool:
    """Rank 0: the process that writes files, logs and draws progress bars."""
    return rank() == 0


def init_from_env(device: str | torch.device = "auto", timeout_s: float | None = None) -> torch.device:
    """Join torchrun's process group and return the device this rank should use.

    ``device`` is the user's choice (``auto``/``cpu``/``cuda``/...; see :func:`vidprompt.runtime.resolve_device`).
    Without torchrun it is just resolved. Under torchrun a CUDA device becomes ``cuda:LOCAL_RANK`` (made
    current) and the backend ``nccl``; anything else uses ``gloo``. Calling it again once initialised only
    resolves the device the same way.
    """
    import torch

    from .runtime import resolve_device

    resolved = resolve_device(device)
    if not launched():
        return resolved
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        resolved = torch.device("cuda", local_rank() % max(count, 1))
        torch.cuda.set_device(resolved)
    if not _initialized():
        import datetime

        import torch.distributed as dist

        backend = "nccl" if resolved.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"backend": backend}
        if timeout_s is not None:
            kwargs["timeout"] = datetime.timedelta(seconds=timeout_s)
        if backend == "nccl":
            kwargs["device_id"] = resolved  # binds the communicator to this rank's GPU (no guessing)
        try:
            dist.init_process_group(**kwargs)
        except TypeError:  # older torch without device_id
            kwargs.pop("device_id", None)
            dist.init_process_group(**kwargs)
    return resolved


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    if not is_distributed():
        return
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` for a single process.
    Every rank must call it the same number of times."""
    if not is_distributed():
        return [obj]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (what other ranks pass is ignored); ``obj`` for one process."""
    if not is_distributed():
        return obj
    import torch.distributed as dist

    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def cleanup() -> None:
    """Leave the process group (safe to call when none was joined, and more than once).

    Called with no exception on its way out (a run that ended well), every process first waits for the others
    at a barrier: a process that tore its connections down while a peer was still at work was sometimes
    aborted by gloo during exit ("terminate called without an active exception": 2 two-process evals in 12 on
    CPU, none in 12 with the barrier). On the way out of an error it leaves at once, since a peer may be gone.
    """
    if _initialized():
        import torch.distributed as dist

        if sys.exc_info()[0] is None:
            try:
                dist.barrier()
            except Exception:  # a peer that left on an error of its own: nothing left to wait for
                pass
        dist.destroy_process_group()


class PeerFailed(VidpromptError):
    """Another process of a torchrun run failed or vanished (printed by process 0, which has the story)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.reported_on_main = not is_main()


def share_from_main(produce: Callable[[], Any]) -> Any:
    """``produce()`` run by rank 0 alone (it may write files), its result handed to every rank. When it raises,
    rank 0 raises that error and every other rank a :class:`PeerFailed`, so no rank waits forever."""
    if not is_distributed():
        return produce()
    if is_main():
        try:
            value = produce()
        except BaseException as exc:
            broadcast_object(("failed", f"{type(exc).__name__}: {exc}".splitlines()[0]))
            raise
        broadcast_object(("ok", value))
        return value
    state, value = broadcast_object(None)
    if state == "failed":
        raise PeerFailed(f"process 0 failed ({value})")
    return value


def step_together(state: str, message: str = "", payload: Any = None, *,
                  received: Callable[[list], None] | None = None, then: str = "") -> bool:
    """One collective step of a run whose ranks have different amounts of work. Each rank calls it after each
    unit of its own work (``running``), then with ``done`` until it returns True (every rank is done); a rank
    that fails calls it once with ``failed`` and its message. Raises :class:`PeerFailed` on the others, its
    message ending in ``then`` (what became of the work, e.g. "rerun to resume").

    ``payload`` (picklable) travels to every rank: ``received`` gets every rank's, in rank order, before a
    failure is raised, so what a failing rank finished is still handed over."""
    if not is_distributed():
        if received is not None:
            received([payload])
        return True
    tail = f"; {then}" if then else ""
    try:
        parts = all_gather_object((state, message, payload))
    except Exception as exc:
        raise PeerFailed(f"lost contact with the other processes ({type(exc).__name__}: {exc}){tail}") from exc
    if received is not None:
        received([p for _, _, p in parts])
    failed = [(r, m) for r, (s, m, _) in enumerate(parts) if s == "failed" and r != rank()]
    if failed:
        r, m = failed[0]
        raise PeerFailed(f"process {r} of {len(parts)} failed ({m}){tail}")
    return all(s == "done" for s, _, _ in parts)
