"""``vidprompt eval``: accuracy of a zero-shot model or a trained checkpoint on a labelled dataset.

Parse, call :mod:`vidprompt.evaluate`, render. Registered on the app by :mod:`vidprompt.cli`; like every command
it imports torch only when it runs.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, TextIO

import typer

from ..errors import UsageError, VidpromptError
from .options import (BatchOpt, ClipsOpt, CropsOpt, DecoderOpt, DeviceOpt, FramesOpt, LabelSetOpt, LabelsFileOpt,
                      LabelsOpt, ModelOpt, PrecisionOpt, PretrainedOpt, QuietOpt, SamplingOpt, SeedOpt, StrideOpt,
                      WorkersOpt, unset, user_view, warn_random_weights)

log = logging.getLogger("vidprompt")

_PRESET_NOTE = "Default: the dataset preset's views (8x3x1 for Kinetics/UCF101/HMDB51, 8x1x3 for SSv2)."
_VIEW_NOTE = "Default: the checkpoint's, else the dataset preset's, else as for classify."


def eval_command(
    dataset: Optional[str] = typer.Option(
        None, "--dataset", "-d", help="Dataset preset: k400, k600, k700, ucf101, hmdb51, ssv2 (label set, "
                                      "annotation format and test views). With --data/--list-file it only "
                                      "supplies the label set and views."),
    root: Optional[Path] = typer.Option(None, "--root", help="Folder with the dataset's videos (for --dataset; "
                                                             "for --list-file, what its paths are relative to)."),
    annotations: Optional[Path] = typer.Option(
        None, "--annotations", help="Kinetics CSV (e.g. validate.csv) or SSv2 JSON (validation.json)."),
    split: int = typer.Option(1, "--split", help="UCF101/HMDB51 official split: 1, 2 or 3."),
    subset: str = typer.Option("test", "--subset", help="UCF101/HMDB51 subset: test or train."),
    splits_dir: Optional[Path] = typer.Option(
        None, "--splits-dir", help="Folder with the UCF101/HMDB51 split files (default: searched near --root)."),
    labels_json: Optional[Path] = typer.Option(None, "--labels-json", help="SSv2 labels.json (official indices)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder with one sub-folder of videos per class."),
    list_file: Optional[Path] = typer.Option(
        None, "--list-file", help="List of videos: 'path label_index' lines (mmaction) or CSV 'path,label'."),
    classes: Optional[Path] = typer.Option(
        None, "--classes", help="Text file of class names: evaluate only these classes (scored among them)."),
    labels: Optional[str] = LabelsOpt,
    labels_file: Optional[Path] = LabelsFileOpt,
    label_set: Optional[str] = LabelSetOpt,
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", "-c", help="Trained checkpoint (.safetensors) or a published AIM/PromptCLIP file; "
                                         "default: zero-shot CLIP."),
    model: Optional[str] = unset(ModelOpt, "Default: ViT-B-16, or the checkpoint's backbone."),
    pretrained: Optional[str] = unset(PretrainedOpt, "Default: openai, or the checkpoint's weights."),
    template: Optional[List[str]] = typer.Option(
        None, "--template", "-t", help='Zero-shot prompt template with {} for the class name (repeat for an '
                                       "ensemble; default: vidprompt's built-in ensemble)."),
    frames: Optional[int] = unset(FramesOpt, _VIEW_NOTE),
    sampling: Optional[str] = unset(SamplingOpt, _VIEW_NOTE),
    stride: Optional[int] = unset(StrideOpt, _VIEW_NOTE),
    clips: Optional[int] = unset(ClipsOpt, _PRESET_NOTE),
    crops: Optional[int] = unset(CropsOpt, _PRESET_NOTE),
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    batch_size: int = BatchOpt,
    num_workers: Optional[int] = WorkersOpt,
    decoder: str = DecoderOpt,
    seed: int = SeedOpt,
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Folder for report.json, per_class.csv, predictions.jsonl and plots. A rerun "
                                  "with the same folder resumes where the last one stopped."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON instead of the summary."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any video could not be decoded."),
    quiet: bool = QuietOpt,
) -> None:
    """Measure top-1/top-5/mean-class accuracy on a labelled dataset (resumable with --out).

    Under torchrun (torchrun --nproc-per-node N -m vidprompt eval ...) each process scores its share of
    the videos; process 0 alone prints, draws the progress bar and writes --out.
    """
    from .. import distributed
    from ..datasets import get_preset, load_dataset

    if not distributed.is_main():  # the other torchrun processes stay quiet unless they fail themselves
        log.setLevel(logging.ERROR)
    from ..labels import check_template, read_labels_file, resolve_labels

    if dataset is None and data is None and list_file is None:
        raise UsageError("nothing to evaluate: give --dataset NAME --root DIR (plus its annotations), "
                         "--data FOLDER (one sub-folder per class) or --list-file FILE")
    label_list = resolve_labels(labels, labels_file, label_set, required=False)
    subset_names = read_labels_file(classes) if classes is not None else None
    templates = [check_template(t) for t in template] if template else None
    if checkpoint is not None and templates:
        raise UsageError("--template applies to zero-shot; a checkpoint brings its own text side")
    if checkpoint is not None and not checkpoint.is_file():
        raise UsageError(f"--checkpoint: file not found: {checkpoint}")
    preset_views = get_preset(dataset).views if dataset is not None else None
    given = {key: value for key, value in (("frames", frames), ("sampling", sampling), ("stride", stride),
                                           ("clips", clips), ("crops", crops)) if value is not None}
    if "sampling" in given:
        given["sampling"] = given["sampling"].strip().lower()
    user_view(preset_views, given)  # bad view values are usage errors before any model loads

    data_set = load_dataset(dataset, root=root, annotations=annotations, split=split, subset=subset,
                            splits_dir=splits_dir, labels_json=labels_json, data=data, list_file=list_file,
                            label_list=label_list)
    if subset_names is not None:
        data_set = data_set.subset_classes(subset_names)
        if not data_set.samples:
            raise UsageError(f"--classes {classes}: none of these classes has videos in {data_set.name}")

    target = distributed.init_from_env(device)  # joins torchrun's process group; without torchrun: resolves
    lock = None
    try:
        import torch

        from ..evaluate import EvalRun, claim_out_dir, report_json
        from ..progress import progress_bar
        from ..runtime import precision_name

        lock = claim_out_dir(out)  # before the model loads: a busy folder is refused at once

        torch.manual_seed(seed)
        clf = _load(checkpoint, model, pretrained, templates, given, preset_views, target, precision,
                    batch_size, num_workers, decoder)
        warn_random_weights(clf.model.backbone.pretrained)
        config = {
            "dataset": {"preset": dataset, "root": _abs(root), "annotations": _abs(annotations),
                        "split": split, "subset": subset, "splits_dir": _abs(splits_dir),
                        "labels_json": _abs(labels_json), "data": _abs(data), "list_file": _abs(list_file),
                        "classes_file": _abs(classes)},
            "labels": {"labels": labels, "labels_file": _abs(labels_file), "label_set": label_set},
            "checkpoint": _abs(checkpoint),
            "model": clf.model.backbone.name, "pretrained": clf.model.backbone.pretrained,
            "view": clf.view.to_dict(),
            # under torchrun each process has its own cuda:LOCAL_RANK; the kind is what the run shares
            "device": clf.device.type if distributed.launched() else str(clf.device),
            "precision": precision_name(clf.autocast_dtype),
            "batch_size": batch_size, "num_workers": num_workers, "seed": seed,
            "decoder": decoder,  # not part of the run's identity: every decoder gives the same frames
        }
        run = EvalRun(clf, data_set, out, config)
        pending = len(run.pending)
        if run.resumed:
            log.info("resuming: %d of %d videos already in %s, %d to go", run.resumed, len(run.paths),
                     run.predictions_path, pending)
        if distributed.is_distributed() and pending:
            log.info("%d processes (torchrun), each scoring about %d of the %d videos to go",
                     distributed.world_size(), -(-pending // distributed.world_size()), pending)
        from ..interrupts import doing

        doing(f"evaluating into {out}; the scored videos are saved: run the same command again to resume"
              if out is not None else "evaluating (no --out: nothing was saved)")
        show = not quiet and pending > 0 and distributed.is_main()
        with progress_bar(pending, "evaluating", enabled=show) as advance:
            run.run(progress=advance)
        report = run.report()
        if not distributed.is_main():
            return  # process 0 writes, prints and sets the exit status
        if out is not None:
            run.write_outputs(report)

        counts = report["counts"]
        for entry in report["failed"][:5]:
            log.error("%s: %s", entry["video"], entry["error"])
        if json_out:
            sys.stdout.write(report_json(report))
        else:
            render_summary(report)
        if out is not None:
            log.info("report written to %s", out)
        if counts["evaluated"] == 0:
            raise VidpromptError(f"none of the {counts['videos']} videos could be decoded")
        if counts["failed"]:
            where = f" (listed in {out / 'report.json'})" if out is not None else ""
            log.warning("warning: %d of %d videos could not be decoded and were skipped%s",
                        counts["failed"], counts["videos"], where)
            if strict:
                raise typer.Exit(1)
    except VidpromptError as exc:
        if getattr(exc, "reported_on_main", False) and not distributed.is_main():
            raise typer.Exit(exc.exit_code) from None  # process 0 prints this error
        raise
    finally:
        distributed.cleanup()
        if lock is not None:
            lock.release()


def _abs(path: Optional[Path]) -> Optional[str]:
    return None if path is None else os.path.abspath(path)


def _load(checkpoint, model, pretrained, templates, given, preset_views, device, precision, batch_size,
          num_workers, decoder):
    """The classifier with its views resolved: what was given, else the checkpoint's frames, sampling and
    stride (a published checkpoint's clips and crops too: its published protocol), else the preset's
    views, else the defaults."""
    from ..backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED
    from ..classifier import VideoClassifier, load_classifier
    from dataclasses import replace

    from ..video import ViewConfig

    common = dict(device=device, precision=precision, batch_size=batch_size, num_workers=num_workers,
                  decoder=decoder)
    if checkpoint is None:
        view = user_view(preset_views, given)
        return load_classifier(model or DEFAULT_MODEL, pretrained or DEFAULT_PRETRAINED, templates=templates,
                               view=view, **common)
    clf = load_classifier(model, pretrained, checkpoint=str(checkpoint), **common)
    published = clf.checkpoint_info is not None and "origin" in clf.checkpoint_info.extra
    fields = ("frames", "sampling", "stride") + (("clips", "crops") if published else ())
    trained = {k: getattr(clf.view, k) for k in fields}
    view = user_view(replace(preset_views or ViewConfig(), **trained), given)
    if view == clf.view:
        return clf
    return VideoClassifier(clf.model, view, device=clf.device, precision=precision, batch_size=batch_size,
                           num_workers=num_workers, default_labels=clf.default_labels, text_cache=clf.text_cache,
                           decoder=decoder, head_model=clf.head_model)


# --- rendering ----------------------------------------------------------------------------------------------------

def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def render_summary(report: dict, stream: Optional[TextIO] = None, max_rows: int = 10) -> None:
    """The report as rich tables on ``stream`` (stdout): headline metrics, classes, top confusions."""
    from rich.table import Table

    from ..render import results_console

    console = results_console(stream)
    counts, metrics = report["counts"], report["metrics"]
    model = report["model"]
    view = report["view"]
    head = Table(title=f"eval: {report['dataset']['name']}", show_header=False, title_justify="left")
    head.add_column("", style="bold")
    head.add_column("")
    head.add_row("model", f"{model['method']} on {model['backbone']}")
    head.add_row("views", f"{view['frames']} frames ({view['sampling']}) x {view['clips']} clips x "
                          f"{view['crops']} crops, {report['precision']}")
    head.add_row("videos", f"{counts['evaluated']} evaluated, {counts['failed']} failed, "
                           f"{counts['missing']} missing" + (f", {counts['not_run']} not run"
                                                              if counts.get("not_run") else ""))
    head.add_row("classes", str(report["dataset"]["classes"]))
    head.add_row("top-1", _pct(metrics["top1"]))
    head.add_row(f"top-{metrics['top_k']}", _pct(metrics["top5"]))
    head.add_row("mean class accuracy", _pct(metrics["mean_class_accuracy"]))
    console.print(head)

    rows = [r for r in report["per_class"] if r["videos"]]
    if rows:
        shown = rows if len(rows) <= 2 * max_rows else sorted(rows, key=lambda r: (r["accuracy"], r["index"]))[
            :max_rows]
        title = "per class" if shown is rows else f"{len(shown)} weakest of {len(rows)} classes"
        table = Table(title=title, title_justify="left")
        for name, justify in (("class", "left"), ("videos", "right"), ("top-1", "right"),
                              (f"top-{metrics['top_k']}", "right")):
            table.add_column(name, justify=justify, overflow="fold")
        for r in shown:
            table.add_row(r["class"], str(r["videos"]), _pct(r["accuracy"]), _pct(r["top5_accuracy"]))
        console.print(table)

    confusions = report["top_confusions"][:max_rows]
    if confusions:
        table = Table(title="top confusions", title_justify="left")
        table.add_column("true class", overflow="fold")
        table.add_column("predicted as", overflow="fold")
        table.add_column("videos", justify="right")
        table.add_column("share", justify="right")
        for c in confusions:
            table.add_row(c["truth"], c["predicted"], str(c["count"]), _pct(c["share"]))
        console.print(table)
