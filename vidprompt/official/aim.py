"""The official AIM checkpoints (taoyang1122/adapt-image-models, an mmaction2 fork) as vidprompt AIM models.

An mmcv checkpoint: ``state_dict`` holds the ViT under ``backbone.`` in OpenAI's naming with the adapters
inside each block (``T_Adapter``, ``T_Adapter_in`` in the Something-Something models, ``S_Adapter``,
``MLP_Adapter``, each ``D_fc1``/``D_fc2``), ``backbone.temporal_embedding`` ``[1, T, width]``, the trained
``backbone.ln_post`` and the linear head ``cls_head.fc_cls``; ``meta['config']`` is the training config as
Python text (read with :mod:`.mmconfig`, never run), which gives the adapter scale and the test views.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import VidpromptError
from . import (AIM_FORMAT, DEFAULT_PRETRAINED, ConvertOptions, Converted, dataset_hint, infer_vit_name,
               pick_classes)
from .mmconfig import find_step, read_config

_ADAPTERS = {"T_Adapter_in": "temporal_adapter_in", "T_Adapter": "temporal_adapter", "S_Adapter": "spatial_adapter",
             "MLP_Adapter": "joint_adapter"}
_ADAPTER_KEY = re.compile(r"transformer\.resblocks\.(\d+)\.(T_Adapter_in|T_Adapter|S_Adapter|MLP_Adapter)\."
                          r"(D_fc1|D_fc2)\.(weight|bias)")
_HEAD = {"cls_head.fc_cls.weight": "head.weight", "cls_head.fc_cls.bias": "head.bias"}
# The Kinetics test protocol when a file carries no config: frames x interval 8x16, 16x8, 32x4; 3 clips x 1 crop.
_KINETICS_INTERVAL = {8: 16, 16: 8, 32: 4}


def convert_aim(path: Path, state: dict[str, torch.Tensor], top: dict, options: ConvertOptions) -> Converted:
    meta = top.get("meta") if isinstance(top.get("meta"), dict) else {}
    config = read_config(meta["config"]) if isinstance(meta.get("config"), str) else {}
    notes = [] if config else ["the file carries no training config: adapter scale and views are the "
                               "published defaults"]
    tensors, frozen = _split(path, state)
    width = _required(path, state, "backbone.positional_embedding").shape[-1]
    layers = len({int(m.group(1)) for m in (_ADAPTER_KEY.fullmatch(k[len("backbone."):]) for k in state) if m})
    _check_adapters(path, state, layers)
    frames = tensors["temporal_embedding"].shape[0]
    adapter_in = "blocks.0.temporal_adapter_in.down.weight" in tensors
    backbone_cfg = _get(config, "model", "backbone")
    head_rows = tensors["head.weight"].shape[0] if "head.weight" in tensors else 0

    scale = backbone_cfg.get("adapter_scale")
    if not isinstance(scale, (int, float)) or isinstance(scale, bool):
        scale = 1.0 if adapter_in else 0.5  # the official configs: 1 for Something-Something, else 0.5
        if config:
            notes.append(f"no adapter_scale in the config: {scale}")
    drop_path = backbone_cfg.get("drop_path_rate", 0.2)
    hparams = {"num_frames": frames, "adapter_positions": "all",
               "bottleneck_ratio": tensors["blocks.0.temporal_adapter.down.weight"].shape[0] / width,
               "joint_scale": float(scale),
               "drop_path": float(drop_path) if isinstance(drop_path, (int, float)) and 0 <= drop_path < 1 else 0.2,
               "temporal_adapter_in": adapter_in, "head_classes": head_rows}

    model = options.model
    if model is None:
        conv = _required(path, state, "backbone.conv1.weight")
        model = infer_vit_name(path, width, layers, conv.shape[-1], state["backbone.positional_embedding"].shape[0])
    data_text = " ".join(str(v) for k, v in config.items() if "ann_file" in k or "data_root" in k)
    classes = pick_classes(path, head_rows, options.classes, dataset_hint(data_text) if data_text else None,
                           "the linear head", required=options.require_head_names) if head_rows else None
    if head_rows and classes is None:  # a head nobody can name (Diving-48): open vocabulary only
        notes.append(f"its linear head's {head_rows} classes match no built-in label set, so the head is left "
                     "aside (vidprompt convert --labels-file names them)")
        tensors.pop("head.weight")
        tensors.pop("head.bias")
        hparams["head_classes"] = 0
    if classes is None:
        classes = list(options.classes or [])
    view = {**_published_view(config, frames, notes), **options.view}
    details = {"mmcv_epoch": meta.get("epoch"), "config_name": meta.get("config_name")}
    return Converted(format=AIM_FORMAT, method="aim", model=model,
                     pretrained=options.pretrained or DEFAULT_PRETRAINED, hparams=hparams, view=view,
                     classes=classes, tensors=tensors, frozen=frozen, notes=notes,
                     details={k: v for k, v in details.items() if isinstance(v, (int, str))})


def _split(path: Path, state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Trained tensors under vidprompt's AIM names; frozen ViT tensors under open_clip's ``visual.`` names."""
    tensors, frozen, unknown = {}, {}, []
    for name, tensor in state.items():
        if name in _HEAD:
            tensors[_HEAD[name]] = tensor
        elif not name.startswith("backbone."):
            unknown.append(name)
        elif name == "backbone.temporal_embedding":
            if tensor.ndim != 3 or tensor.shape[0] != 1:
                raise VidpromptError(f"{path}: backbone.temporal_embedding has shape {tuple(tensor.shape)}, "
                                     "not [1, frames, width]")
            tensors["temporal_embedding"] = tensor[0]
        elif name.startswith("backbone.ln_post."):
            tensors[name[len("backbone."):]] = tensor
        elif (match := _ADAPTER_KEY.fullmatch(name[len("backbone."):])) is not None:
            block, adapter, fc, kind = match.groups()
            tensors[f"blocks.{block}.{_ADAPTERS[adapter]}.{'down' if fc == 'D_fc1' else 'up'}.{kind}"] = tensor
        else:
            frozen["visual." + name[len("backbone."):]] = tensor
    if unknown:
        raise VidpromptError(f"{path}: unexpected tensors for an AIM checkpoint: {', '.join(sorted(unknown)[:3])}")
    for name in ("ln_post.weight", "ln_post.bias"):
        if name not in tensors:
            raise VidpromptError(f"{path}: damaged AIM checkpoint (no backbone.{name})")
    return tensors, frozen


