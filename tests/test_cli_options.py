"""Every shared option of the CLI is declared once (cli/options.py), and option groups reach a command as one
object: the spread flags, the defaults and the per-command variants."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

import vidprompt.cli
from vidprompt.cli.options import RuntimeOptions, ViewOptions, command

CLI = Path(vidprompt.cli.__file__).parent
# The same flag for a different thing in different commands: each command's own output or target, and
# localize's windows (seconds), which are not the frame sampling's.
PER_COMMAND = {"--json": "what the command prints", "--out": "what it writes", "--top-k": "results per video or "
               "query", "--window": "index: optional windows; localize: the window"}
SECONDS = {("--stride", "localize.py")}  # localize's windows start --stride seconds apart (not a frame interval)


def _declared_flags() -> list[tuple[str, str]]:
    """``(flag, file)`` for every flag written in the CLI package: in a ``typer.Option(...)``, or given to a
    variant by ``noted(..., flags=(...))``."""
    found = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            if ast.unparse(node.func) == "typer.Option":
                found += [(arg.value, path.name) for arg in node.args
                          if isinstance(arg, ast.Constant) and str(arg.value).startswith("--")]
            if ast.unparse(node.func) == "noted":
                found += [(elt.value, path.name) for kw in node.keywords if kw.arg == "flags"
                          for elt in getattr(kw.value, "elts", ()) if isinstance(elt, ast.Constant)]
    return found


def test_each_shared_option_is_declared_once():
    seen: dict[str, list[str]] = {}
    for flag, where in _declared_flags():
        seen.setdefault(flag, []).append(where)
    repeated = {flag: files for flag, files in seen.items()
                if flag not in PER_COMMAND and len([f for f in files if (flag, f) not in SECONDS]) > 1}
    assert not repeated
    assert ("--frame-stride", "localize.py") in _declared_flags()  # a variant's flags are seen too
    shared = {flag for flag, where in _declared_flags() if where == "options.py"}
    assert {"--model", "--checkpoint", "--labels", "--frames", "--device", "--batch-size", "--seed"} <= shared


def test_groups_are_spread_into_flags_and_rebuilt_for_the_command():
    received = {}

    @command
    def run(video: Annotated[str, typer.Argument()], views: ViewOptions = ViewOptions(),
            runtime: RuntimeOptions = RuntimeOptions(),
            stride: Annotated[float, typer.Option("--window-stride")] = 1.0) -> None:
        received.update(video=video, views=views, runtime=runtime, stride=stride)

    app = typer.Typer()
    app.command()(run)
    app.command("other")(lambda: None)  # two commands, so ``run`` is a sub-command, as in vidprompt
    result = CliRunner().invoke(app, ["run", "a.mp4", "--frames", "16", "--sampling", " Dense ", "-b", "2",
                                      "--window-stride", "0.5"])
    assert result.exit_code == 0, result.output
    assert received["views"] == ViewOptions(frames=16, sampling=" Dense ")
    assert received["views"].given() == {"frames": 16, "sampling": "dense"}
    assert received["runtime"] == RuntimeOptions(batch_size=2)  # the rest are the declared defaults
    assert received["stride"] == 0.5 and received["video"] == "a.mp4"


def test_a_group_default_in_the_signature_is_the_default_and_python_callers_may_leave_groups_out():
    received = {}

    @command
    def run(runtime: RuntimeOptions = RuntimeOptions(batch_size=8), views: ViewOptions = ViewOptions()) -> None:
        received.update(runtime=runtime, views=views)

    app = typer.Typer()
    app.command()(run)
    app.command("other")(lambda: None)
    assert CliRunner().invoke(app, ["run"]).exit_code == 0
    assert received["runtime"] == RuntimeOptions(batch_size=8)
    run()  # called from Python with nothing given: the declared defaults, not a KeyError
    assert received["runtime"] == RuntimeOptions(batch_size=8) and received["views"] == ViewOptions()


def test_localize_has_both_strides_and_its_own_batch_default(tmp_path, capsys):
    result = CliRunner().invoke(vidprompt.cli.app, ["localize", "--help"], env={"COLUMNS": "200"})
    assert "--frame-stride" in result.output and "--stride" in result.output
    assert "Windows per forward pass. [default: 8]" in " ".join(result.output.split())
    video = tmp_path / "long.mp4"
    video.write_bytes(b"")  # the views are checked before the video is opened
    with pytest.raises(SystemExit) as exited:  # a bad frame interval names the flag the user typed
        vidprompt.cli.main(["localize", str(video), "--labels", "a,b", "--sampling", "dense", "--frame-stride", "0"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == "vidprompt: error: --frame-stride must be at least 1 (got 0)"


def test_every_command_renders_its_help():
    """Help text goes through rich markup: a stray [/X] in a help string breaks the whole page."""
    for name in ("classify", "train-prompts", "inspect", "convert", "eval", "index", "search", "localize", "push", "app"):
        result = CliRunner().invoke(vidprompt.cli.app, [name, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "--help" in result.output, (name, result.output[-300:])
