"""``vidprompt train-prompts``: train PromptCLIP or AIM on the user's labelled videos.

The training flags are not written here: each is generated from its field of :class:`~vidprompt.config.TrainConfig`
(name, alias, type, help, default), so a new option is one new field.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..config import METHOD_DEFAULTS, RESUME_OVERRIDES, field_type, flag_fields
from ..errors import UsageError
from .options import Quiet, warn_random_weights


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _shown_default(f: dataclasses.Field, base: type) -> str | bool:
    """The default the help shows: the field's, or each method's recipe for the fields left to it."""
    if any(f.name in recipe for recipe in METHOD_DEFAULTS.values()):
        return ", ".join(f"{method} {recipe[f.name]}" for method, recipe in METHOD_DEFAULTS.items())
    if base is bool:
        return _flag(f.name if f.default else f"no_{f.name}")
    return False if f.default is None else str(f.default)


def _option(f: dataclasses.Field) -> inspect.Parameter:
    """The command-line option of one config field. Its value is ``None`` unless the flag is given, so that
    only the flags the user typed override the YAML file and ``--set``."""
    base, _ = field_type(f.name)
    decls = [f"{_flag(f.name)}/{_flag('no_' + f.name)}" if base is bool else _flag(f.name)]
    decls += [f.metadata["short"]] if "short" in f.metadata else []
    option = typer.Option(None, *decls, help=f.metadata["help"], show_default=_shown_default(f, base))
    kind = Path if f.metadata["path"] else base  # a config path is a str; on the command line, a Path
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[kind])


def _with_config_flags(command):
    """``command`` with one option per config flag after its own first two (``--config``, ``--set``), as
    Typer reads a command's options: from ``__signature__`` and the type hints in ``__annotations__``."""
    hints = typing.get_type_hints(command, include_extras=True)
    own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(command).parameters.values()
           if p.kind is p.KEYWORD_ONLY]
    command.__signature__ = inspect.Signature([*own[:2], *map(_option, flag_fields()), *own[2:]])
    command.__annotations__ = {p.name: p.annotation for p in command.__signature__.parameters.values()}
    return command


@_with_config_flags
def train_prompts(
    *,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with any training options."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override one option: --set epochs=20 "
                                             "(repeatable; every key of the YAML config works)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder."),
    quiet: Quiet = False,
    **options: Any,
) -> None:
    """Train PromptCLIP prompts (or AIM adapters) on your labelled videos; checkpoints work with any labels."""
    from ..config import load_config
    from ..training import train

    flags = {name: str(value) if isinstance(value, Path) else value
             for name, value in options.items() if value is not None}
    if resume is not None:
        runtime = {name: flags.pop(name) for name in RESUME_OVERRIDES if name in flags}
        given = [_flag(name) for name in flags] + ["--config"] * (config is not None) + ["--set"] * bool(set_)
        if given:
            raise UsageError(f"--resume continues a run with its saved config; drop {', '.join(given)}")
        if not (resume / "config.yaml").is_file():
            raise UsageError(f"--resume {resume}: no run here (config.yaml missing)")
        cfg = load_config(resume / "config.yaml", out=str(resume))
    else:
        runtime = {}
        cfg = load_config(config, set_, **flags)
    warn_random_weights(cfg.pretrained)
    from ..interrupts import doing

    doing(f"training {cfg.out}; every finished epoch is saved: resume with "
          f"`vidprompt train-prompts --resume {cfg.out}`")
    summary = train(cfg, resume=resume is not None, progress=not quiet, overrides=runtime)
    from .. import distributed

    if not distributed.is_main():  # under torchrun, rank 0 reports
        return
    last = summary["history"][-1] if summary["history"] else {}
    typer.echo(json.dumps({"out": summary["out"], "epochs": summary["epochs"],
                           "val_accuracy": last.get("val_accuracy"), "train_loss": last.get("train_loss")}))
