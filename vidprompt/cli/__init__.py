"""The ``vidprompt`` command: parse, call the Python API, render. Nothing else lives here.

Heavy imports (torch, open_clip, video decoders) happen inside commands, so ``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import List, Optional

import typer

from .._version import __version__
from ..errors import OptionValueError, VidpromptError

app = typer.Typer(
    name="vidprompt",
    help="Zero-shot and open-vocabulary video classification with frozen CLIP models.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
log = logging.getLogger("vidprompt")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"vidprompt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Classify videos with words: sample frames, run CLIP, rank your class names."""


from .serve import app_command  # noqa: E402
from .classify import classify_command  # noqa: E402
from .convert import convert_command  # noqa: E402
from .eval import eval_command  # noqa: E402
from .index import index_command  # noqa: E402
from .inspect import inspect_command  # noqa: E402
from .localize import localize_command  # noqa: E402
from .push import push_command  # noqa: E402
from .search import search_command  # noqa: E402
from .train import train_prompts  # noqa: E402

app.command("classify")(classify_command)
app.command("train-prompts")(train_prompts)
app.command("inspect")(inspect_command)
app.command("convert")(convert_command)
app.command("eval")(eval_command)
app.command("index")(index_command)
app.command("search")(search_command)
app.command("localize")(localize_command)
app.command("push")(push_command)
app.command("app")(app_command)


# Entry point ---------------------------------------------------------------------------------------------
class _OneLineFormatter(logging.Formatter):
    """``vidprompt: message``, always one line: names with newlines or odd bytes are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        from ..display import printable

        message = printable(record.getMessage())
        if record.levelno == logging.WARNING and not message.startswith("warning"):
            message = f"warning: {message}"
        return f"vidprompt: {message}"


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False

    def show_warning(message, category, filename, lineno, file=None, line=None):
        log.warning("warning: %s", str(message).splitlines()[0] if str(message) else category.__name__)

    warnings.showwarning = show_warning


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry: user errors become one line on stderr and exit code 2 (usage) or 1 (runtime)."""
    _setup_logging()
    sys.stdout = _GuardedOutput(sys.stdout)
    try:
        result = app(args=argv, prog_name="vidprompt", standalone_mode=False)
        sys.stdout.flush()
    except typer.Exit as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # Typer turns Ctrl-C into Exit(130)
            _interrupted()
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except OptionValueError as exc:  # the library names the parameter; the user typed a flag
        _fail(f"error: {exc.for_flags()}", exc.exit_code)
    except VidpromptError as exc:
        _fail(f"error: {exc}", exc.exit_code)
    except OSError as exc:  # a full disk, a file too large, a folder that vanished mid-run
        from ..fileio import describe_os_error

        _fail(f"error: cannot write or read {describe_os_error(exc)}", 1)
    except Exception as exc:
        if _is_parse_error(exc):  # bad option, bad value, missing argument
            ctx = getattr(exc, "ctx", None)
            hint = f" (see 'vidprompt {ctx.info_name} --help')" if ctx is not None and ctx.parent else ""
            message = exc.format_message()
            if message:  # `vidprompt` alone prints the help and exits 2 with no message
                _fail(f"error: {message}{hint}", getattr(exc, "exit_code", 2))
            sys.exit(getattr(exc, "exit_code", 2))
        if os.environ.get("VIDPROMPT_DEBUG"):  # a bug, not user error: one line unless asked
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set VIDPROMPT_DEBUG=1 for the traceback)", 1)
    if result == 130:  # Typer turns Ctrl-C into Exit(130), and returns its code outside standalone mode
        _interrupted()
    sys.exit(result if isinstance(result, int) else 0)


def _interrupted() -> None:
    """Ctrl-C: one line saying what stopped (and how to resume it), exit 130, and nothing else."""
    from ..interrupts import message

    sys.unraisablehook = lambda unraisable: None  # workers and files torn down mid-way: nothing to report
    _fail(message(), 130)


class OutputError(VidpromptError):
    """stdout cannot take the results: a full disk, a closed pipe."""


class _GuardedOutput:
    """stdout, with a failed write turned into one error line instead of a traceback. After a failure every
    later write is dropped (and fd 1 points at /dev/null), so Python's own flush at exit stays silent."""

    def __init__(self, stream):
        self._stream = stream
        self._failed = False

    def write(self, text: str) -> int:
        if self._failed:
            return len(text)
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        if not self._failed:
            self._guard(self._stream.flush)

    def _guard(self, call, *args):
        try:
            return call(*args)
        except OSError as exc:
            self._failed = True
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass
            reason = "the reading end of the pipe was closed" if isinstance(exc, BrokenPipeError) else \
                exc.strerror or str(exc)
            raise OutputError(f"cannot write the results to stdout: {reason}") from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _is_parse_error(exc: Exception) -> bool:
    """Typer's command-line parsing errors (its own exception class in new releases, click's in older)."""
    return any(cls.__name__ in ("TyperException", "ClickException") for cls in type(exc).__mro__)


def _fail(message: str, code: int) -> None:
    from ..display import printable

    lines = message.splitlines() or [""]
    print(f"vidprompt: {printable(lines[0])}", file=sys.stderr)
    sys.exit(code)
