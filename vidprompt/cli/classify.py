"""``vidprompt classify``: rank class names for each video."""

from __future__ import annotations

from typing import Annotated, List

import typer

from ..errors import UsageError, VidpromptError, out_of_range
from .options import LabelOptions, ModelOptions, Quiet, RuntimeOptions, ViewOptions, command, log, warn_random_weights


@command
def classify_command(
    inputs: Annotated[List[str], typer.Argument(help="Video files, folders, globs, or .txt files listing paths.")],
    labels: LabelOptions,
    models: ModelOptions,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Predictions per video (capped at the label count).")] = 5,
    views: ViewOptions = ViewOptions(),
    runtime: RuntimeOptions = RuntimeOptions(),
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON array on stdout.")] = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print CSV (video,rank,label,score,error) on stdout.")] = False,
    quiet: Quiet = False,
) -> None:
    """Rank class names for each video: zero-shot CLIP, or a trained --checkpoint (open vocabulary)."""
    from ..inputs import expand_inputs

    if json_out and csv_out:
        raise UsageError("give only one of --json and --csv")
    if top_k < 1:  # before any model loads
        raise out_of_range("top_k", top_k, "at least 1")
    label_list = labels.resolve(required=models.checkpoint is None)
    templates = models.templates()
    view = views.view(models.checkpoint_view())  # a bad checkpoint fails here, before any decoding
    paths = expand_inputs(inputs)
    if not paths:
        raise VidpromptError(f"no video files found in: {' '.join(inputs)}")
    warn_random_weights(models.pretrained)

    import torch

    from ..classifier import load_classifier
    from ..interrupts import doing
    from ..progress import progress_bar
    from ..render import write_results

    torch.manual_seed(runtime.seed)
    clf = load_classifier(models.model, models.pretrained, checkpoint=models.checkpoint, templates=templates,
                          view=view, **runtime.classifier_kwargs())
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
