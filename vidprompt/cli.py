"""The ``vidprompt`` command: parse, call the Python API, render. Nothing else lives here.

Heavy imports (torch, open_clip, video decoders) happen inside commands, so ``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import json
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
ModelOpt = typer.Option(None, "--model", "-m", show_default="ViT-B-16",
                        help="open_clip model name (e.g. ViT-B-16) or path to an open_clip model config JSON.")
PretrainedOpt = typer.Option(None, "--pretrained", "-p", show_default="openai",
                             help="open_clip pretrained tag, a local weights file, or 'none' (random weights).")
CheckpointOpt = typer.Option(None, "--checkpoint", "-c",
                             help="A trained vidprompt checkpoint (.safetensors): PromptCLIP or AIM; or a published "
                                  "AIM/PromptCLIP file (.pth), converted in memory.")
LabelsOpt = typer.Option(None, "--labels", "-l", help='Comma-separated class names, e.g. "surfing,cooking".')
LabelsFileOpt = typer.Option(None, "--labels-file", help="Text file with one class name per line (# comments).")
LabelSetOpt = typer.Option(None, "--label-set",
                           help="Built-in label set: k400, k600, k700, ucf101, hmdb51, ssv2.")
FramesOpt = typer.Option(None, "--frames", "-f", show_default="8, or the checkpoint's",
                         help="Frames per temporal clip.")
SamplingOpt = typer.Option(None, "--sampling", show_default="segment, or the checkpoint's",
                           help="segment (one frame per equal segment), dense, or mmaction-dense / "
                                "mmaction-uniform (mmaction2's test sampling, for published AIM models).")
StrideOpt = typer.Option(None, "--stride", show_default="8, or the checkpoint's",
                         help="Frame interval for dense sampling.")
ClipsOpt = typer.Option(None, "--clips", show_default="1",
                        help="Temporal clips (views) per video; scores are averaged.")
CropsOpt = typer.Option(None, "--crops", show_default="1",
                        help="Spatial crops per clip: 1 (centre) or 3 (ends and centre).")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.")
PrecisionOpt = typer.Option("auto", "--precision", help="auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16.")
BatchOpt = typer.Option(4, "--batch-size", "-b", help="Videos per forward pass.")
WorkersOpt = typer.Option(None, "--num-workers", "-j",
                          help="Decoding worker processes (default: min(8, CPUs); 0 decodes in-process).")
DecoderOpt = typer.Option("auto", "--decoder",
                          help="Video decoder: auto (the fastest installed for the device; a file it cannot read "
                               "goes to the next), pyav, decord or torchcodec.")
SeedOpt = typer.Option(0, "--seed", help="Seed for every random choice.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def _view(frames: int | None, sampling: str | None, stride: int | None, clips: int | None, crops: int | None,
          base=None):
    """Views from the options; what the user did not give comes from ``base`` (a checkpoint's or a
    dataset preset's views), else the defaults."""
    given = {"frames": frames, "sampling": sampling.strip().lower() if sampling else None, "stride": stride,
             "clips": clips, "crops": crops}
    return user_view(base, {k: v for k, v in given.items() if v is not None})


def user_view(base, given: dict):
    """``base`` views (default: the defaults) with the values the user typed; an out-of-range value is a usage
    error that names the option."""
    from dataclasses import replace

    from .video import ViewConfig, ViewError

    try:
        return replace(base or ViewConfig(), **given)
    except ViewError as exc:
        raise UsageError(f"--{exc}" if exc.field in given else str(exc)) from None


def _warn_random_weights(pretrained: str | None) -> None:
    if pretrained is not None and pretrained.strip().lower() == "none":
        log.warning("warning: --pretrained none builds random weights; predictions are meaningless "
                    "(use it for tests and benchmarks)")


@app.command()
def classify(
    inputs: List[str] = typer.Argument(..., help="Video files, folders, globs, or .txt files listing paths."),
    labels: Optional[str] = LabelsOpt,
    labels_file: Optional[Path] = LabelsFileOpt,
    label_set: Optional[str] = LabelSetOpt,
    checkpoint: Optional[Path] = CheckpointOpt,
    model: Optional[str] = ModelOpt,
    pretrained: Optional[str] = PretrainedOpt,
    template: Optional[List[str]] = typer.Option(
        None, "--template", "-t", help='Prompt template with {} for the class name, e.g. "a video of {}." '
                                       "(repeat for an ensemble; default: vidprompt's built-in ensemble)."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Predictions per video (capped at the label count)."),
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
    json_out: bool = typer.Option(False, "--json", help="Print one JSON array on stdout."),
    csv_out: bool = typer.Option(False, "--csv", help="Print CSV (video,rank,label,score,error) on stdout."),
    quiet: bool = QuietOpt,
) -> None:
    """Rank class names for each video: zero-shot CLIP, or a trained --checkpoint (open vocabulary)."""
    from .inputs import expand_inputs
    from .labels import check_template, resolve_labels

    if json_out and csv_out:
        raise UsageError("give only one of --json and --csv")
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1 (got {top_k})")
    label_list = resolve_labels(labels, labels_file, label_set, required=checkpoint is None)
    templates = [check_template(t) for t in template] if template else None
    base_view = None
    if checkpoint is not None:
        from .checkpoint import read_checkpoint_info

        # fails fast on a bad file, before decoding
        base_view = read_checkpoint_info(checkpoint, model=model, pretrained=pretrained).view
    view = _view(frames, sampling, stride, clips, crops, base_view)
    paths = expand_inputs(inputs)
    if not paths:
        raise VidpromptError(f"no video files found in: {' '.join(inputs)}")
    _warn_random_weights(pretrained)

    import torch

    from .classifier import load_classifier
    from .progress import progress_bar
    from .render import write_results

    torch.manual_seed(seed)
    clf = load_classifier(model, pretrained, checkpoint=checkpoint, templates=templates, view=view,
                          device=device, precision=precision, batch_size=batch_size, num_workers=num_workers,
                          decoder=decoder)
    from .interrupts import doing

    doing(f"classifying {len(paths)} videos (nothing was saved)")
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


@app.command("train-prompts")
def train_prompts(
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with any training options."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override one option: --set epochs=20 "
                                             "(repeatable; every key of the YAML config works)."),
    method: Optional[str] = typer.Option(None, "--method", show_default="promptclip", help="promptclip or aim."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder with one sub-folder of videos per class."),
    list_file: Optional[Path] = typer.Option(None, "--list-file", help="List file: CSV 'path,label' lines, or "
                                             "'path label_index' lines with --labels-file or --label-set."),
    labels_file: Optional[Path] = typer.Option(None, "--labels-file", help="The class list that a list file's "
                                               "label indices point into, one class per line."),
    label_set: Optional[str] = typer.Option(None, "--label-set", help="The built-in class list that a list "
                                            "file's label indices point into (k400, ucf101, ...)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Preset: k400, k600, k700, ucf101, hmdb51, ssv2."),
    root: Optional[Path] = typer.Option(None, "--root", help="Video root for list files and presets."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Kinetics CSV / SSv2 JSON."),
    split: Optional[int] = typer.Option(None, "--split", help="UCF101/HMDB51 split (1-3)."),
    splits_dir: Optional[Path] = typer.Option(None, "--splits-dir", help="UCF101/HMDB51 split files."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation videos (folder or list file)."),
    classes: Optional[Path] = typer.Option(None, "--classes", help="Train on the classes listed in this file."),
    shots: Optional[int] = typer.Option(None, "--shots", help="K videos per class (few-shot)."),
    model: Optional[str] = ModelOpt,
    pretrained: Optional[str] = PretrainedOpt,
    frames: Optional[int] = typer.Option(None, "--frames", "-f", show_default="8", help="Frames per video."),
    sampling: Optional[str] = typer.Option(None, "--sampling", show_default="segment", help="segment or dense."),
    stride: Optional[int] = typer.Option(None, "--stride", show_default="8", help="Dense sampling interval."),
    cache_views: Optional[int] = typer.Option(None, "--cache-views", show_default="1",
                                              help="PromptCLIP: random samplings cached per video."),
    adapter_positions: Optional[str] = typer.Option(None, "--adapter-positions", show_default="all",
                                                    help="AIM: all, bottom, top or skip."),
    grad_checkpointing: Optional[bool] = typer.Option(None, "--grad-checkpointing/--no-grad-checkpointing",
                                                      help="AIM: trade compute for memory."),
    accumulate: Optional[int] = typer.Option(None, "--accumulate", show_default="1",
                                             help="Gradient accumulation steps."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default: the method's recipe)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Videos per step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default: the method's recipe)."),
    device: Optional[str] = typer.Option(None, "--device", show_default="auto", help="auto, cpu, cuda, mps."),
    precision: Optional[str] = typer.Option(None, "--precision", show_default="auto",
                                            help="auto, fp32, fp16, bf16."),
    num_workers: Optional[int] = WorkersOpt,
    decoder: Optional[str] = typer.Option(None, "--decoder", show_default="auto",
                                          help="Video decoder: auto, pyav, decord or torchcodec."),
    seed: Optional[int] = typer.Option(None, "--seed", show_default="0", help="Seed for every random choice."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", show_default="runs/vidprompt", help="Run folder."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder."),
    quiet: bool = QuietOpt,
) -> None:
    """Train PromptCLIP prompts (or AIM adapters) on your labelled videos; checkpoints work with any labels."""
    flags = dict(method=method, data=data, list_file=list_file, labels_file=labels_file, label_set=label_set,
                 dataset=dataset, root=root,
                 annotations=annotations, split=split, splits_dir=splits_dir, val=val, classes=classes,
                 shots=shots, model=model, pretrained=pretrained, frames=frames, sampling=sampling,
                 stride=stride, cache_views=cache_views, adapter_positions=adapter_positions,
                 grad_checkpointing=grad_checkpointing, accumulate=accumulate, epochs=epochs,
                 batch_size=batch_size, lr=lr, device=device, precision=precision, num_workers=num_workers,
                 decoder=decoder, seed=seed, out=out)
    from .config import load_config
    from .train import train

    if resume is not None:
        from .train import RESUME_OVERRIDES

        runtime = {name: flags.pop(name) for name in RESUME_OVERRIDES if flags[name] is not None}
        given = [f"--{name.replace('_', '-')}" for name, value in flags.items() if value is not None]
        given += ["--config"] * (config is not None) + ["--set"] * bool(set_)
        if given:
            raise UsageError(f"--resume continues a run with its saved config; drop {', '.join(given)}")
        if not (resume / "config.yaml").is_file():
            raise UsageError(f"--resume {resume}: no run here (config.yaml missing)")
        cfg = load_config(resume / "config.yaml", out=str(resume))
    else:
        runtime = {}
        cfg = load_config(config, set_, **{k: (str(v) if isinstance(v, Path) else v) for k, v in flags.items()})
    _warn_random_weights(cfg.pretrained)
    from .interrupts import doing

    doing(f"training {cfg.out}; every finished epoch is saved: resume with "
          f"`vidprompt train-prompts --resume {cfg.out}`")
    summary = train(cfg, resume=resume is not None, progress=not quiet, overrides=runtime)
    from . import distributed

    if not distributed.is_main():  # under torchrun, rank 0 reports
        return
    last = summary["history"][-1] if summary["history"] else {}
    typer.echo(json.dumps({"out": summary["out"], "epochs": summary["epochs"],
                           "val_accuracy": last.get("val_accuracy"), "train_loss": last.get("train_loss")}))


@app.command()
def inspect(
    checkpoint: Path = typer.Argument(..., help="A vidprompt checkpoint (.safetensors) or a published AIM/PromptCLIP "
                                                "file."),
    json_out: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
) -> None:
    """Show what a checkpoint holds: method, backbone, classes, hyper-parameters, size."""
    from .checkpoint import read_checkpoint

    info, tensors = read_checkpoint(checkpoint)
    described = info.describe()
    described["tensors"] = len(tensors)
    described["trained_parameters"] = int(sum(t.numel() for t in tensors.values()))
    described["file_bytes"] = checkpoint.stat().st_size
    if json_out:
        typer.echo(json.dumps(described, indent=2))
        return
    from rich.table import Table

    from .render import results_console

    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key in ("method", "model", "pretrained", "format_version", "vidprompt_version"):
        table.add_row(key, str(described[key]))
    table.add_row("view", ", ".join(f"{k}={v}" for k, v in described["view"].items()))
    table.add_row("hparams", ", ".join(f"{k}={v}" for k, v in described["hparams"].items()
                                               if k != "templates"))
    table.add_row("trained", f"{described['trained_parameters']:,} parameters in {len(tensors)} tensors, "
                                   f"{described['file_bytes'] / 1e6:.2f} MB file")
    classes = described["classes"]
    shown = ", ".join(classes[:20]) + (f", ... ({len(classes)} in all)" if len(classes) > 20 else "")
    table.add_row("classes", shown)
    for key, value in info.extra.items():
        table.add_row(key, str(value))
    results_console().print(table)


_PUBLISHED = "the published protocol's, from the file's config"


@app.command()
def convert(
    source: Path = typer.Argument(..., help="A published AIM (mmaction .pth) or PromptCLIP (.pth.tar) checkpoint."),
    out: Path = typer.Option(..., "--out", "-o", help="The vidprompt checkpoint to write (.safetensors)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", show_default="inferred from the tensors",
                                        help="open_clip model name or config JSON of the file's backbone."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", "-p", show_default="openai",
                                             help="The frozen CLIP weights: tag or local weights file."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l",
                                         help="Class names, comma-separated, in the head's order."),
    labels_file: Optional[Path] = typer.Option(None, "--labels-file",
                                               help="Class names, one per line, in the head's order (AIM) or the "
                                                    "training classes (PromptCLIP)."),
    label_set: Optional[str] = typer.Option(None, "--label-set", show_default="the one the training data names",
                                            help="Built-in label set of the head's classes: k400, k700, ssv2..."),
    frames: Optional[int] = typer.Option(None, "--frames", "-f", show_default=_PUBLISHED,
                                         help="Frames per temporal clip."),
    sampling: Optional[str] = typer.Option(None, "--sampling", show_default=_PUBLISHED,
                                           help="segment, dense, mmaction-dense or mmaction-uniform."),
    stride: Optional[int] = typer.Option(None, "--stride", show_default=_PUBLISHED,
                                         help="Frame interval for dense sampling."),
    clips: Optional[int] = typer.Option(None, "--clips", show_default=_PUBLISHED,
                                        help="Temporal clips (views) per video."),
    crops: Optional[int] = typer.Option(None, "--crops", show_default=_PUBLISHED, help="Spatial crops per clip."),
    prefix: Optional[int] = typer.Option(None, "--prefix", show_default="from the official run folder",
                                         help="PromptCLIP: learned prompt vectors before the class name."),
    suffix: Optional[int] = typer.Option(None, "--suffix", show_default="from the official run folder",
                                         help="PromptCLIP: learned prompt vectors after the class name."),
    temporal_heads: Optional[int] = typer.Option(None, "--temporal-heads", show_default="8",
                                                 help="PromptCLIP: attention heads of the temporal Transformer."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print the written checkpoint's metadata as JSON."),
) -> None:
    """Convert a published AIM or PromptCLIP checkpoint into a vidprompt checkpoint, safely (no code in the
    file runs) and exactly (the official model's math, checked against its frozen CLIP weights)."""
    from .labels import resolve_labels

    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise UsageError(f"--out {out} is the file being converted; write the checkpoint elsewhere")
    if out.exists() and not force:
        raise UsageError(f"--out {out} exists (give --force to replace it)")
    for name, value in (("--prefix", prefix), ("--suffix", suffix)):
        if value is not None and value < 0:
            raise UsageError(f"{name} must be 0 or more (got {value})")
    if temporal_heads is not None and temporal_heads < 1:
        raise UsageError(f"--temporal-heads must be at least 1 (got {temporal_heads})")
    classes = resolve_labels(labels, labels_file, label_set, required=False)
    given = {"frames": frames, "sampling": sampling.strip().lower() if sampling else None, "stride": stride,
             "clips": clips, "crops": crops}
    user_view(None, {k: v for k, v in given.items() if v is not None})  # out-of-range values: a usage error now
    from .checkpoint import convert_checkpoint
    from .official import ConvertOptions

    options = ConvertOptions(model=model, pretrained=pretrained, classes=classes,
                             view={k: v for k, v in given.items() if v is not None}, n_prefix=prefix,
                             n_suffix=suffix, temporal_heads=temporal_heads, require_head_names=True)
    from .interrupts import doing

    doing(f"converting {source} (nothing was written)")
    written, info, _ = convert_checkpoint(source, out, options)
    if json_out:
        typer.echo(json.dumps({"checkpoint": str(written), **info.describe()}, indent=2))
        return
    origin = info.extra.get("origin", {})
    typer.echo(f"{written}: {info.method} on {info.model} ({info.pretrained}), {len(info.classes)} classes, "
               f"views {info.view.frames}x{info.view.clips}x{info.view.crops}, from {origin.get('format')} "
               f"{source.name} (sha256 {str(origin.get('sha256'))[:12]}...)")


# Entry point ---------------------------------------------------------------------------------------------
class _OneLineFormatter(logging.Formatter):
    """``vidprompt: message``, always one line: names with newlines or odd bytes are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        from .display import printable

        message = printable(record.getMessage())
        if record.levelno == logging.WARNING and not message.startswith("warning"):
            message = f"warning: {message}"
        return f"vidprompt: {message}"


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
    sys.stdout = _GuardedOutput(sys.stdout)
    try:
        result = app(args=argv, prog_name="vidprompt", standalone_mode=False)
        sys.stdout.flush()
    except typer.Exit as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # Typer turns Ctrl-C into Exit(130)
            _interrupted()
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except VidpromptError as exc:
        _fail(f"error: {exc}", exc.exit_code)
    except OSError as exc:  # a full disk, a file too large, a folder that vanished mid-run
        from .fileio import describe_os_error

        _fail(f"error: cannot write or read {describe_os_error(exc)}", 1)
    except Exception as exc:
        if _is_parse_error(exc):  # bad option, bad value, missing argument
            ctx = getattr(exc, "ctx", None)
            hint = f" (see 'vidprompt {ctx.info_name} --help')" if ctx is not None and ctx.parent else ""
            message = exc.format_message()
            if message:  # `vidprompt` alone prints the help and exits 2 with no message
                _fail(f"error: {message}{hint}", getattr(exc, "exit_code", 2))
            sys.exit(getattr(exc, "exit_code", 2))
        if os.environ.get("VIDPROMPT_DEBUG"):  # a bug, not user error: one line unless asked
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set VIDPROMPT_DEBUG=1 for the traceback)", 1)
    if result == 130:  # Typer turns Ctrl-C into Exit(130), and returns its code outside standalone mode
        _interrupted()
    sys.exit(result if isinstance(result, int) else 0)


def _interrupted() -> None:
    """Ctrl-C: one line saying what stopped (and how to resume it), exit 130, and nothing else."""
    from .interrupts import message

    sys.unraisablehook = lambda unraisable: None  # workers and files torn down mid-way: nothing to report
    _fail(message(), 130)


class OutputError(VidpromptError):
    """stdout cannot take the results: a full disk, a closed pipe."""


class _GuardedOutput:
    """stdout, with a failed write turned into one error line instead of a traceback. After a failure every
    later write is dropped (and fd 1 points at /dev/null), so Python's own flush at exit stays silent."""

    def __init__(self, stream):
        self._stream = stream
        self._failed = False

    def write(self, text: str) -> int:
        if self._failed:
            return len(text)
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        if not self._failed:
            self._guard(self._stream.flush)

    def _guard(self, call, *args):
        try:
            return call(*args)
        except OSError as exc:
            self._failed = True
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass
            reason = "the reading end of the pipe was closed" if isinstance(exc, BrokenPipeError) else \
                exc.strerror or str(exc)
            raise OutputError(f"cannot write the results to stdout: {reason}") from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _is_parse_error(exc: Exception) -> bool:
    """Typer's command-line parsing errors (its own exception class in new releases, click's in older)."""
    return any(cls.__name__ in ("TyperException", "ClickException") for cls in type(exc).__mro__)


def _fail(message: str, code: int) -> None:
    from .display import printable

    lines = message.splitlines() or [""]
    print(f"vidprompt: {printable(lines[0])}", file=sys.stderr)
    sys.exit(code)


# `eval` lives in its own module (it imports this one for the shared options).
from .cli_eval import eval_command  # noqa: E402

app.command("eval")(eval_command)

# `index`, `search` and `localize` live in their own module too.
from .cli_search import index_command, localize_command, search_command  # noqa: E402

app.command("index")(index_command)
app.command("search")(search_command)
app.command("localize")(localize_command)
