"""``vidprompt eval``: accuracy of a zero-shot model or a trained checkpoint on a labelled dataset.

Parse, call :mod:`vidprompt.evaluation`, render. Registered on the app by :mod:`vidprompt.cli`; like every command
it imports torch only when it runs.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional, TextIO

import typer

from dataclasses import dataclass

from ..errors import UsageError, VidpromptError
from ..hub import is_hub_ref
from .options import (Checkpoint, Clips, Crops, Frames, LabelOptions, Model, ModelOptions, Pretrained, Quiet,
                      RuntimeOptions, Sampling, Strict, Stride, ViewOptions, command, noted, warn_random_weights)

log = logging.getLogger("vidprompt")

_PRESET_NOTE = "Default: the dataset preset's views (8x3x1 for Kinetics/UCF101/HMDB51, 8x1x3 for SSv2)."
_VIEW_NOTE = "Default: the checkpoint's, else the dataset preset's, else as for classify."


@dataclass(frozen=True)
class EvalModel(ModelOptions):
    checkpoint: noted(Checkpoint, "", help="Trained checkpoint (.safetensors) or a published AIM/PromptCLIP file; "
                                           "default: zero-shot CLIP.") = None
    model: noted(Model, "Default: ViT-B-16, or the checkpoint's backbone.") = None
    pretrained: noted(Pretrained, "Default: openai, or the checkpoint's weights.") = None


@dataclass(frozen=True)
class EvalViews(ViewOptions):
    frames: noted(Frames, _VIEW_NOTE) = None
    sampling: noted(Sampling, _VIEW_NOTE) = None
    stride: noted(Stride, _VIEW_NOTE) = None
    clips: noted(Clips, _PRESET_NOTE) = None
    crops: noted(Crops, _PRESET_NOTE) = None


@dataclass(frozen=True)
class DataOptions:
    """Which labelled videos to score: a preset dataset, a class-per-folder tree or a list file."""

    dataset: Annotated[Optional[str], typer.Option(
        "--dataset", "-d", help="Dataset preset: k400, k600, k700, ucf101, hmdb51, ssv2 (label set, annotation "
                                "format and test views). With --data/--list-file it only supplies the label set "
                                "and views.")] = None
    root: Annotated[Optional[Path], typer.Option(
        "--root", help="Folder with the dataset's videos (for --dataset; for --list-file, what its paths are "
                       "relative to).")] = None
    annotations: Annotated[Optional[Path], typer.Option(
        "--annotations", help="Kinetics CSV (e.g. validate.csv) or SSv2 JSON (validation.json).")] = None
    split: Annotated[int, typer.Option("--split", help="UCF101/HMDB51 official split: 1, 2 or 3.")] = 1
    subset: Annotated[str, typer.Option("--subset", help="UCF101/HMDB51 subset: test or train.")] = "test"
    splits_dir: Annotated[Optional[Path], typer.Option(
        "--splits-dir", help="Folder with the UCF101/HMDB51 split files (default: searched near --root).")] = None
    labels_json: Annotated[Optional[Path], typer.Option(
        "--labels-json", help="SSv2 labels.json (official indices).")] = None
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Folder with one sub-folder of videos per class.")] = None
    list_file: Annotated[Optional[Path], typer.Option(
        "--list-file", help="List of videos: 'path label_index' lines (mmaction) or CSV 'path,label'.")] = None
    classes: Annotated[Optional[Path], typer.Option(
        "--classes", help="Text file of class names: evaluate only these classes (scored among them).")] = None

    def load(self, label_list):
        """The dataset, restricted to ``--classes`` when given."""
        from ..datasets import load_dataset
        from ..labels import read_labels_file

        if self.dataset is None and self.data is None and self.list_file is None:
            raise UsageError("nothing to evaluate: give --dataset NAME --root DIR (plus its annotations), "
                             "--data FOLDER (one sub-folder per class) or --list-file FILE")
        subset_names = read_labels_file(self.classes) if self.classes is not None else None
        data_set = load_dataset(self.dataset, root=self.root, annotations=self.annotations, split=self.split,
                                subset=self.subset, splits_dir=self.splits_dir, labels_json=self.labels_json,
                                data=self.data, list_file=self.list_file, label_list=label_list)
        if subset_names is not None:
            data_set = data_set.subset_classes(subset_names)
            if not data_set.samples:
                raise UsageError(f"--classes {self.classes}: none of these classes has videos in {data_set.name}")
        return data_set

    def describe(self) -> dict:
        """For the report: the paths made absolute, so a report says which files it measured."""
        return {"preset": self.dataset, "root": _abs(self.root), "annotations": _abs(self.annotations),
                "split": self.split, "subset": self.subset, "splits_dir": _abs(self.splits_dir),
                "labels_json": _abs(self.labels_json), "data": _abs(self.data), "list_file": _abs(self.list_file),
                "classes_file": _abs(self.classes)}


@command
def eval_command(
    data: DataOptions,
    labels: LabelOptions,
    models: EvalModel,
    views: EvalViews,
    runtime: RuntimeOptions,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Folder for report.json, per_class.csv, predictions.jsonl and plots. A rerun with the "
                            "same folder resumes where the last one stopped.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of the summary.")] = False,
    strict: noted(Strict, "", help="Exit 1 when any video could not be decoded.") = False,
    quiet: Quiet = False,
) -> None:
    """Measure top-1/top-5/mean-class accuracy on a labelled dataset (resumable with --out).

    Under torchrun (torchrun --nproc-per-node N -m vidprompt eval ...) each process scores its share of
    the videos; process 0 alone prints, draws the progress bar and writes --out.
    """
    from .. import distributed
    from ..datasets import get_preset

    if not distributed.is_main():  # the other torchrun processes stay quiet unless they fail themselves
        log.setLevel(logging.ERROR)
    label_list = labels.resolve(required=False)
    templates = models.templates()
    if models.checkpoint is not None and not is_hub_ref(models.checkpoint) and not models.checkpoint.is_file():
        raise UsageError(f"--checkpoint: file not found: {models.checkpoint}")
    preset_views = get_preset(data.dataset).views if data.dataset is not None else None
    views.view(preset_views)  # bad view values are usage errors before any model loads
    data_set = data.load(label_list)

    target = distributed.init_from_env(runtime.device)  # joins torchrun's group; without torchrun: resolves
    lock = None
    try:
        import torch

        from ..evaluation import claim_out_dir

        lock = claim_out_dir(out)  # before the model loads: a busy folder is refused at once
        torch.manual_seed(runtime.seed)
        clf = _load(models, templates, views, preset_views, {**runtime.classifier_kwargs(), "device": target})
        warn_random_weights(clf.model.backbone.pretrained)
        config = {"dataset": data.describe(), "labels": {"labels": labels.labels,
                                                         "labels_file": _abs(labels.labels_file),
                                                         "label_set": labels.label_set},
                  "checkpoint": _abs(models.checkpoint), **_run_settings(clf, runtime)}
        report = _evaluate(clf, data_set, out, config, quiet)
        if report is not None:
            _finish(report, out, json_out, strict)
    except VidpromptError as exc:
        if getattr(exc, "reported_on_main", False) and not distributed.is_main():
            raise typer.Exit(exc.exit_code) from None  # process 0 prints this error
        raise
    finally:
        distributed.cleanup()
        if lock is not None:
            lock.release()


def _run_settings(clf, runtime: RuntimeOptions) -> dict:
    """The model, views and runtime of the report (its identity for a resumed run)."""
    from .. import distributed
    from ..runtime import precision_name

    return {"model": clf.model.backbone.name, "pretrained": clf.model.backbone.pretrained,
            "view": clf.view.to_dict(),
            # under torchrun each process has its own cuda:LOCAL_RANK; the kind is what the run shares
            "device": clf.device.type if distributed.launched() else str(clf.device),
            "precision": precision_name(clf.autocast_dtype),
            "batch_size": runtime.batch_size, "num_workers": runtime.num_workers, "seed": runtime.seed,
            "decoder": runtime.decoder}  # not part of the run's identity: every decoder gives the same frames


def _evaluate(clf, data_set, out: Optional[Path], config: dict, quiet: bool) -> Optional[dict]:
    """Score the pending videos (resuming what ``out`` holds); the report on process 0, None elsewhere."""
    from .. import distributed
    from ..evaluation import EvalRun
    from ..interrupts import doing
    from ..progress import progress_bar

    run = EvalRun(clf, data_set, out, config)
    pending = len(run.pending)
    if run.resumed:
        log.info("resuming: %d of %d videos already in %s, %d to go", run.resumed, len(run.paths),
                 run.predictions_path, pending)
    if distributed.is_distributed() and pending:
        log.info("%d processes (torchrun), each scoring about %d of the %d videos to go",
                 distributed.world_size(), -(-pending // distributed.world_size()), pending)
    doing(f"evaluating into {out}; the scored videos are saved: run the same command again to resume"
          if out is not None else "evaluating (no --out: nothing was saved)")
    with progress_bar(pending, "evaluating", enabled=not quiet and pending > 0 and distributed.is_main()) as advance:
        run.run(progress=advance)
    report = run.report()
    if not distributed.is_main():
        return None  # process 0 writes, prints and sets the exit status
    if out is not None:
        run.write_outputs(report)
    return report


def _finish(report: dict, out: Optional[Path], json_out: bool, strict: bool) -> None:
    """Print the report and set the exit status: 1 when nothing decoded, or (``strict``) when anything failed."""
    from ..evaluation import report_json

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


def _abs(path: Optional[Path]) -> Optional[str]:
    """A path made absolute for the report (an ``hf-hub:`` name stays as it is)."""
    return None if path is None else str(path) if is_hub_ref(path) else os.path.abspath(path)


def _load(models: ModelOptions, templates, views: ViewOptions, preset_views, runtime: dict):
    """The classifier with its views resolved: what was given, else the checkpoint's frames, sampling and
    stride (a published checkpoint's clips and crops too: its published protocol), else the preset's
    views, else the defaults."""
    from dataclasses import replace

    from ..backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED
    from ..classifier import VideoClassifier, load_classifier
    from ..video import ViewConfig

    if models.checkpoint is None:
        return load_classifier(models.model or DEFAULT_MODEL, models.pretrained or DEFAULT_PRETRAINED,
                               templates=templates, view=views.view(preset_views), **runtime)
    clf = load_classifier(models.model, models.pretrained, checkpoint=str(models.checkpoint), **runtime)
    published = clf.checkpoint_info is not None and "origin" in clf.checkpoint_info.extra
    fields = ("frames", "sampling", "stride") + (("clips", "crops") if published else ())
    trained = {k: getattr(clf.view, k) for k in fields}
    view = views.view(replace(preset_views or ViewConfig(), **trained))
    if view == clf.view:
        return clf
    return VideoClassifier(clf.model, view, default_labels=clf.default_labels, text_cache=clf.text_cache,
                           head_model=clf.head_model, **{**runtime, "device": clf.device})


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
