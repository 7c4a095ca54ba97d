"""Official-format AIM and PromptCLIP files for tests, and the official math computed from them directly.

The writers produce the dicts and tensor names the authors' code saves (an mmcv checkpoint for AIM, the
PromptCLIP training script's dict), on the tiny test config with random trained tensors. The reference
functions compute the official models' outputs from those state dicts with torch primitives, following the
official forward passes step by step (sequence-first attention, QuickGELU CLIP blocks, the 77-row prompt
table), independently of vidprompt's modules.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

AIM_CONFIG = """model = dict(
    type='Recognizer3D',
    backbone=dict(type='ViT_CLIP', input_resolution=32, patch_size=8, num_frames={frames}, width=64, layers=2,
                  heads=2, drop_path_rate=0.2, adapter_scale={scale}{tadapter}),
    cls_head=dict(type='I3DHead', in_channels=64, num_classes={classes}, spatial_type='avg', dropout_ratio=0.5),
    test_cfg=dict(average_clips='prob'))
ann_file_train = 'data/{dataset}/train_video_list.txt'
img_norm_cfg = dict(mean=[122.769, 116.74, 104.04], std=[68.493, 66.63, 70.321], to_bgr=False)
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len={frames}, frame_interval={interval}, num_clips={clips}, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='{crop}', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
]
optimizer = dict(type='AdamW', lr=3e-4, weight_decay=0.05)
"""


def _mmcv_config_dict():
    """A stand-in for mmcv's ConfigDict, pickled under mmcv's module name (weights-only loading refuses it)."""
    for name in ("mmcv", "mmcv.utils", "mmcv.utils.config"):
        sys.modules.setdefault(name, types.ModuleType(name))
    module = sys.modules["mmcv.utils.config"]
    if not hasattr(module, "ConfigDict"):
        cls = type("ConfigDict", (dict,), {"__module__": "mmcv.utils.config"})
        module.ConfigDict = cls
    return module.ConfigDict


def aim_state(backbone, frames: int = 8, classes: int = 5, adapter_in: bool = False, zero: bool = False,
              seed: int = 0) -> dict[str, torch.Tensor]:
    """``state_dict`` of an official AIM model on ``backbone``'s ViT: frozen weights copied, trained ones
    random (``zero``: as the official init, adapters' up-projections and temporal embedding zero)."""
    g = torch.Generator().manual_seed(seed)
    visual = {k[len("visual."):]: v.clone() for k, v in backbone.model.state_dict().items() if k.startswith("visual.")}
    visual.pop("proj")  # the official backbone deletes CLIP's projection
    width = visual["positional_embedding"].shape[1]
    layers = len({k.split(".")[2] for k in visual if k.startswith("transformer.resblocks.")})
    state = {f"backbone.{k}": v for k, v in visual.items() if not k.startswith("ln_post.")}
    hidden = width // 4
    for i in range(layers):
        for name in ("T_Adapter", "S_Adapter", "MLP_Adapter") + (("T_Adapter_in",) if adapter_in else ()):
            p = f"backbone.transformer.resblocks.{i}.{name}"
            state[f"{p}.D_fc1.weight"] = torch.randn(hidden, width, generator=g) * 0.2
            state[f"{p}.D_fc1.bias"] = torch.randn(hidden, generator=g) * 0.1
            scale = 0.0 if zero else 0.2
            state[f"{p}.D_fc2.weight"] = torch.randn(width, hidden, generator=g) * scale
            state[f"{p}.D_fc2.bias"] = torch.randn(width, generator=g) * scale
    state["backbone.temporal_embedding"] = torch.randn(1, frames, width, generator=g) * (0.0 if zero else 0.1)
    ln_w, ln_b = visual["ln_post.weight"], visual["ln_post.bias"]
    state["backbone.ln_post.weight"] = ln_w if zero else ln_w + torch.randn(width, generator=g) * 0.1
    state["backbone.ln_post.bias"] = ln_b if zero else ln_b + torch.randn(width, generator=g) * 0.1
    if classes:
        state["cls_head.fc_cls.weight"] = torch.randn(classes, width, generator=g) * 0.05
        state["cls_head.fc_cls.bias"] = torch.randn(classes, generator=g) * 0.05
    return state


def write_aim_file(path: Path, state: dict, *, frames: int = 8, classes: int = 5, scale: float = 0.5,
                   interval: int = 16, clips: int = 3, crop: str = "CenterCrop", dataset: str = "kinetics400",
                   config: bool = True, adapter_in: bool = False) -> Path:
    """An mmcv checkpoint as the official training writes it: meta (config text, versions, a numpy score in
    hook messages, an mmcv ConfigDict), state_dict, optimizer."""
    meta = {"mmcv_version": "1.3.0", "time": "Mon Jan  2 10:00:00 2023", "epoch": 30, "iter": 1000,
            "seed": None, "config_name": "vitclip_base_k400.py", "work_dir": "k400_aim",
            "env_info": "sys.platform: linux", "hook_msgs": {"best_score": np.float64(0.839)},
            "extra": _mmcv_config_dict()(lr=3e-4)}
    if config:
        meta["config"] = AIM_CONFIG.format(frames=frames, scale=scale, classes=classes, dataset=dataset,
                                           interval=interval, clips=clips, crop=crop,
                                           tadapter=", num_tadapter=2" if adapter_in else "")
    trained = [v for k, v in state.items() if "Adapter" in k or "ln_post" in k or "cls_head" in k
               or "temporal_embedding" in k]
    optimizer = {"state": {i: {"step": 10, "exp_avg": torch.zeros_like(v), "exp_avg_sq": torch.zeros_like(v)}
                           for i, v in enumerate(trained)},
                 "param_groups": [{"lr": 3e-4, "weight_decay": 0.05, "params": list(range(len(trained)))}]}
    torch.save({"meta": meta, "state_dict": dict(state), "optimizer": optimizer}, path)
    return path


def promptclip_state(backbone, frames: int = 8, layers: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """``state_dict`` of the official CLIPrompt on ``backbone``: the whole CLIP under ``clipmodel.``, a
    77-row prompt table, temporal embedding and pre-LN temporal blocks, trained tensors random."""
    g = torch.Generator().manual_seed(seed)
    clip_state = backbone.model.state_dict()
    state = {f"clipmodel.{k}": v.clone() for k, v in clip_state.items()}
    text_width = clip_state["token_embedding.weight"].shape[1]
    dim = clip_state["text_projection"].shape[1]
    context = clip_state["positional_embedding"].shape[0]
    state["embedding.weight"] = torch.randn(context, text_width, generator=g) * 0.05
    state["temporalEmbedding.weight"] = torch.randn(frames, dim, generator=g) * 0.05
    for i in range(layers):
        p = f"temporalModelling.resblocks.{i}"
        shapes = {"attn.in_proj_weight": (3 * dim, dim), "attn.in_proj_bias": (3 * dim,),
                  "attn.out_proj.weight": (dim, dim), "attn.out_proj.bias": (dim,), "ln_1.weight": (dim,),
                  "ln_1.bias": (dim,), "mlp.c_fc.weight": (4 * dim, dim), "mlp.c_fc.bias": (4 * dim,),
                  "mlp.c_proj.weight": (dim, 4 * dim), "mlp.c_proj.bias": (dim,), "ln_2.weight": (dim,),
                  "ln_2.bias": (dim,)}
        for name, shape in shapes.items():
            value = torch.randn(*shape, generator=g) * 0.1
            state[f"{p}.{name}"] = value + 1.0 if name.startswith("ln_") and name.endswith("weight") else value
    return state


def write_promptclip_file(path: Path, state: dict, *, iteration: int = 1100, command: dict | None = None) -> Path:
    """The official training script's checkpoint dict, and its ``running_command.txt`` when ``command``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": dict(state), "optimizer": {"state": {}, "param_groups": []}, "iteration": iteration},
               path)
    if command is not None:
        text = json.dumps({"command_time_stamp": "2022_07_01_10_00", **command}, indent=2)
        (path.parent / "running_command.txt").write_text(text)
    return path


# --- the official math, from the state dicts -------------------------------------------------------------------

def _ln(x, sd, p):
    return F.layer_norm(x.float(), (x.shape[-1],), sd[f"{p}.weight"], sd[f"{p}.bias"], eps=1e-5)


def _attn(x, sd, p, heads, mask=None):
    """``nn.MultiheadAttention(x, x, x)`` on sequence-first ``x [L, N, D]``, weights from ``sd``."""
    return F.multi_head_attention_forward(
        x, x, x, x.shape[-1], heads, sd[f"{p}.in_proj_weight"], sd[f"{p}.in_proj_bias"], None, None, False, 0.0,
        sd[f"{p}.out_proj.weight"], sd[f"{p}.out_proj.bias"], training=False, need_weights=False,
        attn_mask=mask)[0]


def _quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def _mlp(x, sd, p):
    return F.linear(_quick_gelu(F.linear(x, sd[f"{p}.c_fc.weight"], sd[f"{p}.c_fc.bias"])), sd[f"{p}.c_proj.weight"],
                    sd[f"{p}.c_proj.bias"])


def _adapter(x, sd, p, skip):
    h = F.linear(F.gelu(F.linear(x, sd[f"{p}.D_fc1.weight"], sd[f"{p}.D_fc1.bias"])), sd[f"{p}.D_fc2.weight"],
                 sd[f"{p}.D_fc2.bias"])
    return x + h if skip else h


def official_aim(sd: dict, frames: torch.Tensor, heads: int, scale: float, adapter_in: bool = False):
    """The official ``ViT_CLIP`` + ``I3DHead`` (eval mode) on normalised frames ``[B, T, 3, H, W]``:
    returns (head logits ``[B, C]``, per-frame ``ln_post`` class tokens ``[B, T, W]``)."""
    b, t = frames.shape[:2]
    x = F.conv2d(frames.flatten(0, 1), sd["backbone.conv1.weight"], stride=sd["backbone.conv1.weight"].shape[-1])
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = sd["backbone.class_embedding"] + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = torch.cat([cls, x], dim=1) + sd["backbone.positional_embedding"]
    n = x.shape[1]
    x = x.reshape(b, t, n, -1).permute(0, 2, 1, 3).reshape(b * n, t, -1) + sd["backbone.temporal_embedding"]
    x = x.reshape(b, n, t, -1).permute(0, 2, 1, 3).reshape(b * t, n, -1)
    x = _ln(x, sd, "backbone.ln_pre").permute(1, 0, 2)  # [n, bt, d]
    layers = len({k.split(".")[3] for k in sd if k.startswith("backbone.transformer.resblocks.")})
    for i in range(layers):
        p = f"backbone.transformer.resblocks.{i}"
        d = x.shape[-1]
        xt = x.reshape(n, b, t, d).permute(2, 1, 0, 3).reshape(t, b * n, d)  # 'n (b t) d -> t (b n) d'
        h = _ln(xt, sd, f"{p}.ln_1")
        if adapter_in:
            h = _adapter(h, sd, f"{p}.T_Adapter_in", skip=True)
        xt = _adapter(_attn(h, sd, f"{p}.attn", heads), sd, f"{p}.T_Adapter", skip=False)
        xt = xt.reshape(t, b, n, d).permute(2, 1, 0, 3).reshape(n, b * t, d)  # 't (b n) d -> n (b t) d'
        x = x + xt
        x = x + _adapter(_attn(_ln(x, sd, f"{p}.ln_1"), sd, f"{p}.attn", heads), sd, f"{p}.S_Adapter", skip=True)
        xn = _ln(x, sd, f"{p}.ln_2")
        x = x + _mlp(xn, sd, f"{p}.mlp") + scale * _adapter(xn, sd, f"{p}.MLP_Adapter", skip=False)
    x = _ln(x.permute(1, 0, 2), sd, "backbone.ln_post")[:, 0]  # [bt, d]
    tokens = x.reshape(b, t, -1)
    logits = None
    if "cls_head.fc_cls.weight" in sd:
        logits = F.linear(tokens.mean(dim=1), sd["cls_head.fc_cls.weight"], sd["cls_head.fc_cls.bias"])
    return logits, tokens


def official_promptclip_text(sd: dict, tokenizer, names: list[str], prefix: int, postfix: int, heads: int):
    """``CLIPrompt.replace_text_embedding`` + the official ``encode_text``: projected features ``[C, D]``."""
    token_embedding = sd["clipmodel.token_embedding.weight"]
    table = sd["embedding.weight"]
    rows, eots = [], []
    for name in names:
        token = tokenizer([name])[0]
        embedding = token_embedding[token]
        ind = int(token.argmax())
        text = table.clone()
        text[0] = embedding[0]
        text[prefix + 1:prefix + ind] = embedding[1:ind]
        text[prefix + ind + postfix] = embedding[ind]
        rows.append(text)
        eots.append(prefix + ind + postfix)
    x = torch.stack(rows) + sd["clipmodel.positional_embedding"]
    context = x.shape[1]
    mask = torch.full((context, context), float("-inf")).triu_(1)
    x = x.permute(1, 0, 2)
    layers = len({k.split(".")[3] for k in sd if k.startswith("clipmodel.transformer.resblocks.")})
    for i in range(layers):
        p = f"clipmodel.transformer.resblocks.{i}"
        x = x + _attn(_ln(x, sd, f"{p}.ln_1"), sd, f"{p}.attn", heads, mask)
        x = x + _mlp(_ln(x, sd, f"{p}.ln_2"), sd, f"{p}.mlp")
    x = _ln(x.permute(1, 0, 2), sd, "clipmodel.ln_final")
    return x[torch.arange(len(names)), torch.tensor(eots)] @ sd["clipmodel.text_projection"]


def official_promptclip_video(sd: dict, frame_features: torch.Tensor, heads: int):
    """The official temporal model on raw frame features ``[B, T, D]`` -> video features ``[B, D]``."""
    x = frame_features.permute(1, 0, 2) + sd["temporalEmbedding.weight"][:, None, :]
    layers = len({k.split(".")[2] for k in sd if k.startswith("temporalModelling.resblocks.")})
    for i in range(layers):
        p = f"temporalModelling.resblocks.{i}"
        x = x + _attn(_ln(x, sd, f"{p}.ln_1"), sd, f"{p}.attn", heads)
        x = x + _mlp(_ln(x, sd, f"{p}.ln_2"), sd, f"{p}.mlp")
    return x.mean(dim=0)


def official_promptclip_logits(video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``featnorm``: both sides normalised, cosine / 0.07."""
    video = video / video.norm(dim=-1, keepdim=True)
    text = text / text.norm(dim=-1, keepdim=True)
    return video @ text.t() / 0.07
