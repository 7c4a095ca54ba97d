"""``vidprompt inspect``: what a checkpoint holds (a vidprompt checkpoint or a published file)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def inspect_command(
    checkpoint: Path = typer.Argument(..., help="A vidprompt checkpoint (.safetensors) or a published AIM/PromptCLIP "
                                                "file."),
    json_out: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
) -> None:
    """Show what a checkpoint holds: method, backbone, classes, hyper-parameters, size."""
    from ..checkpoint import read_checkpoint
    from ..hub import local_checkpoint

    info, tensors = read_checkpoint(checkpoint)
    described = info.describe()
    described["tensors"] = len(tensors)
    described["trained_parameters"] = int(sum(t.numel() for t in tensors.values()))
    described["file_bytes"] = local_checkpoint(checkpoint).stat().st_size  # (cached when from the Hub)
    if json_out:
        typer.echo(json.dumps(described, indent=2))
        return
    from rich.table import Table

    from ..render import results_console

    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key in ("method", "model", "pretrained", "format_version", "vidprompt_version"):
        table.add_row(key, str(described[key]))
    table.add_row("view", ", ".join(f"{k}={v}" for k, v in described["view"].items()))
    table.add_row("hparams", ", ".join(f"{k}={v}" for k, v in described["hparams"].items()
                                               if k != "templates"))
    table.add_row("trained", f"{described['trained_parameters']:,} parameters in {len(tensors)} tensors, "
                                   f"{described['file_bytes'] / 1e6:.2f} MB file")
    classes = described["classes"]
    shown = ", ".join(classes[:20]) + (f", ... ({len(classes)} in all)" if len(classes) > 20 else "")
    table.add_row("classes", shown)
    for key, value in info.extra.items():
        table.add_row(key, str(value))
    results_console().print(table)
