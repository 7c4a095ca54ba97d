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


# Parameters whose command-line flag is not ``--`` + the name with hyphens, wherever the library names them.
FLAG_NAMES = {
    "templates": "--template",  # load_classifier(templates=[...]): repeated --template
    "out_dir": "--out",  # evaluate(out_dir=...), claim_out_dir(out_dir)
}

# A parameter's name as a word of the message: not inside another word, a flag or a path (``runs/model/x``,
# ``model.json``), so a path or value that contains the name is left as it is.
_NAME = r"(?<![\w\-./\\]){}(?![\w\-/\\]|\.\w)"


class OptionValueError(UsageError):
    """One setting out of range. ``field`` names it (the Python parameter, or the key in a file), so the caller
    can say where the value came from: an option the user typed, a line of a config file, a checkpoint's
    metadata."""

    def __init__(self, field: str, message: str, *, mentions: tuple[str, ...] = ()):
        super().__init__(message)
        self.field = field
        self.mentions = mentions  # other parameters the message names ("window_stride needs window")

    def __reduce__(self):  # pickled whole (a distributed run sends a rank's error to the others)
        return _rebuild_option_error, (type(self), self.field, str(self), tuple(self.mentions), self.__dict__)

    def for_flags(self, flags: dict[str, str] | None = None) -> str:
        """The message with the parameters' names replaced by their command-line flags: ``flags`` maps the
        parameters whose flag is not simply ``--`` + the name with hyphens (on top of :data:`FLAG_NAMES`).

        The first mention of each name is replaced, in the order ``field``, ``mentions``; a name listed twice
        has its first two mentions replaced (``device cuda: ... (use device cpu)``)."""
        names = {**FLAG_NAMES, **(flags or {})}
        message = str(self)
        for name in (self.field, *self.mentions):
            flag = names.get(name, "--" + name.replace("_", "-"))
            message = re.sub(_NAME.format(re.escape(name)), lambda _: flag, message, count=1)
        return message


def _rebuild_option_error(cls, field, message, mentions, state):
    error = cls(field, message, mentions=mentions)
    error.__dict__.update(state)
    return error


def out_of_range(name: str, value: object, expected: str) -> OptionValueError:
    """``name must be <expected> (got <value>)``: the one wording of a bad parameter value."""
    return OptionValueError(name, f"{name} must be {expected} (got {value})")


class VideoError(VidpromptError):
    """A video that cannot be opened or decoded; reported per video, the rest go on."""
