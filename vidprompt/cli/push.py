"""``vidprompt push``: publish a trained run on the Hugging Face Hub, or write the folder that would be published."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError


def push_command(
    run: Annotated[Path, typer.Argument(help="A training run folder (its best, else last, checkpoint) or a "
                                             "checkpoint file.")],
    repo: Annotated[str, typer.Option("--repo", help="The Hub repository, ORG/NAME (created if needed).")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Upload nothing; with --out, write the folder "
                                                            "that would be uploaded.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Write the folder to upload here (an empty or new folder) and keep it.")] = None,
) -> None:
    """Publish a run: checkpoint, resolved config, its SHA-256 and a model card (with eval metrics when a report
    is beside the run). Others then use --checkpoint hf-hub:ORG/NAME."""
    from ..publish import prepare, push

    if dry_run and out is None:
        raise UsageError("--dry-run writes the folder it would upload: give --out DIR")
    if dry_run:
        folder = prepare(run, out, repo)
        typer.echo(f"{folder}: {', '.join(sorted(p.name for p in folder.iterdir()))} (not uploaded)")
        return
    if out is not None:
        url = push(run, repo, private=private, staging=out)
    else:
        with tempfile.TemporaryDirectory(prefix="vidprompt-push-") as staging:
            url = push(run, repo, private=private, staging=Path(staging) / "repo")
    typer.echo(f"published {run} to {url}; use it with --checkpoint hf-hub:{repo}")
