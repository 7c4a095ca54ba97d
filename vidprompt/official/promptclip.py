"""The official PromptCLIP checkpoints (ju-chen/Efficient-Prompt) as vidprompt PromptCLIP models.

``state_dict`` holds the whole frozen CLIP under ``clipmodel.`` (OpenAI naming), ``embedding.weight`` (ONE
table of one learned row per token position, 77 rows), ``temporalEmbedding.weight`` ``[frames, D]`` and
``temporalModelling.resblocks.N.*`` (pre-LN blocks: ``attn``, ``ln_1``, ``mlp.c_fc``/``mlp.c_proj`` with
QuickGELU, ``ln_2``). The model ran on raw projected frame features. The prompt lengths are not stored: they
come from the options, else from the run folder the official code wrote (``running_command.txt``, or the
``prompt_N+X+M`` in its name) when the file still sits in it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..errors import OptionValueError, UsageError, VidpromptError, out_of_range
from . import DEFAULT_PRETRAINED, PROMPTCLIP_FORMAT, ConvertOptions, Converted, dataset_hint, infer_vit_name

_BLOCK_PARTS = {"attn.in_proj_weight": "self_attn.in_proj_weight", "attn.in_proj_bias": "self_attn.in_proj_bias",
                "attn.out_proj.weight": "self_attn.out_proj.weight", "attn.out_proj.bias": "self_attn.out_proj.bias",
                "ln_1.weight": "norm1.weight", "ln_1.bias": "norm1.bias", "mlp.c_fc.weight": "linear1.weight",
                "mlp.c_fc.bias": "linear1.bias", "mlp.c_proj.weight": "linear2.weight",
                "mlp.c_proj.bias": "linear2.bias", "ln_2.weight": "norm2.weight", "ln_2.bias": "norm2.bias"}
_BLOCK_KEY = re.compile(r"temporalModelling\.resblocks\.(\d+)\.(.+)")
_FOLDER_PROMPTS = re.compile(r"prompt_(\d+)\+X\+(\d+)")
DEFAULT_HEADS = 8  # the official README's --tfm_heads


def convert_promptclip(path: Path, state: dict[str, torch.Tensor], top: dict, options: ConvertOptions
                       ) -> Converted:
    command = _run_command(path)
    notes: list[str] = []
    tensors, frozen = _split(path, state)
    layers = len({name.split(".")[2] for name in tensors if name.startswith("temporal.blocks.")})
    if command.get("temporal", 1) == 0 or layers == 0:
        # --temporal 0: a plain mean of the raw frame features; the stored embedding is never added.
        tensors["temporal.position"] = torch.zeros_like(tensors["temporal.position"])
        layers = 0
    if command.get("featnorm", 1) == 0:
        raise VidpromptError(f"{path}: trained with --featnorm 0 (unnormalised dot-product logits), which "
                             "vidprompt does not reproduce")
    prefix, suffix = _prompt_lengths(path, options, command, notes)
    dim = tensors["temporal.position"].shape[-1]
    heads = options.temporal_heads
    if heads is not None:  # the caller's: an error on temporal_heads (the command line's --temporal-heads)
        if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
            raise out_of_range("temporal_heads", heads, "at least 1")
        if dim % heads:
            raise OptionValueError("temporal_heads", f"{path}: temporal_heads must divide the embedding width "
                                                     f"{dim} (got {heads})")
    else:
        heads, source = command.get("tfm_heads"), f"{path.parent / 'running_command.txt'}"
        if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
            heads, source = DEFAULT_HEADS, f"the default {DEFAULT_HEADS} heads (give --temporal-heads)"
            if layers:
                notes.append(f"temporal heads not stored: {heads} (the official default; --temporal-heads to "
                             "change)")
        if layers and dim % heads:
            raise VidpromptError(f"{path}: {source}: {heads} temporal heads do not divide the embedding width {dim}")
    frames = tensors["temporal.position"].shape[0]
    hparams = {"n_prefix": prefix, "n_suffix": suffix, "temporal_layers": layers, "temporal_heads": heads,
               "max_frames": frames, "temperature": 0.07, "prompt_layout": "official",
               "temporal_activation": "quick_gelu", "frame_norm": False}

    model = options.model
    if model is None:
        conv = frozen.get("visual.conv1.weight")
        position = frozen.get("visual.positional_embedding")
        layers_v = len({k.split(".")[3] for k in frozen if k.startswith("visual.transformer.resblocks.")})
        if conv is None or position is None:
            raise VidpromptError(f"{path}: damaged PromptCLIP checkpoint (no clipmodel.visual tensors)")
        model = infer_vit_name(path, conv.shape[0], layers_v, conv.shape[-1], position.shape[0])
    hint = dataset_hint(str(command.get("dataset", "")))
    classes = list(options.classes or [])
    if not classes and hint is not None:
        from ..labels import load_label_set

        classes = load_label_set(hint)
        notes.append(f"default labels: the built-in {hint} set (the official class list spells some names "
                     "differently; give the exact ones with --labels-file)")
    view = {"frames": frames, "sampling": "segment", "clips": _positive(command.get("valEnsemble"), 5), "crops": 1,
            **options.view}
    iteration = top.get("iteration")
    return Converted(format=PROMPTCLIP_FORMAT, method="promptclip", model=model,
                     pretrained=options.pretrained or DEFAULT_PRETRAINED, hparams=hparams, view=view,
                     classes=classes, tensors=tensors, frozen=frozen, notes=notes,
                     details={"iteration": iteration} if isinstance(iteration, int) else {})


def _split(path: Path, state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    tensors, frozen, unknown = {}, {}, []
    for name, tensor in state.items():
        if name.startswith("clipmodel."):
            frozen[name[len("clipmodel."):]] = tensor
        elif name == "embedding.weight":
            tensors["text_encoder.table"] = tensor
        elif name == "temporalEmbedding.weight":
            tensors["temporal.position"] = tensor
        elif (match := _BLOCK_KEY.fullmatch(name)) is not None and match.group(2) in _BLOCK_PARTS:
            tensors[f"temporal.blocks.{match.group(1)}.{_BLOCK_PARTS[match.group(2)]}"] = tensor
        else:
            unknown.append(name)
    if unknown:
        raise VidpromptError(f"{path}: unexpected tensors for a PromptCLIP checkpoint: "
                             f"{', '.join(sorted(unknown)[:3])}")
    if "temporal.position" not in tensors:
        raise VidpromptError(f"{path}: damaged PromptCLIP checkpoint (no temporalEmbedding.weight)")
    for block in {name.split(".")[2] for name in tensors if name.startswith("temporal.blocks.")}:
        for part in _BLOCK_PARTS.values():
            if f"temporal.blocks.{block}.{part}" not in tensors:
                raise VidpromptError(f"{path}: damaged PromptCLIP checkpoint (temporal block {block} has no "
                                     f"{part})")
    return tensors, frozen


def _run_command(path: Path) -> dict:
    """The arguments the official code saved beside its checkpoints (``running_command.txt``: one JSON object
    per run, training first), or ``{}``."""
    try:
        text = (path.parent / "running_command.txt").read_text("utf-8")
        command, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except (OSError, ValueError):
        return {}
    return command if isinstance(command, dict) else {}


def _prompt_lengths(path: Path, options: ConvertOptions, command: dict, notes: list[str]) -> tuple[int, int]:
    if options.n_prefix is not None and options.n_suffix is not None:
        return options.n_prefix, options.n_suffix
    if isinstance(command.get("prefix"), int) and isinstance(command.get("postfix"), int):
        notes.append(f"prompt lengths {command['prefix']}+{command['postfix']} from "
                     f"{path.parent / 'running_command.txt'}")
        return options.n_prefix if options.n_prefix is not None else command["prefix"], \
            options.n_suffix if options.n_suffix is not None else command["postfix"]
    match = _FOLDER_PROMPTS.search(path.parent.name)
    if match is not None:
        notes.append(f"prompt lengths {match.group(1)}+{match.group(2)} from the run folder's name")
        return options.n_prefix if options.n_prefix is not None else int(match.group(1)), \
            options.n_suffix if options.n_suffix is not None else int(match.group(2))
    raise UsageError(f"{path}: an official PromptCLIP file does not store its prompt lengths; give them with "
                     "--prefix N --suffix M (the official README trains 16 and 16)")


def _positive(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
