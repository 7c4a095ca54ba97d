"""The published AIM and PromptCLIP checkpoints, read safely and turned into vidprompt models.

The authors' files are pickles (``torch.save``) in their own layouts: an mmcv checkpoint for AIM
(``meta``, ``state_dict`` with ``backbone.*`` and ``cls_head.*``), a plain dict for PromptCLIP
(``state_dict`` with the whole CLIP under ``clipmodel.*``, ``iteration``, ``optimizer``). They are read with
:func:`vidprompt.safe_pickle.load_pickled` (no code from the file runs), recognised by their tensor names,
and converted to what a vidprompt checkpoint holds: the trained tensors under our names, the metadata to
rebuild the model (the official variants' hyper-parameters, the published views, the head's classes), and
the frozen CLIP tensors the file carries, which :func:`check_frozen` compares with the backbone the model is
built on. ``docs/published-models.md`` explains the formats and the mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import OptionValueError, UsageError, VidpromptError

AIM_FORMAT = "aim-official"
PROMPTCLIP_FORMAT = "promptclip-official"
# The official code always runs OpenAI's CLIP weights (clip.load), so that is the default backbone.
DEFAULT_PRETRAINED = "openai"
# open_clip names of the ViTs the official code used, by (width, layers, patch size, grid side).
_VIT_NAMES = {(768, 12, 16, 14): "ViT-B-16", (768, 12, 32, 7): "ViT-B-32", (1024, 24, 14, 16): "ViT-L-14",
              (1024, 24, 14, 24): "ViT-L-14-336"}


@dataclass
class ConvertOptions:
    """What an official file cannot tell about itself; ``None`` means: work it out from the file."""

    model: str | None = None  # open_clip model name or config JSON; default: inferred from tensor shapes
    pretrained: str | None = None  # default: openai, the weights the official code loads
    classes: list[str] | None = None  # an AIM head's classes in head order, or PromptCLIP's training classes
    view: dict = field(default_factory=dict)  # views to use instead of the published protocol's
    n_prefix: int | None = None  # PromptCLIP prompt lengths (the file does not store them)
    n_suffix: int | None = None
    temporal_heads: int | None = None  # PromptCLIP temporal attention heads (not visible in the weights)
    # An AIM head whose classes cannot be named: an error (convert), or left aside with a note (in memory).
    require_head_names: bool = False


@dataclass
class Converted:
    """An official checkpoint in vidprompt's terms. ``frozen``: the file's copy of the frozen CLIP, under
    open_clip's names, to check against the backbone; ``notes``: what was inferred rather than read."""

    format: str
    method: str
    model: str
    pretrained: str
    hparams: dict
    view: dict
    classes: list[str]
    tensors: dict[str, torch.Tensor]
    frozen: dict[str, torch.Tensor]
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


_LAST_READ: list = []  # [(file key, loaded object)]: a command reads the file once, for its info and its load
# (the conversion itself is redone each time: it is cheap, and it reads the files beside this one afresh)


def _load(path: Path) -> object:
    from ..safe_pickle import load_pickled

    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if not (_LAST_READ and _LAST_READ[0][0] == key):
        _LAST_READ.clear()
        _LAST_READ.append((key, load_pickled(path)))
    return _LAST_READ[0][1]


def forget_loaded() -> None:
    """Release the kept copy of the last file read."""
    _LAST_READ.clear()


def convert_file(path: str | Path, options: ConvertOptions | None = None) -> Converted:
    """Read an official AIM or PromptCLIP file safely and convert it; one clear error if it is neither."""
    path = Path(path)
    options = options or ConvertOptions()
    loaded = _load(path)
    state, top = _state_dict(path, loaded)
    try:
        if any(name.startswith("backbone.") for name in state) and "backbone.temporal_embedding" in state:
            from .aim import convert_aim

            return convert_aim(path, state, top, options)
        if "embedding.weight" in state and any(name.startswith("clipmodel.") for name in state):
            from .promptclip import convert_promptclip

            return convert_promptclip(path, state, top, options)
    except (TypeError, KeyError, IndexError, ValueError, AttributeError, RecursionError, MemoryError) as exc:
        # a file in the right layout whose pieces do not fit together: damage, said in one line
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        raise VidpromptError(f"{path}: damaged checkpoint ({type(exc).__name__}: {reason})") from None
    raise VidpromptError(f"{path}: not an AIM or PromptCLIP checkpoint ({_what(loaded, state)})")


