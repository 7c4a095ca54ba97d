"""``vidprompt app``: serve the local web page (needs the ``app`` extra: ``pip install "vidprompt[app]"``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..errors import UsageError
from .options import Device, ModelOptions, command


@command
def app_command(
    roots: Annotated[List[Path], typer.Argument(help="Folders whose videos the page may read and play.")],
    models: ModelOptions = ModelOptions(),
    index: Annotated[Optional[List[Path]], typer.Option(
        "--index", help="An index folder for the Search tab (repeatable).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (default: this machine only).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 7860,
    device: Device = "auto",
) -> None:
    """Serve a local web page: classify dropped videos with your labels, see frames and timelines, search an index."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UsageError('the app needs Gradio: pip install "vidprompt[app]"') from None
    from ..app import serve

    serve(roots, host=host, port=port, model=models.model, pretrained=models.pretrained,
          checkpoint=None if models.checkpoint is None else str(models.checkpoint), indexes=index or [],
          device=device)
