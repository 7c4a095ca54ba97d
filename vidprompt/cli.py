"""The ``vidprompt`` command: parse, call the Python API, render. Nothing else lives here.

Heavy imports (torch, open_clip, decord) happen inside commands, so ``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from ._version import __version__
from .errors import UsageError, VidpromptError

app = typer.Typer(
    name="vidprompt",
    help="Zero-shot and open-vocabulary video classification with frozen CLIP models.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
log = logging.getLogger("vidprompt")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"vidprompt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Classify videos with words: sample frames, run CLIP, rank your class names."""


# Options shared by commands ---------------------------------------------------------------------------------
ModelOpt = typer.Option("ViT-B-16", "--model", "-m",
                        help="open_clip model name (e.g. ViT-B-16) or path to an open_clip model config JSON.")
PretrainedOpt = typer.Option("openai", "--pretrained", "-p",
                             help="open_clip pretrained tag, a local weights file, or 'none' (random weights).")
LabelsOpt = typer.Option(None, "--labels", "-l", help='Comma-separated class names, e.g. "surfing,cooking".')
LabelsFileOpt = typer.Option(None, "--labels-file", help="Text file with one class name per line (# comments).")
LabelSetOpt = typer.Option(None, "--label-set",
                           help="Built-in label set: k400, k600, k700, ucf101, hmdb51, ssv2.")
FramesOpt = typer.Option(8, "--frames", "-f", help="Frames per temporal clip.")
SamplingOpt = typer.Option("segment", "--sampling", help="segment (one frame per equal segment) or dense.")
StrideOpt = typer.Option(8, "--stride", help="Frame interval for dense sampling.")
ClipsOpt = typer.Option(1, "--clips", help="Temporal clips (views) per video; scores are averaged.")
CropsOpt = typer.Option(1, "--crops", help="Spatial crops per clip: 1 (centre) or 3 (ends and centre).")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.")
PrecisionOpt = typer.Option("auto", "--precision", help="auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16.")
BatchOpt = typer.Option(4, "--batch-size", "-b", help="Videos per forward pass.")
WorkersOpt = typer.Option(None, "--num-workers", "-j",
                          help="Decoding worker processes (default: min(4, CPUs); 0 decodes in-process).")
SeedOpt = typer.Option(0, "--seed", help="Seed for every random choice.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def _view(frames: int, sampling: str, stride: int, clips: int, crops: int):
    from .video import ViewConfig

    return ViewConfig(frames=frames, sampling=sampling.strip().lower(), stride=stride, clips=clips, crops=crops)


def _warn_random_weights(pretrained: str) -> None:
    if pretrained.strip().lower() == "none":
        log.warning("warning: --pretrained none builds random weights; predictions are meaningless "
                    "(use it for tests and benchmarks)")


@app.command()
def classify(
    inputs: List[str] = typer.Argument(..., help="Video files, folders, globs, or .txt files listing paths."),
    labels: Optional[str] = LabelsOpt,
    labels_file: Optional[Path] = LabelsFileOpt,
    label_set: Optional[str] = LabelSetOpt,
    model: str = ModelOpt,
    pretrained: str = PretrainedOpt,
    template: Optional[List[str]] = typer.Option(
        None, "--template", "-t", help='Prompt template with {} for the class name, e.g. "a video of {}." '
                                       "(repeat for an ensemble; default: vidprompt's built-in ensemble)."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Predictions per video (capped at the label count)."),
    frames: int = FramesOpt,
    sampling: str = SamplingOpt,
    stride: int = StrideOpt,
    clips: int = ClipsOpt,
    crops: int = CropsOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    batch_size: int = BatchOpt,
    num_workers: Optional[int] = WorkersOpt,
    seed: int = SeedOpt,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON array on stdout."),
    csv_out: bool = typer.Option(False, "--csv", help="Print CSV (video,rank,label,score,error) on stdout."),
    quiet: bool = QuietOpt,
) -> None:
    """Rank class names for each video (zero-shot CLIP)."""
    from .inputs import expand_inputs
    from .labels import check_template, resolve_labels

    if json_out and csv_out:
        raise UsageError("give only one of --json and --csv")
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1 (got {top_k})")
    label_list = resolve_labels(labels, labels_file, label_set)
    templates = [check_template(t) for t in template] if template else None
    view = _view(frames, sampling, stride, clips, crops)
    paths = expand_inputs(inputs)
    if not paths:
        raise VidpromptError(f"no video files found in: {' '.join(inputs)}")
    _warn_random_weights(pretrained)

    import torch

    from .classifier import load_classifier
    from .progress import progress_bar
    from .render import write_results

    torch.manual_seed(seed)
    clf = load_classifier(model, pretrained, templates=templates, view=view, device=device,
                          precision=precision, batch_size=batch_size, num_workers=num_workers)
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


# Entry point ---------------------------------------------------------------------------------------------
class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"vidprompt: {record.getMessage()}"


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False

    def show_warning(message, category, filename, lineno, file=None, line=None):
        log.warning("warning: %s", str(message).splitlines()[0] if str(message) else category.__name__)

    warnings.showwarning = show_warning


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry: user errors become one line on stderr and exit code 2 (usage) or 1 (runtime)."""
    _setup_logging()
    try:
        result = app(args=argv, prog_name="vidprompt", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except typer.TyperException as exc:  # Typer's parsing errors: bad option, bad value, missing argument
        ctx = getattr(exc, "ctx", None)
        hint = f" (see 'vidprompt {ctx.info_name} --help')" if ctx is not None and ctx.parent else ""
        message = exc.format_message()
        if message:  # `vidprompt` alone prints the help and exits 2 with no message
            _fail(f"error: {message}{hint}", getattr(exc, "exit_code", 2))
        sys.exit(getattr(exc, "exit_code", 2))
    except VidpromptError as exc:
        _fail(f"error: {exc}", exc.exit_code)
    except Exception as exc:  # a bug, not user error: still one line unless asked for the traceback
        if os.environ.get("VIDPROMPT_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set VIDPROMPT_DEBUG=1 for the traceback)", 1)
    sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int) -> None:
    print(f"vidprompt: {message.splitlines()[0]}", file=sys.stderr)
    sys.exit(code)
