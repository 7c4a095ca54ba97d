"""What Ctrl-C interrupted: each command says what it is doing, so the one line printed on an interrupt names
the work and, for work that resumes (training, eval, index), the command that picks it up again."""

from __future__ import annotations

_doing: str | None = None


def doing(what: str) -> None:
    """Describe the running work, e.g. "training runs/x; resume with `vidprompt train-prompts --resume runs/x`"."""
    global _doing
    _doing = what


def message() -> str:
    return f"interrupted: {_doing}" if _doing else "interrupted"
