"""``vidprompt search``: the clips (or moments) of an index that match a text query or an example video.

Parse, call :class:`vidprompt.index.VideoIndex`, render; torch is imported only when the command runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional, TextIO

import typer

from ..errors import UsageError, out_of_range
from .options import (INDEX_MODEL_NOTE, Checkpoint, Decoder, Device, IndexModel, Precision, command, noted,
                      warn_random_weights)


@dataclass(frozen=True)
class SearchModel(IndexModel):
    checkpoint: noted(Checkpoint, INDEX_MODEL_NOTE + " Another model is refused.") = None


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
    exact: Annotated[bool, typer.Option(
        "--exact", help="Scan every row, even where the index keeps an approximate index (see vidprompt index "
                        "--ann); its shortlist is re-ranked exactly, so this only matters for recall.")] = False,
    models: SearchModel = SearchModel(),
    device: Device = "auto",
    precision: Precision = "auto",
    decoder: Decoder = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as a JSON array.")] = False,
) -> None:
    """Find the clips (or moments) of an index that match a text query or an example video."""
    if (query is None) == (like is None):
        raise UsageError('give a text query or --like VIDEO, e.g. vidprompt search INDEX "a dog catching a ball"')
    if top_k < 1:  # before the index and its model load
        raise out_of_range("top_k", top_k, "at least 1")
    if like is not None:
        from ..video import is_url

        if not is_url(like) and not Path(like).is_file():
            raise UsageError(f"--like: file not found: {like}")

    from ..index import VideoIndex

    idx = VideoIndex(index)
    warn_random_weights(models.pretrained)
    clf = idx.classifier(model=models.model, pretrained=models.pretrained, checkpoint=models.checkpoint,
                         templates=models.templates(), device=device, precision=precision, num_workers=0,
                         decoder=decoder)
    hits = idx.search(clf, query, like=like, top_k=top_k, whole_clips=whole_clips, exact=exact)
    if json_out:
        typer.echo(json.dumps([{"rank": rank, **hit.to_dict()} for rank, hit in enumerate(hits, start=1)],
                              indent=2, ensure_ascii=False))
        return
    render_hits(hits, query if query is not None else f"like {like}", how=idx.last_search)


# --- rendering ----------------------------------------------------------------------------------------------------

def render_hits(hits, title: str, stream: Optional[TextIO] = None, how: Optional[str] = None) -> None:
    """The ranked hits as a table; ``how``: the search's own line under it (approximate or exact)."""
    from rich.table import Table

    from ..render import clock, results_console

    console = results_console(stream)
    if not hits:
        console.print("no results (the index is empty)")
        return
    table = Table(title=f"search: {title}", title_justify="left", caption=how, caption_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("video", overflow="fold")
    table.add_column("time", justify="right")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), f"{hit.score:.3f}", hit.path, f"{clock(hit.start)} - {clock(hit.end)}")
    console.print(table)
