"""``vidprompt convert``: a published AIM or PromptCLIP checkpoint into a vidprompt checkpoint, safely and exactly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from .options import (Clips, Crops, Frames, LabelOptions, Labels, LabelSet, LabelsFile, Model, Pretrained, Sampling,
                      Stride, ViewOptions, command, noted)


_PUBLISHED = "the published protocol's, from the file's config"


@dataclass(frozen=True)
class HeadLabels(LabelOptions):
    """convert: the names of a published head's classes, in the head's order."""

    labels: noted(Labels, "", help="Class names, comma-separated, in the head's order.") = None
    labels_file: noted(LabelsFile, "", help="Class names, one per line, in the head's order (AIM) or the training "
                                            "classes (PromptCLIP).") = None
    label_set: noted(LabelSet, "", help="Built-in label set of the head's classes: k400, k700, ssv2...",
                     show_default="the one the training data names") = None


@dataclass(frozen=True)
class PublishedViews(ViewOptions):
    """convert: the views a published file was tested with, unless given."""

    frames: noted(Frames, "", show_default=_PUBLISHED) = None
    sampling: noted(Sampling, "", help="segment, dense, mmaction-dense or mmaction-uniform.",
                    show_default=_PUBLISHED) = None
    stride: noted(Stride, "", show_default=_PUBLISHED) = None
    clips: noted(Clips, "", help="Temporal clips (views) per video.", show_default=_PUBLISHED) = None
    crops: noted(Crops, "", help="Spatial crops per clip.", show_default=_PUBLISHED) = None


@command
def convert_command(
    source: Annotated[Path, typer.Argument(help="A published AIM (mmaction .pth) or PromptCLIP (.pth.tar) "
                                                "checkpoint.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The vidprompt checkpoint to write (.safetensors).")],
    model: noted(Model, "", help="open_clip model name or config JSON of the file's backbone.",
                 show_default="inferred from the tensors") = None,
    pretrained: noted(Pretrained, "", help="The frozen CLIP weights: tag or local weights file.",
                      show_default="openai") = None,
    labels: HeadLabels = HeadLabels(),
    views: PublishedViews = PublishedViews(),
    prefix: Annotated[Optional[int], typer.Option(
        "--prefix", show_default="from the official run folder",
        help="PromptCLIP: learned prompt vectors before the class name.")] = None,
    suffix: Annotated[Optional[int], typer.Option(
        "--suffix", show_default="from the official run folder",
        help="PromptCLIP: learned prompt vectors after the class name.")] = None,
    temporal_heads: Annotated[Optional[int], typer.Option(
        "--temporal-heads", show_default="8", help="PromptCLIP: attention heads of the temporal Transformer.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the written checkpoint's metadata as JSON.")] = False,
) -> None:
    """Convert a published AIM or PromptCLIP checkpoint into a vidprompt checkpoint, safely and exactly.

    No code in the file runs; the converted model computes the official model's outputs, and the file's frozen
    CLIP weights are checked against --model/--pretrained."""
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise UsageError(f"--out {out} is the file being converted; write the checkpoint elsewhere")
    if out.exists() and not force:
        raise UsageError(f"--out {out} exists (give --force to replace it)")
    for name, value in (("--prefix", prefix), ("--suffix", suffix)):
        if value is not None and value < 0:
            raise UsageError(f"{name} must be 0 or more (got {value})")
    if temporal_heads is not None and temporal_heads < 1:
        raise UsageError(f"--temporal-heads must be at least 1 (got {temporal_heads})")
    classes = labels.resolve(required=False)
    views.view()  # out-of-range values: a usage error now
    from ..checkpoint import convert_checkpoint
    from ..official import ConvertOptions

    options = ConvertOptions(model=model, pretrained=pretrained, classes=classes, view=views.given(), n_prefix=prefix,
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
