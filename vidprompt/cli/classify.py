"""``vidprompt classify``: rank class names for each video."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError, VidpromptError
from .options import (BatchOpt, CheckpointOpt, ClipsOpt, CropsOpt, DecoderOpt, DeviceOpt, FramesOpt, LabelSetOpt,
                      LabelsFileOpt, LabelsOpt, ModelOpt, PrecisionOpt, PretrainedOpt, QuietOpt, SamplingOpt, SeedOpt,
                      StrideOpt, WorkersOpt, log, view_from_options, warn_random_weights)


def classify(
    inputs: List[str] = typer.Argument(..., help="Video files, folders, globs, or .txt files listing paths."),
    labels: Optional[str] = LabelsOpt,
    labels_file: Optional[Path] = LabelsFileOpt,
    label_set: Optional[str] = LabelSetOpt,
    checkpoint: Optional[Path] = CheckpointOpt,
    model: Optional[str] = ModelOpt,
    pretrained: Optional[str] = PretrainedOpt,
    template: Optional[List[str]] = typer.Option(
        None, "--template", "-t", help='Prompt template with {} for the class name, e.g. "a video of {}." '
                                       "(repeat for an ensemble; default: vidprompt's built-in ensemble)."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Predictions per video (capped at the label count)."),
    frames: Optional[int] = FramesOpt,
    sampling: Optional[str] = SamplingOpt,
    stride: Optional[int] = StrideOpt,
    clips: Optional[int] = ClipsOpt,
    crops: Optional[int] = CropsOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    batch_size: int = BatchOpt,
    num_workers: Optional[int] = WorkersOpt,
    decoder: str = DecoderOpt,
    seed: int = SeedOpt,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON array on stdout."),
    csv_out: bool = typer.Option(False, "--csv", help="Print CSV (video,rank,label,score,error) on stdout."),
    quiet: bool = QuietOpt,
) -> None:
    """Rank class names for each video: zero-shot CLIP, or a trained --checkpoint (open vocabulary)."""
    from ..inputs import expand_inputs
    from ..labels import check_template, resolve_labels

    if json_out and csv_out:
        raise UsageError("give only one of --json and --csv")
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1 (got {top_k})")
    label_list = resolve_labels(labels, labels_file, label_set, required=checkpoint is None)
    templates = [check_template(t) for t in template] if template else None
    base_view = None
    if checkpoint is not None:
        from ..checkpoint import read_checkpoint_info

        # fails fast on a bad file, before decoding
        base_view = read_checkpoint_info(checkpoint, model=model, pretrained=pretrained).view
    view = view_from_options(frames, sampling, stride, clips, crops, base_view)
    paths = expand_inputs(inputs)
    if not paths:
        raise VidpromptError(f"no video files found in: {' '.join(inputs)}")
    warn_random_weights(pretrained)

    import torch

    from ..classifier import load_classifier
    from ..progress import progress_bar
    from ..render import write_results

    torch.manual_seed(seed)
    clf = load_classifier(model, pretrained, checkpoint=checkpoint, templates=templates, view=view,
                          device=device, precision=precision, batch_size=batch_size, num_workers=num_workers,
                          decoder=decoder)
    from ..interrupts import doing

    doing(f"classifying {len(paths)} videos (nothing was saved)")
    with progress_bar(len(paths), "classifying", enabled=not quiet) as advance:
        results = clf.classify(paths, label_list, top_k=top_k, progress=advance)
    for result in results:
        if result.error is not None:
            log.error("%s: %s", result.video, result.error)
    write_results(results, "json" if json_out else "csv" if csv_out else "table")
    failed = sum(not r.ok for r in results)
    if failed:
        log.error("%d of %d videos failed", failed, len(results))
        raise typer.Exit(1)
