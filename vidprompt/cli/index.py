"""``vidprompt index``: embed every clip of a video library into a searchable index, incrementally.

Parse, call :mod:`vidprompt.index`, render; torch is imported only when the command runs.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..errors import UsageError, VidpromptError
from .options import IndexModel, Quiet, RuntimeOptions, Strict, ViewOptions, command, warn_random_weights

log = logging.getLogger("vidprompt")


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
    compact: Annotated[bool, typer.Option(
        "--compact", help="After the update, merge the index's segments into one (done by itself past "
                          "16 segments or a quarter of the rows deleted).")] = False,
    ann: Annotated[Optional[str], typer.Option(
        "--ann", metavar="auto|none|ivf|hnsw|flat",
        help='Approximate search index kept beside the rows, which search uses to shortlist them (re-ranked '
             'exactly): auto builds ivf past 250,000 searched rows when FAISS is installed (pip install '
             '"vidprompt[ann]"). Default: the index\'s setting, else auto.')] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the build summary as JSON.")] = False,
    strict: Strict = False,
    quiet: Quiet = False,
) -> None:
    """Embed every clip of a video library into a searchable index (incremental and resumable).

    Under torchrun (torchrun --nproc-per-node N -m vidprompt index ...) each process embeds its share of the
    new and changed videos; process 0 alone plans, commits and prints. --out must be a folder every process
    sees (one machine, or a shared filesystem).
    """
    from .. import distributed
    from ..fileio import check_output_folder
    from ..index import claim_index, open_for_update
    from ..index.shortlist import check_setting

    check_setting(ann)  # an unknown kind, or a kind without FAISS: refused before anything is claimed

    if not distributed.is_main():  # the other torchrun processes stay quiet unless they fail themselves
        log.setLevel(logging.ERROR)
    target = distributed.init_from_env(runtime.device)  # joins torchrun's group; without torchrun: resolves
    lock = None

    def claim():  # process 0: a second build of this folder is refused at once, before any model loads
        nonlocal lock
        lock = claim_index(check_output_folder(out, "--out"))
        return open_for_update(out)

    try:
        meta = distributed.share_from_main(claim)
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
        report, windowed = _build(out, inputs, meta, models, view, runtime, target, window, window_stride, lock,
                                  compact, ann, quiet)
        if report is None:
            return  # process 0 commits, prints and sets the exit status
        _print_build(report, out, windowed, json_out)
        if report.failed and strict:
            raise typer.Exit(1)
    except VidpromptError as exc:
        if getattr(exc, "reported_on_main", False) and not distributed.is_main():
            raise typer.Exit(exc.exit_code) from None  # process 0 prints this error
        raise
    finally:
        distributed.cleanup()
        if lock is not None:
            lock.release()


def _build(out, inputs, meta, models, view, runtime, device, window, window_stride, lock, compact, ann, quiet):
    """Embed the new and changed videos of ``inputs`` into the index at ``out``; the build report (None on the
    processes other than 0 under torchrun)."""
    from ..inputs import expand_inputs

    templates = models.templates()
    paths = expand_inputs(inputs, keep_empty=False)  # an index holds videos, not reports of empty folders
    if not paths:  # an empty build would empty the index: more likely a wrong glob or an unmounted disk
        raise VidpromptError(f"no video files found in: {' '.join(inputs)}; the index is left as it was")

    import torch

    from .. import distributed
    from ..index import IndexBuild, classifier_for
    from ..interrupts import doing
    from ..progress import progress_bar

    torch.manual_seed(runtime.seed)
    clf, used_checkpoint = classifier_for(meta["model"] if meta else None, view, model=models.model,
                                          pretrained=models.pretrained, checkpoint=models.checkpoint,
                                          templates=templates, **{**runtime.classifier_kwargs(), "device": device})
    warn_random_weights(clf.model.backbone.pretrained)
    build = IndexBuild(out, paths, clf, window=window, window_stride=window_stride, inputs=inputs,
                       checkpoint=used_checkpoint, lock=lock, compact=compact, ann=ann,
                       ann_progress=lambda rows: progress_bar(rows, "approximate index", enabled=not quiet,
                                                              unit="rows"))
    world = distributed.world_size()
    if distributed.is_main():
        if build.report.resumed:
            log.info("resuming: %d videos already embedded by an interrupted build", build.report.resumed)
        if world > 1 and build.todo:
            log.info("%d processes (torchrun), each embedding about %d of the %d videos to go", world,
                     -(-len(build.todo) // world), len(build.todo))
    doing(f"indexing into {out}; embedded videos are kept: run `vidprompt index` on the same folder again to "
          "resume")
    share = len(build.todo[distributed.rank()::world])
    with progress_bar(share, "indexing" if world == 1 else "indexing (process 0's share)",
                      enabled=not quiet and share > 0 and distributed.is_main(), unit="clips") as advance:
        build.embed(progress=advance)
    return build.commit(), bool(build.windows)  # the caller releases the lock


def _print_build(report, out: Path, windowed: bool, json_out: bool) -> None:
    for path, error in report.failed[:10]:
        log.error("%s: %s", path, error)
    if len(report.failed) > 10:
        log.error("... %d more (all of them in --json's \"failed\")", len(report.failed) - 10)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    summary = (f"{report.videos} videos" + (f", {report.windows} windows" if windowed else "")
               + f" in {out}: {len(report.added)} added, {len(report.changed)} changed, "
                 f"{len(report.removed)} removed, {report.unchanged} unchanged")
    if report.failed:
        summary += f"; {len(report.failed)} could not be read (skipped)"
    typer.echo(summary)
