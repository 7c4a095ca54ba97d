"""Exceptions that the CLI turns into one line on stderr and an exit code, never a traceback.

One type per kind of failure, whatever the method or layer: :class:`UsageError` for what the caller asked
(arguments, labels, model names), :class:`OptionValueError` for one parameter out of range, :class:`VideoError`
for a video that does not decode, :class:`VidpromptError` for everything else the user can act on.

Library messages name the Python parameter (``batch_size must be at least 1``); the command line shows the
flag the user typed instead (``--batch-size must be at least 1``) through :meth:`OptionValueError.for_flags`.
"""

from __future__ import annotations

import re


class VidpromptError(Exception):
    """A runtime failure the user can act on (exit code 1)."""

    exit_code = 1


class UsageError(VidpromptError):
    """Bad arguments, labels, model names or option values (exit code 2)."""

    exit_code = 2


class OptionValueError(UsageError):
    """One setting out of range. ``field`` names it (the Python parameter, or the key in a file), so the caller
    can say where the value came from: an option the user typed, a line of a config file, a checkpoint's
    metadata."""

    def __init__(self, field: str, message: str, *, mentions: tuple[str, ...] = ()):
        super().__init__(message)
        self.field = field
        self.mentions = mentions  # other parameters the message names ("window_stride needs window")

    def for_flags(self, flags: dict[str, str] | None = None) -> str:
        """The message with the parameters' names replaced by their command-line flags: ``flags`` maps the
        parameters whose flag is not simply ``--`` + the name with hyphens."""
        message = str(self)
        for name in (self.field, *self.mentions):
            flag = (flags or {}).get(name, "--" + name.replace("_", "-"))
            message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", lambda _: flag, message, count=1)
        return message


def out_of_range(name: str, value: object, expected: str) -> OptionValueError:
    """``name must be <expected> (got <value>)``: the one wording of a bad parameter value."""
    return OptionValueError(name, f"{name} must be {expected} (got {value})")


class VideoError(VidpromptError):
    """A video that cannot be opened or decoded; reported per video, the rest go on."""
