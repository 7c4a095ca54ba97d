"""``vidprompt index``, ``search`` and ``localize``: find moments in a video library, and when each label
happens in a long video.

Parse, call :mod:`vidprompt.index` / :mod:`vidprompt.localize`, render. Registered on the app by
:mod:`vidprompt.cli`; like every command they import torch only when they run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import List, Optional, TextIO

import typer

from ..errors import UsageError, VidpromptError
from .options import (BatchOpt, CheckpointOpt, ClipsOpt, CropsOpt, DecoderOpt, DeviceOpt, FramesOpt, LabelSetOpt,
                      LabelsFileOpt, LabelsOpt, ModelOpt, PrecisionOpt, PretrainedOpt, QuietOpt, SamplingOpt, SeedOpt,
                      StrideOpt, TemplateOpt, WorkersOpt, unset, view_from_options, warn_random_weights)

log = logging.getLogger("vidprompt")

_INDEX_MODEL_NOTE = "Default: the model the index was built with."



def _templates(template: Optional[List[str]]) -> Optional[List[str]]:
    from ..labels import check_template

    return [check_template(t) for t in template] if template else None


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


def index_command(
    inputs: Optional[List[str]] = typer.Argument(
        None, help="Video files, folders (recursive), globs or .txt lists. The index holds exactly their "
                   "videos (others are dropped). Default: the inputs the index was built from."),
    out: Path = typer.Option(..., "--out", "-o", help="Index folder: created, or updated in place (only new or "
                                                      "changed files are embedded, deleted ones dropped)."),
    checkpoint: Optional[Path] = unset(CheckpointOpt, _INDEX_MODEL_NOTE),
    model: Optional[str] = unset(ModelOpt, _INDEX_MODEL_NOTE),
    pretrained: Optional[str] = unset(PretrainedOpt, _INDEX_MODEL_NOTE),
    template: Optional[List[str]] = TemplateOpt,
    window: Optional[float] = typer.Option(
        None, "--window", help="Also embed windows of this many seconds, so search finds time ranges inside "
                               "long clips. Default: none (or the index's)."),
    window_stride: Optional[float] = typer.Option(
        None, "--window-stride", help="Seconds between window starts. Default: --window (no overlap)."),
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
    json_out: bool = typer.Option(False, "--json", help="Print the build summary as JSON."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any video could not be read."),
    quiet: bool = QuietOpt,
) -> None:
    """Embed every clip of a video library into a searchable index (incremental and resumable)."""
    from ..fileio import check_output_folder
    from ..index import claim_index, open_for_update
    from ..inputs import expand_inputs

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
        base_view = None
        if meta is not None:
            from ..video import ViewConfig

            base_view = ViewConfig.from_dict(meta["view"])  # checked when the index was opened
        elif checkpoint is not None:
            from ..checkpoint import read_checkpoint_info

            base_view = read_checkpoint_info(checkpoint, model=model, pretrained=pretrained).view
        view = view_from_options(frames, sampling, stride, clips, crops, base_view)
        templates = _templates(template)
        paths = expand_inputs(inputs, keep_empty=False)  # an index holds videos, not reports of empty folders
        if not paths:  # an empty build would empty the index: more likely a wrong glob or an unmounted disk
            raise VidpromptError(f"no video files found in: {' '.join(inputs)}; the index is left as it was")

        import torch

        from ..index import IndexBuild, classifier_for
        from ..progress import progress_bar

        torch.manual_seed(seed)
        clf, used_checkpoint = classifier_for(meta["model"] if meta else None, view, model=model,
                                              pretrained=pretrained, checkpoint=checkpoint, templates=templates,
                                              device=device, precision=precision, batch_size=batch_size,
                                              num_workers=num_workers, decoder=decoder)
        warn_random_weights(clf.model.backbone.pretrained)
        build = IndexBuild(out, paths, clf, window=window, window_stride=window_stride, inputs=inputs,
                           checkpoint=used_checkpoint, lock=lock)
        if build.report.resumed:
            log.info("resuming: %d videos already embedded by an interrupted build", build.report.resumed)
        from ..interrupts import doing

        doing(f"indexing into {out}; embedded videos are kept: run `vidprompt index` on the same folder again to "
              "resume")
        with progress_bar(len(build.todo), "indexing", enabled=not quiet and bool(build.todo), unit="clips") as advance:
            report = build.run(progress=advance)
        for path, error in report.failed[:10]:
            log.error("%s: %s", path, error)
        if len(report.failed) > 10:
            log.error("... %d more (listed in %s)", len(report.failed) - 10, out / "manifest.jsonl")
        if json_out:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        else:
            summary = (f"{report.videos} videos" + (f", {report.windows} windows" if build.windows else "")
                       + f" in {out}: {len(report.added)} added, {len(report.changed)} changed, "
                         f"{len(report.removed)} removed, {report.unchanged} unchanged")
            if report.failed:
                summary += f"; {len(report.failed)} could not be read (skipped)"
            typer.echo(summary)
        if report.failed and strict:
            raise typer.Exit(1)
    finally:
        lock.release()


def search_command(
    index: Path = typer.Argument(..., help="An index folder made by `vidprompt index`."),
    query: Optional[str] = typer.Argument(None, help='What happens in the clip, e.g. "someone flipping a pancake".'),
    like: Optional[str] = typer.Option(None, "--like", help="Query by example: clips like this video (a file "
                                                            "or an http(s) URL)."),
    top_k: int = typer.Option(10, "--top-k", "-k", help="How many results."),
    whole_clips: bool = typer.Option(False, "--whole-clips",
                                     help="Rank whole clips even when the index has windows."),
    checkpoint: Optional[Path] = unset(CheckpointOpt, _INDEX_MODEL_NOTE + " Another model is refused."),
    model: Optional[str] = unset(ModelOpt, _INDEX_MODEL_NOTE),
    pretrained: Optional[str] = unset(PretrainedOpt, _INDEX_MODEL_NOTE),
    template: Optional[List[str]] = TemplateOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    decoder: str = DecoderOpt,
    json_out: bool = typer.Option(False, "--json", help="Print the results as a JSON array."),
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
    clf = idx.classifier(model=model, pretrained=pretrained, checkpoint=checkpoint, templates=_templates(template),
                         device=device, precision=precision, num_workers=0, decoder=decoder)
    hits = idx.search(clf, query, like=like, top_k=top_k, whole_clips=whole_clips)
    if json_out:
        typer.echo(json.dumps([{"rank": rank, **hit.to_dict()} for rank, hit in enumerate(hits, start=1)],
                              indent=2, ensure_ascii=False))
        return
    render_hits(hits, query if query is not None else f"like {like}")


def localize_command(
    video: str = typer.Argument(..., help="A (long) video file or http(s) URL."),
    labels: Optional[str] = LabelsOpt,
    labels_file: Optional[Path] = LabelsFileOpt,
    label_set: Optional[str] = LabelSetOpt,
    checkpoint: Optional[Path] = CheckpointOpt,
    model: Optional[str] = ModelOpt,
    pretrained: Optional[str] = PretrainedOpt,
    template: Optional[List[str]] = TemplateOpt,
    window: float = typer.Option(2.0, "--window", "-w", help="Window length in seconds."),
    stride: float = typer.Option(1.0, "--stride", "-s", help="Seconds between window starts."),
    threshold: float = typer.Option(0.0, "--threshold",
                                    help="A window whose best label scores below this (probability) is "
                                         "background. 0: every window gets a label."),
    frames: Optional[int] = typer.Option(None, "--frames", "-f", show_default="8, or the checkpoint's",
                                         help="Frames sampled per window."),
    sampling: Optional[str] = SamplingOpt,
    frame_stride: Optional[int] = typer.Option(None, "--frame-stride", show_default="8, or the checkpoint's",
                                               help="Frame interval for dense sampling."),
    clips: Optional[int] = ClipsOpt,
    crops: Optional[int] = CropsOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Windows per forward pass."),
    num_workers: Optional[int] = WorkersOpt,
    decoder: str = DecoderOpt,
    seed: int = SeedOpt,
    json_out: bool = typer.Option(False, "--json", help="Print segments and per-window scores as JSON."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG timeline: score curves and segments."),
    quiet: bool = QuietOpt,
) -> None:
    """When does each label happen in a long video: sliding windows merged into labelled segments."""
    from ..labels import resolve_labels
    from ..localize import check_window

    label_list = resolve_labels(labels, labels_file, label_set, required=checkpoint is None)
    templates = _templates(template)
    check_window(window, stride)
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold must be between 0 and 1 (got {threshold})")
    from ..video import is_url

    if not is_url(video) and not Path(video).is_file():
        raise UsageError(f"video not found: {video}")
    if plot is not None:
        from ..fileio import check_output_file

        check_output_file(plot, "--plot")
    base_view = None
    if checkpoint is not None:
        from ..checkpoint import read_checkpoint_info

        base_view = read_checkpoint_info(checkpoint, model=model, pretrained=pretrained).view
    view = view_from_options(frames, sampling, frame_stride, clips, crops, base_view)
    warn_random_weights(pretrained)

    import torch

    from ..classifier import load_classifier
    from ..localize import SlidingWindows, localize, plot_timeline
    from ..progress import progress_bar

    torch.manual_seed(seed)
    clf = load_classifier(model, pretrained, checkpoint=checkpoint, templates=templates, view=view,
                          device=device, precision=precision, batch_size=batch_size, num_workers=num_workers,
                          decoder=decoder)
    windows = SlidingWindows(clf, video, window, stride)
    from ..interrupts import doing

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
