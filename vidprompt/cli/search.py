"""``vidprompt index``, ``search`` and ``localize``: find moments in a video library, and when each label
happens in a long video.

Parse, call :mod:`vidprompt.index` / :mod:`vidprompt.localization`, render. Registered on the app by
:mod:`vidprompt.cli`; like every command they import torch only when they run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from dataclasses import dataclass
from typing import Annotated, List, Optional, TextIO

import typer

from ..errors import UsageError, VidpromptError
from .options import (BatchSize, Checkpoint, Decoder, Device, Frames, LabelOptions, Model, ModelOptions, Precision,
                      Pretrained, Quiet, RuntimeOptions, Stride, Strict, Template, ViewOptions, command, noted,
                      warn_random_weights)

log = logging.getLogger("vidprompt")

_INDEX_MODEL_NOTE = "Default: the model the index was built with."


@dataclass(frozen=True)
class IndexModel(ModelOptions):
    checkpoint: noted(Checkpoint, _INDEX_MODEL_NOTE) = None
    model: noted(Model, _INDEX_MODEL_NOTE) = None
    pretrained: noted(Pretrained, _INDEX_MODEL_NOTE) = None


@dataclass(frozen=True)
class WindowViews(ViewOptions):
    """localize: the views of each window; ``--stride`` is the windows' own, so the frame interval is
    ``--frame-stride``."""

    frames: noted(Frames, "", help="Frames sampled per window.", show_default="8, or the checkpoint's") = None
    stride: noted(Stride, "", show_default="8, or the checkpoint's", flags=("--frame-stride",)) = None
    FLAGS = {"stride": "--frame-stride"}


@dataclass(frozen=True)
class WindowRuntime(RuntimeOptions):
    batch_size: noted(BatchSize, "", help="Windows per forward pass.", show_default=True) = 8


def _check_inputs(inputs: List[str]) -> None:
    """A missing folder or a glob that matches nothing (a typo, an unmounted disk) would drop its videos
    from the index: refuse it."""
    import glob

    from ..video import is_url

    for item in inputs:
        if is_url(item):  # checked when it is read; a dead URL is reported like a broken file
            continue
        path = os.path.expanduser(item)
        is_glob = bool(set("*?[") & set(item))
        if os.path.exists(path) or (is_glob and glob.glob(path, recursive=True)):
            continue
        raise UsageError(f"input {'matches no files' if is_glob else 'not found'}: {item} (an index holds "
                         "exactly its inputs, so a missing one would drop its videos; give the inputs that exist)")


@command
def index_command(
    inputs: Annotated[Optional[List[str]], typer.Argument(
        help="Video files, folders (recursive), globs or .txt lists. The index holds exactly their videos (others "
             "are dropped). Default: the inputs the index was built from.")] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Index folder: created, or updated in place (only new or changed files are embedded, "
                            "deleted ones dropped).")] = ...,
    models: IndexModel = IndexModel(),
    window: Annotated[Optional[float], typer.Option(
        "--window", help="Also embed windows of this many seconds, so search finds time ranges inside long clips. "
                         "Default: none (or the index's).")] = None,
    window_stride: Annotated[Optional[float], typer.Option(
        "--window-stride", help="Seconds between window starts. Default: --window (no overlap).")] = None,
    views: ViewOptions = ViewOptions(),
    runtime: RuntimeOptions = RuntimeOptions(),
    json_out: Annotated[bool, typer.Option("--json", help="Print the build summary as JSON.")] = False,
    strict: Strict = False,
    quiet: Quiet = False,
) -> None:
    """Embed every clip of a video library into a searchable index (incremental and resumable)."""
    from ..fileio import check_output_folder
    from ..index import claim_index, open_for_update

    lock = claim_index(check_output_folder(out, "--out"))  # a second build of this folder is refused at once
    try:
        meta = open_for_update(out)
        if not inputs:
            if meta is None or not meta.get("inputs"):
                raise UsageError("no inputs: give video files or folders to index")
            inputs = meta["inputs"]
        _check_inputs(inputs)
        if window is None and window_stride is None and meta is not None and meta.get("windows"):
            window, window_stride = meta["windows"]["window"], meta["windows"]["stride"]
        if meta is not None:
            from ..video import ViewConfig

            view = views.view(ViewConfig.from_dict(meta["view"]))  # checked when the index was opened
        else:
            view = views.view(models.checkpoint_view())
        report, windowed = _build(out, inputs, meta, models, view, runtime, window, window_stride, lock, quiet)
        _print_build(report, out, windowed, json_out)
        if report.failed and strict:
            raise typer.Exit(1)
    finally:
        lock.release()


def _build(out, inputs, meta, models, view, runtime, window, window_stride, lock, quiet):
    """Embed the new and changed videos of ``inputs`` into the index at ``out``; the build report."""
    from ..inputs import expand_inputs

    templates = models.templates()
    paths = expand_inputs(inputs, keep_empty=False)  # an index holds videos, not reports of empty folders
    if not paths:  # an empty build would empty the index: more likely a wrong glob or an unmounted disk
        raise VidpromptError(f"no video files found in: {' '.join(inputs)}; the index is left as it was")

    import torch

    from ..index import IndexBuild, classifier_for
    from ..interrupts import doing
    from ..progress import progress_bar

    torch.manual_seed(runtime.seed)
    clf, used_checkpoint = classifier_for(meta["model"] if meta else None, view, model=models.model,
                                          pretrained=models.pretrained, checkpoint=models.checkpoint,
                                          templates=templates, **runtime.classifier_kwargs())
    warn_random_weights(clf.model.backbone.pretrained)
    build = IndexBuild(out, paths, clf, window=window, window_stride=window_stride, inputs=inputs,
                       checkpoint=used_checkpoint, lock=lock)
    if build.report.resumed:
        log.info("resuming: %d videos already embedded by an interrupted build", build.report.resumed)
    doing(f"indexing into {out}; embedded videos are kept: run `vidprompt index` on the same folder again to "
          "resume")
    with progress_bar(len(build.todo), "indexing", enabled=not quiet and bool(build.todo), unit="clips") as advance:
        return build.run(progress=advance), bool(build.windows)


def _print_build(report, out: Path, windowed: bool, json_out: bool) -> None:
    for path, error in report.failed[:10]:
        log.error("%s: %s", path, error)
    if len(report.failed) > 10:
        log.error("... %d more (listed in %s)", len(report.failed) - 10, out / "manifest.jsonl")
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    summary = (f"{report.videos} videos" + (f", {report.windows} windows" if windowed else "")
               + f" in {out}: {len(report.added)} added, {len(report.changed)} changed, "
                 f"{len(report.removed)} removed, {report.unchanged} unchanged")
    if report.failed:
        summary += f"; {len(report.failed)} could not be read (skipped)"
    typer.echo(summary)


@command
def search_command(
    index: Annotated[Path, typer.Argument(help="An index folder made by `vidprompt index`.")],
    query: Annotated[Optional[str], typer.Argument(
        help='What happens in the clip, e.g. "someone flipping a pancake".')] = None,
    like: Annotated[Optional[str], typer.Option(
        "--like", help="Query by example: clips like this video (a file or an http(s) URL).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many results.")] = 10,
    whole_clips: Annotated[bool, typer.Option(
        "--whole-clips", help="Rank whole clips even when the index has windows.")] = False,
    checkpoint: noted(Checkpoint, _INDEX_MODEL_NOTE + " Another model is refused.") = None,
    model: noted(Model, _INDEX_MODEL_NOTE) = None,
    pretrained: noted(Pretrained, _INDEX_MODEL_NOTE) = None,
    template: Template = None,
    device: Device = "auto",
    precision: Precision = "auto",
    decoder: Decoder = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as a JSON array.")] = False,
) -> None:
    """Find the clips (or moments) of an index that match a text query or an example video."""
    if (query is None) == (like is None):
        raise UsageError('give a text query or --like VIDEO, e.g. vidprompt search INDEX "a dog catching a ball"')
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1 (got {top_k})")
    if like is not None:
        from ..video import is_url

        if not is_url(like) and not Path(like).is_file():
            raise UsageError(f"--like: file not found: {like}")

    from ..index import VideoIndex

    idx = VideoIndex(index)
    warn_random_weights(pretrained)
    models = ModelOptions(checkpoint, model, pretrained, template)
    clf = idx.classifier(model=model, pretrained=pretrained, checkpoint=checkpoint, templates=models.templates(),
                         device=device, precision=precision, num_workers=0, decoder=decoder)
    hits = idx.search(clf, query, like=like, top_k=top_k, whole_clips=whole_clips)
    if json_out:
        typer.echo(json.dumps([{"rank": rank, **hit.to_dict()} for rank, hit in enumerate(hits, start=1)],
                              indent=2, ensure_ascii=False))
        return
    render_hits(hits, query if query is not None else f"like {like}")


@command
def localize_command(
    video: Annotated[str, typer.Argument(help="A (long) video file or http(s) URL.")],
    labels: LabelOptions = LabelOptions(),
    models: ModelOptions = ModelOptions(),
    window: Annotated[float, typer.Option("--window", "-w", help="Window length in seconds.")] = 2.0,
    stride: Annotated[float, typer.Option("--stride", "-s", help="Seconds between window starts.")] = 1.0,
    threshold: Annotated[float, typer.Option(
        "--threshold", help="A window whose best label scores below this (probability) is background. 0: every "
                            "window gets a label.")] = 0.0,
    views: WindowViews = WindowViews(),
    runtime: WindowRuntime = WindowRuntime(),
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print segments and per-window scores as JSON.")] = False,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Write a PNG timeline: score curves and segments.")] = None,
    quiet: Quiet = False,
) -> None:
    """When does each label happen in a long video: sliding windows merged into labelled segments."""
    from ..localization import check_window

    label_list = labels.resolve(required=models.checkpoint is None)
    templates = models.templates()
    check_window(window, stride)
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold must be between 0 and 1 (got {threshold})")
    from ..video import is_url

    if not is_url(video) and not Path(video).is_file():
        raise UsageError(f"video not found: {video}")
    if plot is not None:
        from ..fileio import check_output_file

        check_output_file(plot, "--plot")
    view = views.view(models.checkpoint_view())
    warn_random_weights(models.pretrained)

    import torch

    from ..classifier import load_classifier
    from ..interrupts import doing
    from ..localization import SlidingWindows, localize, plot_timeline
    from ..progress import progress_bar

    torch.manual_seed(runtime.seed)
    clf = load_classifier(models.model, models.pretrained, checkpoint=models.checkpoint, templates=templates,
                          view=view, **runtime.classifier_kwargs())
    windows = SlidingWindows(clf, video, window, stride)
    doing(f"localizing in {video} (nothing was saved)")
    with progress_bar(len(windows), "localizing", enabled=not quiet, unit="windows") as advance:
        result = localize(clf, video, label_list, threshold=threshold, progress=advance, windows=windows)
    if plot is not None and plot_timeline(result, plot) is not None:
        log.info("timeline written to %s", plot)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    render_timeline(result)


# --- rendering ----------------------------------------------------------------------------------------------------

def _clock(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{rest:04.1f}" if minutes else f"{rest:.1f}s"


def render_hits(hits, title: str, stream: Optional[TextIO] = None) -> None:
    from rich.table import Table

    from ..render import results_console

    console = results_console(stream)
    if not hits:
        console.print("no results (the index is empty)")
        return
    table = Table(title=f"search: {title}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("video", overflow="fold")
    table.add_column("time", justify="right")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), f"{hit.score:.3f}", hit.path, f"{_clock(hit.start)} - {_clock(hit.end)}")
    console.print(table)


_COLOURS = ("red", "green", "blue", "magenta", "cyan", "yellow", "bright_red", "bright_green", "bright_blue",
            "bright_magenta", "bright_cyan", "orange3", "purple", "turquoise2", "gold3", "deep_pink3")


def render_timeline(result, stream: Optional[TextIO] = None, width: int = 72) -> None:
    """A coloured bar (one character per ``duration / width`` seconds), a legend and the segment table."""
    from rich.table import Table
    from rich.text import Text

    from ..render import results_console

    console = results_console(stream)
    colour = {label: _COLOURS[i % len(_COLOURS)] for i, label in enumerate(result.labels)}
    console.print(Text.assemble((result.video, "bold"), f": {_clock(result.duration)}, {len(result.windows)} "
                                f"windows of {result.window:g} s every {result.stride:g} s"))
    bar = Text()
    for i in range(width):
        t = (i + 0.5) * result.duration / width
        seg = next((s for s in result.segments if s.start <= t < s.end), result.segments[-1])
        bar.append("█" if seg.label is not None else "·", style=colour.get(seg.label, "grey50"))
    console.print(bar)
    console.print(Text(f"0{_clock(result.duration):>{width - 1}}", style="dim"))
    legend = Text()
    for label in result.labels:
        legend.append("█ ", style=colour[label]).append(f"{label}   ")
    if any(s.label is None for s in result.segments):
        legend.append("· ", style="grey50").append("background")
    console.print(legend)
    table = Table(show_header=True, header_style="bold")
    for name, justify in (("start", "right"), ("end", "right"), ("label", "left"), ("score", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    for seg in result.segments:
        label = Text(seg.label, style=colour[seg.label]) if seg.label is not None else Text("background",
                                                                                           style="grey50")
        table.add_row(_clock(seg.start), _clock(seg.end), label, f"{seg.score:.2f}")
    console.print(table)
