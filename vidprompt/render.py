"""Results -> stdout: a rich table for people, JSON or CSV for programs."""

from __future__ import annotations

import csv
import json
import sys
from typing import TYPE_CHECKING, Sequence, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .display import printable, undecodable_escaped

if TYPE_CHECKING:
    from .classifier import VideoResult


def results_console(stream: TextIO | None = None) -> Console:
    """A console for results on stdout: names print exactly as written (no markup), and output sent to a file
    or a pipe is not wrapped at 80 columns, so every path stays on one line."""
    stream = stream or sys.stdout
    width = None if stream.isatty() else 10_000
    return Console(file=stream, width=width, highlight=False, soft_wrap=False, markup=False)


def write_results(results: Sequence[VideoResult], fmt: str = "table", stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    if fmt == "json":
        json.dump([_encodable(r.to_dict()) for r in results], stream, indent=2, ensure_ascii=False)
        stream.write("\n")
    elif fmt == "csv":
        _write_csv(results, stream)
    else:
        _write_table(results, stream)


def _encodable(value):
    """JSON data with every string writable as UTF-8 (file names that are not UTF-8 get ``\\xNN`` escapes)."""
    if isinstance(value, str):
        return undecodable_escaped(value)
    if isinstance(value, dict):
        return {key: _encodable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    return value


def _write_csv(results: Sequence[VideoResult], stream: TextIO) -> None:
    """Long format: one row per (video, rank); a failed video is one row with ``error`` filled."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["video", "rank", "label", "score", "error"])
    for result in results:
        video = undecodable_escaped(result.video)
        if result.error is not None:
            writer.writerow([video, "", "", "", undecodable_escaped(result.error)])
        for rank, prediction in enumerate(result.predictions, start=1):
            writer.writerow([video, rank, prediction.label, f"{prediction.score:.6f}", ""])


def _write_table(results: Sequence[VideoResult], stream: TextIO) -> None:
    console = results_console(stream)
    top_k = max((len(r.predictions) for r in results), default=1) or 1
    table = Table(show_header=True, header_style="bold", show_lines=top_k > 1)
    table.add_column("video", overflow="fold")
    for rank in range(1, top_k + 1):
        table.add_column(f"#{rank}", overflow="fold")
    for result in results:
        if result.error is not None:
            table.add_row(printable(result.video), Text(f"error: {printable(result.error)}", style="red"),
                          *[""] * (top_k - 1))
            continue
        cells = [f"{printable(p.label)}\n{p.score:.1%}" if top_k > 1 else f"{printable(p.label)} ({p.score:.1%})"
                 for p in result.predictions]
        table.add_row(printable(result.video), *cells, *[""] * (top_k - len(cells)))
    console.print(table)


def clock(seconds: float | None) -> str:
    """Seconds as a short time: ``4.2s``, ``1:05.0``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{rest:04.1f}" if minutes else f"{rest:.1f}s"
