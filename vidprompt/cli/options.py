"""Options and helpers shared by the commands. Nothing here imports a command, so every command module can
import this one (and the package imports the commands): no cycle."""

from __future__ import annotations

import logging

import typer

from ..errors import UsageError

log = logging.getLogger("vidprompt")

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


def view_from_options(frames: int | None, sampling: str | None, stride: int | None, clips: int | None, crops: int | None,
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

    from ..video import ViewConfig, ViewError

    try:
        return replace(base or ViewConfig(), **given)
    except ViewError as exc:
        raise UsageError(f"--{exc}" if exc.field in given else str(exc)) from None


def warn_random_weights(pretrained: str | None) -> None:
    if pretrained is not None and pretrained.strip().lower() == "none":
        log.warning("warning: --pretrained none builds random weights; predictions are meaningless "
                    "(use it for tests and benchmarks)")


TemplateOpt = typer.Option(None, "--template", "-t",
                           help='Zero-shot prompt template with {} for the class name (repeatable; default: '
                                "vidprompt's built-in ensemble).")


def unset(option, note: str):
    """The shared option with no default, so the command can tell "not given" from a value."""
    return typer.Option(None, *option.param_decls, help=f"{option.help} {note}")
