"""``vidprompt inspect`` and ``vidprompt convert``: what a checkpoint holds; published checkpoints converted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .options import user_view


def inspect(
    checkpoint: Path = typer.Argument(..., help="A vidprompt checkpoint (.safetensors) or a published AIM/PromptCLIP "
                                                "file."),
    json_out: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
) -> None:
    """Show what a checkpoint holds: method, backbone, classes, hyper-parameters, size."""
    from ..checkpoint import read_checkpoint

    info, tensors = read_checkpoint(checkpoint)
    described = info.describe()
    described["tensors"] = len(tensors)
    described["trained_parameters"] = int(sum(t.numel() for t in tensors.values()))
    described["file_bytes"] = checkpoint.stat().st_size
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


_PUBLISHED = "the published protocol's, from the file's config"


def convert(
    source: Path = typer.Argument(..., help="A published AIM (mmaction .pth) or PromptCLIP (.pth.tar) checkpoint."),
    out: Path = typer.Option(..., "--out", "-o", help="The vidprompt checkpoint to write (.safetensors)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", show_default="inferred from the tensors",
                                        help="open_clip model name or config JSON of the file's backbone."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", "-p", show_default="openai",
                                             help="The frozen CLIP weights: tag or local weights file."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l",
                                         help="Class names, comma-separated, in the head's order."),
    labels_file: Optional[Path] = typer.Option(None, "--labels-file",
                                               help="Class names, one per line, in the head's order (AIM) or the "
                                                    "training classes (PromptCLIP)."),
    label_set: Optional[str] = typer.Option(None, "--label-set", show_default="the one the training data names",
                                            help="Built-in label set of the head's classes: k400, k700, ssv2..."),
    frames: Optional[int] = typer.Option(None, "--frames", "-f", show_default=_PUBLISHED,
                                         help="Frames per temporal clip."),
    sampling: Optional[str] = typer.Option(None, "--sampling", show_default=_PUBLISHED,
                                           help="segment, dense, mmaction-dense or mmaction-uniform."),
    stride: Optional[int] = typer.Option(None, "--stride", show_default=_PUBLISHED,
                                         help="Frame interval for dense sampling."),
    clips: Optional[int] = typer.Option(None, "--clips", show_default=_PUBLISHED,
                                        help="Temporal clips (views) per video."),
    crops: Optional[int] = typer.Option(None, "--crops", show_default=_PUBLISHED, help="Spatial crops per clip."),
    prefix: Optional[int] = typer.Option(None, "--prefix", show_default="from the official run folder",
                                         help="PromptCLIP: learned prompt vectors before the class name."),
    suffix: Optional[int] = typer.Option(None, "--suffix", show_default="from the official run folder",
                                         help="PromptCLIP: learned prompt vectors after the class name."),
    temporal_heads: Optional[int] = typer.Option(None, "--temporal-heads", show_default="8",
                                                 help="PromptCLIP: attention heads of the temporal Transformer."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print the written checkpoint's metadata as JSON."),
) -> None:
    """Convert a published AIM or PromptCLIP checkpoint into a vidprompt checkpoint, safely and exactly.

    No code in the file runs; the converted model computes the official model's outputs, and the file's frozen
    CLIP weights are checked against --model/--pretrained."""
    from ..labels import resolve_labels

    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise UsageError(f"--out {out} is the file being converted; write the checkpoint elsewhere")
    if out.exists() and not force:
        raise UsageError(f"--out {out} exists (give --force to replace it)")
    for name, value in (("--prefix", prefix), ("--suffix", suffix)):
        if value is not None and value < 0:
            raise UsageError(f"{name} must be 0 or more (got {value})")
    if temporal_heads is not None and temporal_heads < 1:
        raise UsageError(f"--temporal-heads must be at least 1 (got {temporal_heads})")
    classes = resolve_labels(labels, labels_file, label_set, required=False)
    given = {"frames": frames, "sampling": sampling.strip().lower() if sampling else None, "stride": stride,
             "clips": clips, "crops": crops}
    user_view(None, {k: v for k, v in given.items() if v is not None})  # out-of-range values: a usage error now
    from ..checkpoint import convert_checkpoint
    from ..official import ConvertOptions

    options = ConvertOptions(model=model, pretrained=pretrained, classes=classes,
                             view={k: v for k, v in given.items() if v is not None}, n_prefix=prefix,
                             n_suffix=suffix, temporal_heads=temporal_heads, require_head_names=True)
    from ..interrupts import doing

    doing(f"converting {source} (nothing was written)")
    written, info, _ = convert_checkpoint(source, out, options)
    if json_out:
        typer.echo(json.dumps({"checkpoint": str(written), **info.describe()}, indent=2))
        return
    origin = info.extra.get("origin", {})
    typer.echo(f"{written}: {info.method} on {info.model} ({info.pretrained}), {len(info.classes)} classes, "
               f"views {info.view.frames}x{info.view.clips}x{info.view.crops}, from {origin.get('format')} "
               f"{source.name} (sha256 {str(origin.get('sha256'))[:12]}...)")