def _required(path: Path, state: dict, name: str) -> torch.Tensor:
    if name not in state:
        raise VidpromptError(f"{path}: damaged AIM checkpoint (no {name})")
    return state[name]


def _check_adapters(path: Path, state: dict, layers: int) -> None:
    """Every block has the same adapters, each with both layers' weights and biases."""
    blocks = {int(m.group(1)) for m in (re.match(r"backbone\.transformer\.resblocks\.(\d+)\.", k) for k in state)
              if m}
    if not layers or blocks != set(range(layers)):
        raise VidpromptError(f"{path}: damaged AIM checkpoint (adapters in {layers} of {len(blocks)} blocks)")
    kinds = [a for a in _ADAPTERS if f"backbone.transformer.resblocks.0.{a}.D_fc1.weight" in state]
    for adapter in ("T_Adapter", "S_Adapter", "MLP_Adapter"):  # every official block has these three
        if adapter not in kinds:
            raise VidpromptError(f"{path}: damaged AIM checkpoint (block 0 has no {adapter})")
    for block in range(layers):
        for adapter in kinds:
            for part in ("D_fc1.weight", "D_fc1.bias", "D_fc2.weight", "D_fc2.bias"):
                name = f"backbone.transformer.resblocks.{block}.{adapter}.{part}"
                if name not in state:
                    raise VidpromptError(f"{path}: damaged AIM checkpoint (no {name})")


def _get(config: dict, *keys: str) -> dict:
    for key in keys:
        config = config.get(key) if isinstance(config, dict) else None
    return config if isinstance(config, dict) else {}


def _published_view(config: dict, frames: int, notes: list[str]) -> dict:
    """The test views of the config's test pipeline: ``SampleFrames`` (frames, interval, clips; with
    ``frame_uniform`` one clip of uniform spans), sampled as mmaction2 does, and ``ThreeCrop`` or ``CenterCrop``."""
    pipeline = config.get("test_pipeline") or _get(config, "data", "test").get("pipeline")
    sample = find_step(pipeline, "SampleFrames")
    if sample is None:
        if config:
            notes.append("no test pipeline in the config: the Kinetics views")
        return {"frames": frames, "sampling": "mmaction-dense", "stride": _KINETICS_INTERVAL.get(frames, 8),
                "clips": 3, "crops": 1}
    uniform = bool(sample.get("frame_uniform"))
    view = {"frames": _int(sample.get("clip_len"), frames), "sampling": f"mmaction-{'uniform' if uniform else 'dense'}",
            "clips": 1 if uniform else _int(sample.get("num_clips"), 1),
            "crops": 3 if find_step(pipeline, "ThreeCrop") else 1}
    if not uniform:
        view["stride"] = _int(sample.get("frame_interval"), 8)
    return view


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
