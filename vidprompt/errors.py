"""Exceptions that the CLI turns into one line on stderr and an exit code, never a traceback."""


class VidpromptError(Exception):
    """A runtime failure the user can act on (exit code 1)."""

    exit_code = 1


class UsageError(VidpromptError):
    """Bad arguments, labels, model names or option values (exit code 2)."""

    exit_code = 2


class OptionValueError(UsageError):
    """One setting out of range. ``field`` names it, so the caller can say where the value came from: an option
    the user typed, a line of a config file, a checkpoint's metadata."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class VideoError(VidpromptError):
    """A video that cannot be opened or decoded; reported per video, the rest go on."""
