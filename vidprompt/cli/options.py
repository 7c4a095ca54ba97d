"""Every shared option of the commands, declared once.

Each option is an ``Annotated`` alias (``Model``, ``Frames``, ``Device``...): its flags and help live here, and
a command declares ``model: Model = None``. Options that travel together are grouped in small dataclasses
(:class:`LabelOptions`, :class:`ModelOptions`, :class:`ViewOptions`, :class:`RuntimeOptions`); a command takes
one as a single parameter and :func:`command` spreads its fields into the command line, so the group's options
are listed once here and read as one object in the command (``runtime.seed``, ``views.view(base)``).

Nothing here imports a command, so every command module can import this one (and the package imports the
commands): no cycle. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..errors import UsageError

log = logging.getLogger("vidprompt")


def noted(alias, note: str, flags: tuple[str, ...] | None = None, **changes):
    """A variant of an option alias: its help followed by ``note`` (the command's own default), other ``flags``
    if given, and ``changes`` to other settings (e.g. ``help`` replaced)."""
    from copy import copy

    base, info = typing.get_args(alias)[:2]
    variant = copy(info)
    if flags:  # in an Annotated option the first flag sits in ``default``
        variant.default, variant.param_decls = flags[0], flags[1:]
    for key, value in {"help": f"{info.help} {note}".strip(), "show_default": False, **changes}.items():
        setattr(variant, key, value)
    return Annotated[base, variant]


# --- the options ----------------------------------------------------------------------------------------------

Model = Annotated[Optional[str], typer.Option(
    "--model", "-m", show_default="ViT-B-16",
    help="open_clip model name (e.g. ViT-B-16), path to an open_clip model config JSON, or an open_clip model on "
         "the Hugging Face Hub (hf-hub:ORG/REPO, with its weights).")]
Pretrained = Annotated[Optional[str], typer.Option(
    "--pretrained", "-p", show_default="openai",
    help="open_clip pretrained tag, a local weights file, or 'none' (random weights).")]
Checkpoint = Annotated[Optional[Path], typer.Option(
    "--checkpoint", "-c",
    help="A trained vidprompt checkpoint (.safetensors): PromptCLIP or AIM, a file or one on the Hugging Face Hub "
         "(hf-hub:ORG/REPO, or hf-hub:ORG/REPO/FILE); or a published AIM/PromptCLIP file (.pth), converted in "
         "memory.")]
Template = Annotated[Optional[List[str]], typer.Option(
    "--template", "-t",
    help="Zero-shot prompt template with {} for the class name, e.g. \"a video of {}.\" (repeat for an ensemble; "
         "default: vidprompt's built-in ensemble).")]
Labels = Annotated[Optional[str], typer.Option(
    "--labels", "-l", help='Comma-separated class names, e.g. "surfing,cooking".')]
LabelsFile = Annotated[Optional[Path], typer.Option(
    "--labels-file", help="Text file with one class name per line (# comments).")]
LabelSet = Annotated[Optional[str], typer.Option(
    "--label-set", help="Built-in label set: k400, k600, k700, ucf101, hmdb51, ssv2.")]
Frames = Annotated[Optional[int], typer.Option(
    "--frames", "-f", show_default="8, or the checkpoint's", help="Frames per temporal clip.")]
Sampling = Annotated[Optional[str], typer.Option(
    "--sampling", show_default="segment, or the checkpoint's",
    help="segment (one frame per equal segment), dense, or mmaction-dense / mmaction-uniform (mmaction2's test "
         "sampling, for published AIM models).")]
Stride = Annotated[Optional[int], typer.Option(
    "--stride", show_default="8, or the checkpoint's", help="Frame interval for dense sampling.")]
Clips = Annotated[Optional[int], typer.Option(
    "--clips", show_default="1", help="Temporal clips (views) per video; scores are averaged.")]
Crops = Annotated[Optional[int], typer.Option(
    "--crops", show_default="1", help="Spatial crops per clip: 1 (centre) or 3 (ends and centre).")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
Precision = Annotated[str, typer.Option("--precision", help="auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16.")]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", help="Videos per forward pass.")]
Workers = Annotated[Optional[int], typer.Option(
    "--num-workers", "-j", help="Decoding worker processes (default: min(8, CPUs); 0 decodes in-process).")]
Decoder = Annotated[str, typer.Option(
    "--decoder", help="Video decoder: auto (the fastest installed for the device; a file it cannot read goes to the "
                      "next), pyav, decord or torchcodec.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for every random choice.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
Strict = Annotated[bool, typer.Option("--strict", help="Exit 1 when any video could not be read.")]


# --- groups -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelOptions:
    """The class names to score: typed, from a file, or a built-in set."""

    labels: Labels = None
    labels_file: LabelsFile = None
    label_set: LabelSet = None

    def resolve(self, required: bool) -> list[str] | None:
        from ..labels import resolve_labels

        return resolve_labels(self.labels, self.labels_file, self.label_set, required=required)


@dataclass(frozen=True)
class ModelOptions:
    """Which model scores the videos: a trained checkpoint, or an open_clip model for zero-shot."""

    checkpoint: Checkpoint = None
    model: Model = None
    pretrained: Pretrained = None
    template: Template = None

    def templates(self) -> list[str] | None:
        """The templates, each checked (one ``{}``; none with a checkpoint), or None for the built-in ensemble."""
        from ..labels import check_templates

        return check_templates(self.template, self.checkpoint)

    def checkpoint_view(self):
        """The checkpoint's views (read now: a bad file fails before any video is decoded), or None."""
        if self.checkpoint is None:
            return None
        from ..checkpoint import read_checkpoint_info

        return read_checkpoint_info(self.checkpoint, model=self.model, pretrained=self.pretrained).view


INDEX_MODEL_NOTE = "Default: the model the index was built with."


@dataclass(frozen=True)
class IndexModel(ModelOptions):
    """index and search: the model an index was built with, unless given."""

    checkpoint: noted(Checkpoint, INDEX_MODEL_NOTE) = None
    model: noted(Model, INDEX_MODEL_NOTE) = None
    pretrained: noted(Pretrained, INDEX_MODEL_NOTE) = None


@dataclass(frozen=True)
class ViewOptions:
    """Which frames of a video are scored; what is not given comes from a checkpoint, a preset or the defaults."""

    frames: Frames = None
    sampling: Sampling = None
    stride: Stride = None
    clips: Clips = None
    crops: Crops = None

    def given(self) -> dict:
        """The values the user typed, by :class:`~vidprompt.video.ViewConfig` field."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if values["sampling"] is not None:
            values["sampling"] = values["sampling"].strip().lower()
        return {key: value for key, value in values.items() if value is not None}

    def view(self, base=None):
        """``base`` views (a checkpoint's or a dataset preset's; default: the defaults) with the typed values."""
        return user_view(base, self.given(), self.FLAGS)

    FLAGS: typing.ClassVar[dict] = {}  # fields whose flag is not ``--`` + the field name


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how the model runs; none of these changes a prediction beyond float rounding."""

    device: Device = "auto"
    precision: Precision = "auto"
    batch_size: BatchSize = 4
    num_workers: Workers = None
    decoder: Decoder = "auto"
    seed: Seed = 0

    def classifier_kwargs(self) -> dict:
        """The settings :func:`~vidprompt.classifier.load_classifier` takes."""
        return {"device": self.device, "precision": self.precision, "batch_size": self.batch_size,
                "num_workers": self.num_workers, "decoder": self.decoder}


def command(func):
    """Spread each option group parameter of ``func`` (a dataclass annotation) into its fields, for Typer, and
    rebuild the group before ``func`` runs. The fields keep their flags and take their defaults from the
    parameter's default (a group instance) or the group's own; their Python names are prefixed with the
    group's, so two groups (or a group and the command) may each have a ``stride``."""
    hints = typing.get_type_hints(func, include_extras=True)
    params, groups = [], {}
    for param in inspect.signature(func).parameters.values():
        group = hints[param.name]
        if not (isinstance(group, type) and dataclasses.is_dataclass(group)):
            params.append(param.replace(annotation=hints[param.name], kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        base = param.default if isinstance(param.default, group) else group()
        groups[param.name] = (group, base)
        field_hints = typing.get_type_hints(group, include_extras=True)
        params += [inspect.Parameter(f"{param.name}__{f.name}", inspect.Parameter.KEYWORD_ONLY,
                                     default=getattr(base, f.name), annotation=field_hints[f.name])
                   for f in dataclasses.fields(group)]

    @functools.wraps(func)
    def run(**kwargs):
        for name, (group, base) in groups.items():
            kwargs[name] = group(**{f.name: kwargs.pop(f"{name}__{f.name}", getattr(base, f.name))
                                    for f in dataclasses.fields(group)})
        return func(**kwargs)

    run.__signature__ = inspect.Signature(params)
    run.__annotations__ = {p.name: p.annotation for p in params}
    del run.__wrapped__  # Typer and inspect read the spread signature, not the grouped one
    return run


# --- helpers ----------------------------------------------------------------------------------------------------

def user_view(base, given: dict, flags: dict | None = None):
    """``base`` views (default: the defaults) with the values the user typed; an out-of-range value is a usage
    error that names the option (``flags``: fields whose flag is not ``--`` + the name)."""
    from dataclasses import replace

    from ..video import ViewConfig, ViewError

    try:
        return replace(base or ViewConfig(), **given)
    except ViewError as exc:
        raise UsageError(exc.for_flags(flags) if exc.field in given else str(exc)) from None


def warn_random_weights(pretrained: str | None) -> None:
    if pretrained is not None and pretrained.strip().lower() == "none":
        log.warning("warning: --pretrained none builds random weights; predictions are meaningless "
                    "(use it for tests and benchmarks)")