def _state_dict(path: Path, loaded: object) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors of a loaded file (``state_dict`` of a training checkpoint, or the dict itself), with a
    ``module.`` prefix (DistributedDataParallel) removed; and the top-level dict."""
    from ..safe_pickle import describe

    top = loaded if isinstance(loaded, dict) else {}
    state = top.get("state_dict", top) if top else None
    if not isinstance(state, dict) or not state:
        raise VidpromptError(f"{path}: not an AIM or PromptCLIP checkpoint (found {describe(loaded)})")
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            if isinstance(name, str) and name.startswith(("backbone.", "cls_head.", "clipmodel.", "embedding")):
                raise VidpromptError(f"{path}: {name} is {describe(value)}, not a tensor")
            continue  # a non-tensor entry elsewhere: not a checkpoint we know, decided below
        key = str(name)
        tensors[key[len("module."):] if key.startswith("module.") else key] = value
    return tensors, top


def _what(loaded: object, state: dict) -> str:
    from ..safe_pickle import describe

    if state:
        names = ", ".join(sorted(state)[:4])
        return f"found {len(state)} tensors such as {names}"
    return f"found {describe(loaded)}"


def infer_vit_name(path: Path, width: int, layers: int, patch: int, tokens: int) -> str:
    """The open_clip model name of the official ViT, from its tensor shapes."""
    grid = round((tokens - 1) ** 0.5)
    name = _VIT_NAMES.get((width, layers, patch, grid))
    if name is None:
        raise OptionValueError("model", f"{path}: a ViT of width {width}, {layers} layers, patch {patch} at "
                                        f"{grid * patch} px is not one vidprompt can name; give model (an "
                                        "open_clip name or config file)")
    return name


def pick_classes(path: Path, count: int, given: list[str] | None, hint: str | None, what: str,
                 required: bool = True) -> list[str] | None:
    """Class names for ``count`` trained classes: the ones given (their number must match), else the built-in
    label set the training data (``hint``) or the count points to; else an error, or ``None`` when not
    ``required``."""
    from ..labels import load_label_set

    if given is not None:
        if len(given) != count:
            raise UsageError(f"{path}: {what} has {count} classes but {len(given)} class names were given")
        return list(given)
    by_count = {400: "k400", 600: "k600", 700: "k700", 174: "ssv2", 101: "ucf101", 51: "hmdb51"}
    name = hint if hint is not None else by_count.get(count)
    if name is not None:
        names = load_label_set(name)
        if len(names) == count:
            return names
    if not required:
        return None
    raise UsageError(f"{path}: {what} has {count} classes and no built-in label set fits; give their names in "
                     "the head's order with --labels-file (convert)")


def dataset_hint(text: str) -> str | None:
    """The built-in label set named by a dataset path or name in an official config or command."""
    text = text.lower()
    for pattern, name in (("kinetics400|k400", "k400"), ("kinetics600|k600", "k600"), ("kinetics700|k700", "k700"),
                          ("sthv2|something", "ssv2"), ("ucf101|ucf-101", "ucf101"), ("hmdb", "hmdb51")):
        if re.search(pattern, text):
            return name
    return None


def check_frozen(path: str | Path, backbone, frozen: dict[str, torch.Tensor]) -> None:
    """The file's copy of the frozen CLIP must be the backbone's weights: a file converted against other
    weights would silently be another model. Shapes must match; values within fp16 rounding."""
    state = backbone.model.state_dict()
    for name, tensor in frozen.items():
        ours = state.get(name)
        if ours is None or tuple(ours.shape) != tuple(tensor.shape):
            found = "absent" if ours is None else f"of shape {tuple(ours.shape)}"
            raise VidpromptError(f"{path}: its frozen CLIP tensor {name} {tuple(tensor.shape)} is {found} in "
                                 f"{backbone.name}; give the --model it was trained on")
        ours = ours.detach().float().cpu()
        if not torch.allclose(tensor.float(), ours, rtol=1e-3, atol=1e-5):
            worst = (tensor.float() - ours).abs().max().item()
            raise VidpromptError(f"{path}: its frozen CLIP weights are not {backbone.name} '{backbone.pretrained}' "
                                 f"({name} differs by up to {worst:.3g}); give the --model/--pretrained it was "
                                 "trained on")


__all__ = ["AIM_FORMAT", "PROMPTCLIP_FORMAT", "ConvertOptions", "Converted", "check_frozen", "convert_file"]
