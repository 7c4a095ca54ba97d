"""``vidprompt localize``: when each label happens in a long video, from sliding windows merged into segments.

Parse, call :func:`vidprompt.localize`, render; torch is imported only when the command runs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional, TextIO

import typer

from ..errors import UsageError
from .options import (BatchSize, Frames, LabelOptions, ModelOptions, Quiet, RuntimeOptions, Stride, ViewOptions,
                      command, noted, warn_random_weights)

log = logging.getLogger("vidprompt")


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

_COLOURS = ("red", "green", "blue", "magenta", "cyan", "yellow", "bright_red", "bright_green", "bright_blue",
            "bright_magenta", "bright_cyan", "orange3", "purple", "turquoise2", "gold3", "deep_pink3")


def render_timeline(result, stream: Optional[TextIO] = None, width: int = 72) -> None:
    """A coloured bar (one character per ``duration / width`` seconds), a legend and the segment table."""
    from rich.table import Table
    from rich.text import Text

    from ..render import clock, results_console

    console = results_console(stream)
    colour = {label: _COLOURS[i % len(_COLOURS)] for i, label in enumerate(result.labels)}
    console.print(Text.assemble((result.video, "bold"), f": {clock(result.duration)}, {len(result.windows)} "
                                f"windows of {result.window:g} s every {result.stride:g} s"))
    bar = Text()
    for i in range(width):
        t = (i + 0.5) * result.duration / width
        seg = next((s for s in result.segments if s.start <= t < s.end), result.segments[-1])
        bar.append("█" if seg.label is not None else "·", style=colour.get(seg.label, "grey50"))
    console.print(bar)
    console.print(Text(f"0{clock(result.duration):>{width - 1}}", style="dim"))
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
        table.add_row(clock(seg.start), clock(seg.end), label, f"{seg.score:.2f}")
    console.print(table)
