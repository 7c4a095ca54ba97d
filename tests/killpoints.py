"""Kill a run right after its N-th saved file: the training loop's file writers counted, and ``Killed`` raised
after the chosen one, as a ``kill -9`` at that moment would leave the folder."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

# What the training loop saves its run folder with (vidprompt.training imports these names).
TRAIN_WRITERS = ("save_checkpoint", "atomic_write", "atomic_write_text")


class Killed(Exception):
    pass


@contextmanager
def killed_after_write(module, kill_at: int | None, writers: tuple[str, ...] = TRAIN_WRITERS) -> Iterator[list]:
    """Inside the block, ``module``'s ``writers`` record each path they write in the yielded list and raise
    :class:`Killed` right after write number ``kill_at`` (``None``: never); the real writers come back after."""
    real = {name: getattr(module, name) for name in writers}
    written: list = []

    def counting(name):
        def write(path, *args, **kwargs):
            result = real[name](path, *args, **kwargs)
            written.append(path)
            if len(written) == kill_at:
                raise Killed
            return result
        return write

    for name in writers:
        setattr(module, name, counting(name))
    try:
        yield written
    finally:
        for name in writers:
            setattr(module, name, real[name])
