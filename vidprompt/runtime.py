"""Device and numeric precision choices, resolved once from the user's ``device``/``precision`` (the command
line's ``--device``/``--precision``)."""

from __future__ import annotations

import contextlib

import torch

from .errors import OptionValueError, out_of_range

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    name = device.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise out_of_range("device", f"'{device}'", f"one of {', '.join(DEVICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise OptionValueError("device", "device cuda: no CUDA GPU is available here (use device cpu or auto)",
                               mentions=("device",))
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise OptionValueError("device", "device mps: Apple MPS is not available here (use device cpu or auto)",
                               mentions=("device",))
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for plain fp32 (``auto``: fp16 on GPUs, fp32 on CPU)."""
    name = precision.strip().lower()
    if name not in PRECISIONS:
        raise out_of_range("precision", f"'{precision}'", f"one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else None
    if name == "fp32":
        return None
    if name == "fp16" and device.type == "cpu":
        raise OptionValueError("precision", "precision fp16 needs a GPU; on CPU use fp32 (default) or bf16")
    return torch.float16 if name == "fp16" else torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
