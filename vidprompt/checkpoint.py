"""Checkpoints: one ``.safetensors`` file holding only the trained tensors, plus string metadata that says
how to rebuild the model around them (method, backbone, hyper-parameters, frames, classes). Never pickle.

Loading rebuilds the backbone from the metadata, builds the method, overlays the tensors and refuses any
mismatch (other backbone, other shapes, a newer format) with one clear line.

The published AIM and PromptCLIP files (pickles in their authors' layouts) are accepted wherever a checkpoint
is: they are recognised by their contents, read without running code and converted in memory
(:mod:`vidprompt.official`); :func:`convert_checkpoint` writes them once as a vidprompt checkpoint.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .backbone import Backbone, build_backbone, is_random_weights, read_model_config
from .errors import OptionValueError, UsageError, VidpromptError
from .fileio import atomic_write, atomic_write_json, cache_dir
from .hub import local_checkpoint, sha256_of
from .labels import check_labels
from .methods import build_method, stored_hparams_problem
from .methods.base import VideoTextModel
from .safe_pickle import is_torch_file
from .video import ViewConfig, ViewError

log = logging.getLogger("vidprompt")

FORMAT = "vidprompt-checkpoint"
FORMAT_VERSION = 1
# What an open_clip model name or config-file stem may be: no path separators, no leading dot.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+@=, -]*")


@dataclass
class CheckpointInfo:
    """The metadata of a checkpoint, decoded."""

    method: str
    model: str  # open_clip model name
    pretrained: str  # tag, weights path or "none"
    model_config: dict | None  # the open_clip config JSON when the backbone came from a file
    quick_gelu: bool  # the backbone ran OpenAI's QuickGELU activation
    hparams: dict
    view: ViewConfig
    classes: list[str]
    format_version: int
    vidprompt_version: str
    extra: dict

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "model": self.model, "pretrained": self.pretrained,
                "quick_gelu": self.quick_gelu, "hparams": self.hparams, "view": self.view.to_dict(),
                "classes": self.classes, "format_version": self.format_version, "vidprompt_version": self.vidprompt_version,
                **self.extra}


def save_checkpoint(path: str | Path, model: VideoTextModel, view: ViewConfig, classes: list[str],
                    extra: dict | None = None) -> Path:
    """Write the trained tensors of ``model`` and its rebuild recipe atomically to ``path``."""
    from safetensors.torch import save_file

    backbone = model.backbone
    config = None
    if backbone.config_path is not None:
        config = json.loads(Path(backbone.config_path).read_text("utf-8"))
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "vidprompt_version": __version__,
        "method": model.method,
        "model": backbone.name,
        "pretrained": backbone.pretrained,
        "model_config": json.dumps(config),
        "quick_gelu": json.dumps(backbone.quick_gelu),
        "hparams": json.dumps(model.hparams()),
        "view": json.dumps(view.to_dict()),
        "classes": json.dumps(list(classes)),
        "extra": json.dumps(extra or {}),
    }
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.trainable_state().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _exists(path: Path) -> None:
    if path.is_dir():
        raise UsageError(f"checkpoint {path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")


def is_safetensors(path: Path) -> bool:
    """Whether to read ``path`` as a vidprompt (safetensors) checkpoint, decided by its content: a safetensors
    file starts with its header's length (8 bytes, little-endian) and the header's ``{``; a pickle or a zip
    archive (``torch.save``) is read as a possible official checkpoint, whatever its name. Other content goes
    by the name, so a damaged ``.safetensors`` file is reported as one."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
        size = path.stat().st_size
    except OSError as exc:
        raise VidpromptError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return True
    if is_torch_file(head):
        return False
    return path.suffix.lower() == ".safetensors"


def _open(path: Path):
    from safetensors import safe_open

    _exists(path)
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception:
        raise VidpromptError(f"{path} is not a readable safetensors checkpoint (truncated or another format)"
                             ) from None


def _decode_info(path: Path, metadata: dict) -> CheckpointInfo:
    """The metadata, every field checked for its type and range: a damaged or crafted file is one line naming
    it, never a crash (or a huge allocation) later on."""
    if metadata.get("format") != FORMAT:
        raise VidpromptError(f"{path} is a safetensors file but not a vidprompt checkpoint")
    try:
        version = int(metadata["format_version"])
        if version > FORMAT_VERSION:
            raise VidpromptError(f"{path} has checkpoint format {version}, newer than this vidprompt "
                                 f"({__version__}) reads ({FORMAT_VERSION}); upgrade vidprompt")
        model = _typed(metadata["model"], str, "model")
        if not _SAFE_NAME.fullmatch(model):  # it names a file in the cache when the config is rebuilt
            raise ValueError(f"model name {model!r}")
        classes = _typed(json.loads(metadata["classes"]), list, "classes")
        if not all(isinstance(c, str) for c in classes):
            raise ValueError("classes must be a list of names")
        if classes:  # a converted PromptCLIP file may have none: the user gives labels each time
            check_labels(classes, source="classes")
        return CheckpointInfo(
            method=_typed(metadata["method"], str, "method"), model=model,
            pretrained=_typed(metadata["pretrained"], str, "pretrained"),
            model_config=_typed(json.loads(metadata.get("model_config") or "null"), (dict, type(None)),
                                "model_config"),
            quick_gelu=_typed(json.loads(metadata.get("quick_gelu") or "false"), bool, "quick_gelu"),
            hparams=_typed(json.loads(metadata["hparams"]), dict, "hparams"),
            view=ViewConfig.from_dict(json.loads(metadata["view"])),
            classes=classes, format_version=version,
            vidprompt_version=str(metadata.get("vidprompt_version", "?")),
            extra=_typed(json.loads(metadata.get("extra") or "{}"), dict, "extra"))
    except KeyError as exc:
        raise VidpromptError(f"{path}: damaged checkpoint metadata (no {exc.args[0]!r})") from None
    except (ValueError, TypeError, UsageError) as exc:
        raise VidpromptError(f"{path}: damaged checkpoint metadata ({exc})") from None


def _typed(value, kind, name: str):
    if not isinstance(value, kind):
        raise ValueError(f"{name} has the wrong type ({type(value).__name__})")
    return value


def _check_fit(path: Path, info: CheckpointInfo, shapes: dict[str, tuple[int, ...]]) -> None:
    """The hyper-parameters must describe the stored tensors: checked before a model of that size is built."""
    problem = stored_hparams_problem(info.method, info.hparams, shapes)
    if problem is not None:
        raise VidpromptError(f"{path}: damaged checkpoint metadata ({problem})")


def _checked_info(path: Path, handle) -> CheckpointInfo:
    """The metadata of an open checkpoint, decoded and checked against its tensors' shapes (not their data)."""
    info = _decode_info(path, handle.metadata() or {})
    _check_fit(path, info, {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()})
    return info


def read_checkpoint_info(path: str | Path, official=None, *, model: str | None = None,
                         pretrained: str | None = None) -> CheckpointInfo:
    """The validated metadata alone (cheap for a vidprompt checkpoint: tensors are not read; an official file
    is converted, and the result kept for the load that follows). ``model``/``pretrained``: as for
    :func:`load_checkpoint`."""
    path = local_checkpoint(path)  # a hf-hub: name: the file in the Hugging Face cache
    _exists(path)
    if not is_safetensors(path):
        return _read_official(path, _official_options(official, model, pretrained))[0]
    with _open(path) as handle:
        return _checked_info(path, handle)


def read_checkpoint(path: str | Path, official=None) -> tuple[CheckpointInfo, dict[str, torch.Tensor]]:
    """Metadata and tensors of a checkpoint file, validated; errors are one line. An official AIM or
    PromptCLIP file is converted (``official``: :class:`vidprompt.official.ConvertOptions`)."""
    path = local_checkpoint(path)  # a hf-hub: name: the file in the Hugging Face cache
    _exists(path)
    if not is_safetensors(path):
        info, tensors, _ = _read_official(path, official)
        return info, tensors
    with _open(path) as handle:
        info = _checked_info(path, handle)
        try:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        except Exception:
            raise VidpromptError(f"{path}: tensors cannot be read (truncated file?)") from None
    return info, tensors


def _backbone_for(info: CheckpointInfo, model: str | None, pretrained: str | None) -> Backbone:
    """The backbone the checkpoint was trained on. ``model`` and ``pretrained`` may say where to find it
    (a config file, a local copy of the weights) but not swap it for another."""
    if model is not None and model.replace("/", "-") != info.model and Path(model).stem != info.model:
        raise OptionValueError("model", f"model {model} does not match the checkpoint: it was trained on "
                                        f"{info.model}")
    weights = pretrained if pretrained is not None else info.pretrained
    if is_random_weights(weights) != is_random_weights(info.pretrained):
        raise OptionValueError("pretrained", f"pretrained {weights} is not the weights the checkpoint was trained "
                                             f"with ({info.model}, '{info.pretrained}')")
    if info.model_config is not None:
        source = model if model is not None and Path(model).is_file() else None
        if source is not None and read_model_config(Path(source)) != info.model_config:
            raise OptionValueError("model", f"model {model}: this config differs from the {info.model} config "
                                            "the checkpoint was trained on (leave model out to use the "
                                            "checkpoint's own)", mentions=("model",))
        if source is None:  # rebuild the config JSON the checkpoint carries, under its own name
            config_path = cache_dir() / "model_configs" / f"{info.model}.json"
            if read_model_config(config_path) != info.model_config:  # missing, stale or damaged
                atomic_write_json(config_path, info.model_config)
            source = str(config_path)
        return build_backbone(source, weights, quick_gelu=info.quick_gelu)
    return build_backbone(info.model, weights, quick_gelu=info.quick_gelu)


def _official_options(official, model: str | None, pretrained: str | None):
    """The conversion options, with ``model``/``pretrained`` filling in what they leave out."""
    from dataclasses import replace

    from .official import ConvertOptions

    options = official or ConvertOptions()
    return replace(options, model=options.model or model, pretrained=options.pretrained or pretrained)


def _read_official(path: Path, official=None):
    """``(info, tensors, converted)`` of an official AIM or PromptCLIP file, converted in memory. Converting is
    cheap; reading the file is not, and :func:`vidprompt.official.convert_file` keeps the last file read, so
    the info a command reads first and the load that follows read it once."""
    from .official import ConvertOptions, convert_file

    options = official or ConvertOptions()
    converted = convert_file(path, options)
    config = None
    if Path(converted.model).suffix == ".json" and Path(converted.model).is_file():
        config = read_model_config(Path(converted.model))
    try:
        view = ViewConfig.from_dict(converted.view)
    except (ViewError, ValueError, TypeError) as exc:
        if isinstance(exc, ViewError) and exc.field in options.view:
            raise exc from None  # a view the caller asked for, named as such
        raise VidpromptError(f"{path}: the views its config records are unusable ({exc})") from None
    info = CheckpointInfo(method=converted.method, model=Path(converted.model).stem if config else converted.model,
                          pretrained=converted.pretrained, model_config=config, quick_gelu=True,
                          hparams=converted.hparams, view=view, classes=converted.classes,
                          format_version=FORMAT_VERSION, vidprompt_version=__version__,
                          extra={"origin": {"format": converted.format, "file": path.name, **converted.details}})
    if info.classes:
        check_labels(info.classes, source=f"{path} classes")
    _check_fit(path, info, {name: tuple(t.shape) for name, t in converted.tensors.items()})
    return info, converted.tensors, converted


def load_checkpoint(path: str | Path, *, model: str | None = None, pretrained: str | None = None,
                    official=None) -> tuple[VideoTextModel, CheckpointInfo]:
    """Rebuild backbone + method from a checkpoint and load its trained tensors.

    ``pretrained`` may point at the same weights elsewhere (another cache, a local file); ``model``, when
    given, must name the checkpoint's backbone. An official AIM or PromptCLIP file is converted in memory
    (``official``: :class:`vidprompt.official.ConvertOptions`; ``model`` and ``pretrained`` fill in its
    ``model``/``pretrained`` when it leaves them out) and its frozen CLIP weights are checked against the
    backbone.
    """
    path = local_checkpoint(path)  # a hf-hub: name: the file in the Hugging Face cache
    _exists(path)
    converted = None
    if is_safetensors(path):
        info, tensors = read_checkpoint(path)
    else:
        options = _official_options(official, model, pretrained)
        info, tensors, converted = _read_official(path, options)
        model, pretrained = options.model, options.pretrained
    backbone = _backbone_for(info, model, pretrained)
    if converted is not None:
        from .official import check_frozen, forget_loaded

        check_frozen(path, backbone, converted.frozen)
    try:
        method = build_method(info.method, backbone, **info.hparams)
    except UsageError as exc:  # hyper-parameters the shape checks let through but the model refuses
        raise VidpromptError(f"{path}: damaged checkpoint metadata ({exc})") from None
    expected = method.trainable_state()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise VidpromptError(f"{path} does not fit {info.method} on {info.model}: "
                             f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise VidpromptError(f"{path} does not fit {info.method} on {info.model}: {name} has shape "
                                 f"{tuple(tensor.shape)}, the model expects {tuple(expected[name].shape)}")
    with torch.no_grad():
        params = dict(method.named_parameters())
        for name, tensor in tensors.items():
            params[name].copy_(tensor)
    if converted is not None:
        forget_loaded()  # hundreds of MB, no longer needed once the model holds its tensors
        notes = "".join(f"; {note}" for note in converted.notes)
        log.info("%s: an official %s checkpoint, converted in memory%s (vidprompt convert writes it once as "
                 "a .safetensors file)", path, "AIM" if info.method == "aim" else "PromptCLIP", notes)
    return method.eval(), info


def convert_checkpoint(source: str | Path, out: str | Path, official=None) -> tuple[Path, CheckpointInfo, list[str]]:
    """Convert an official AIM or PromptCLIP file into a vidprompt checkpoint at ``out`` (atomically).

    The model is built and its frozen weights checked exactly as a load does, so a written file always loads;
    the metadata records where it came from (format, file name, SHA-256). Returns the path, the metadata
    and the notes on what was inferred rather than read."""

    source, out = Path(source), Path(out)
    _exists(source)
    if is_safetensors(source):
        raise UsageError(f"{source} is already a safetensors file; convert reads the official .pth files")
    notes = list(_read_official(source, official)[2].notes)
    method, info = load_checkpoint(source, official=official)
    origin = {**info.extra.get("origin", {}), "sha256": sha256_of(source)}
    written = save_checkpoint(out, method, info.view, info.classes, extra={"origin": origin})
    return written, read_checkpoint_info(written), notes
