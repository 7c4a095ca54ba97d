"""Training configuration: one dataclass with every option and its default, filled from a YAML file, then
``--set key=value`` overrides, then explicit command-line flags. The resolved config is saved with the run.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import OptionValueError, UsageError


def _opt(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    # What to train, on which backbone.
    method: str = _opt("promptclip", "promptclip (prompts + temporal Transformer on cached features) or aim")
    model: str = _opt("ViT-B-16", "open_clip model name or model config JSON")
    pretrained: str = _opt("openai", "open_clip tag, local weights file, or none")
    # Training data: exactly one of data / list_file / dataset (+ root and annotations).
    data: str | None = _opt(None, "folder with one sub-folder of videos per class")
    list_file: str | None = _opt(None, "list file: 'path label_index' lines or CSV 'path,label'")
    dataset: str | None = _opt(None, "preset: k400, k600, k700, ucf101, hmdb51, ssv2")
    root: str | None = _opt(None, "video root for list files and presets")
    annotations: str | None = _opt(None, "Kinetics CSV / SSv2 JSON with the training videos")
    split: int = _opt(1, "UCF101/HMDB51 split (1-3)")
    splits_dir: str | None = _opt(None, "UCF101/HMDB51 split files folder")
    labels_json: str | None = _opt(None, "SSv2 labels.json")
    label_set: str | None = _opt(None, "label list for list files: a built-in set name")
    labels_file: str | None = _opt(None, "label list for list files: one class per line")
    val: str | None = _opt(None, "validation videos: class folder or list file (default: val_fraction split)")
    val_fraction: float = _opt(0.1, "fraction of each class held out for validation when no val is given")
    classes: str | None = _opt(None, "file of class names to train on (base->novel / open-set protocols)")
    shots: int | None = _opt(None, "K videos per class (few-shot), drawn with the seed")
    # Frames.
    frames: int = _opt(8, "frames per video")
    sampling: str = _opt("segment", "segment or dense")
    stride: int = _opt(8, "frame interval for dense sampling")
    cache_views: int = _opt(1, "PromptCLIP: random samplings cached per video (augmentation)")
    # PromptCLIP.
    n_prefix: int = _opt(16, "PromptCLIP: learned vectors before the class name")
    n_suffix: int = _opt(16, "PromptCLIP: learned vectors after the class name")
    temporal_layers: int = _opt(2, "PromptCLIP: temporal Transformer layers")
    temporal_heads: int = _opt(8, "PromptCLIP: temporal Transformer heads")
    # AIM.
    adapter_positions: str = _opt("all", "AIM: all, bottom, top or skip")
    bottleneck_ratio: float = _opt(0.25, "AIM: adapter width / model width")
    joint_scale: float = _opt(0.5, "AIM: scale s of the joint MLP adapter (1.0 for motion-heavy data)")
    drop_path: float = _opt(0.2, "AIM: drop-path rate at the last block")
    grad_checkpointing: bool = _opt(False, "AIM: recompute activations in backward to save memory")
    # Optimisation (None = the method's default, see METHOD_DEFAULTS).
    epochs: int | None = _opt(None, "training epochs")
    batch_size: int | None = _opt(None, "videos per optimiser step (before accumulation)")
    accumulate: int = _opt(1, "gradient accumulation steps (global batch = batch_size x accumulate)")
    lr: float | None = _opt(None, "AdamW learning rate")
    weight_decay: float | None = _opt(None, "AdamW weight decay (as the official recipes: all trained tensors but AIM's ln_post)")
    warmup_epochs: float | None = _opt(None, "linear warm-up length in epochs, then cosine decay")
    min_lr: float = _opt(0.0, "learning rate at the end of the cosine")
    # Runtime.
    seed: int = _opt(0, "seed for every random choice")
    device: str = _opt("auto", "auto, cpu, cuda, mps")
    precision: str = _opt("auto", "auto (fp16 autocast on GPU), fp32, fp16, bf16")
    num_workers: int | None = _opt(None, "decoding workers (default min(8, CPUs))")
    decoder: str = _opt("auto", "video decoder: auto, pyav, decord or torchcodec")
    out: str = _opt("runs/vidprompt", "run folder: checkpoints, metrics, resolved config")

    def resolved(self) -> "TrainConfig":
        """A copy with the method's defaults filled in where the user left ``None``."""
        if self.method not in METHOD_DEFAULTS:
            raise UsageError(f"unknown method '{self.method}' (choose from: {', '.join(METHOD_DEFAULTS)})")
        values = {k: v for k, v in METHOD_DEFAULTS[self.method].items() if getattr(self, k) is None}
        resolved = dataclasses.replace(self, **values)
        resolved.check()
        return resolved

    def check(self) -> None:
        """Out-of-range values as one usage error each, before anything is built or read."""
        ranges = [
            ("epochs", self.epochs is None or self.epochs >= 1, "at least 1"),
            ("batch_size", self.batch_size is None or self.batch_size >= 1, "at least 1"),
            ("accumulate", self.accumulate >= 1, "at least 1"),
            ("lr", self.lr is None or self.lr > 0, "positive"),
            ("weight_decay", self.weight_decay is None or self.weight_decay >= 0, "0 or more"),
            ("warmup_epochs", self.warmup_epochs is None or self.warmup_epochs >= 0, "0 or more"),
            ("min_lr", self.min_lr >= 0, "0 or more"),
            ("val_fraction", 0 <= self.val_fraction < 1, "at least 0 and below 1"),
            ("shots", self.shots is None or self.shots >= 1, "at least 1 (leave it out to use every video)"),
            ("cache_views", self.cache_views >= 1, "at least 1"),
            ("split", self.split in (1, 2, 3), "1, 2 or 3"),
            ("n_prefix", self.n_prefix >= 0, "0 or more"),
            ("n_suffix", self.n_suffix >= 0, "0 or more"),
            ("temporal_layers", self.temporal_layers >= 0, "0 or more"),
            ("temporal_heads", self.temporal_heads >= 1, "at least 1"),
            ("bottleneck_ratio", 0 < self.bottleneck_ratio <= 1, "above 0 and at most 1"),
            ("joint_scale", self.joint_scale >= 0, "0 or more"),
            ("drop_path", 0 <= self.drop_path < 1, "at least 0 and below 1"),
        ]
        for name, ok, expected in ranges:
            if not ok:
                raise OptionValueError(name, f"{name} must be {expected} (got {getattr(self, name)})")
        if self.split != 1 and self.dataset not in ("ucf101", "hmdb51"):
            raise OptionValueError("split", f"split {self.split} applies to dataset ucf101 or hmdb51 only")
        from .video import ViewConfig

        ViewConfig(frames=self.frames, sampling=self.sampling, stride=self.stride)  # the same bounds as classify

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# AIM: the paper's recipe, scaled to what one GPU holds (8 x 8 accumulation = the paper's batch 64).
# PromptCLIP: the official run used lr 1e-4, about constant, for ~1,100 steps of 64 (HMDB51); a user's folder
# of a few hundred clips gives a few dozen steps, so the default is a higher rate with warm-up and cosine.
# examples/promptclip_k400_b16.yaml keeps lr 1e-4 for Kinetics-size data.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "promptclip": {"epochs": 20, "batch_size": 64, "lr": 5e-4, "weight_decay": 0.01, "warmup_epochs": 1.0},
    "aim": {"epochs": 30, "batch_size": 8, "lr": 3e-4, "weight_decay": 0.05, "warmup_epochs": 2.5},
}
KEYS = tuple(f.name for f in fields(TrainConfig))


def _coerce(name: str, value: Any, source: str = "") -> Any:
    """Turn YAML or ``--set`` values into the field's type; ``none``/``null`` clears optional fields."""
    hint = typing.get_type_hints(TrainConfig)[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if isinstance(value, str) and optional and value.strip().lower() in ("none", "null", "~", ""):
        return None
    if isinstance(value, str) and not value.strip():
        raise UsageError(f"{source}{name} cannot be empty")
    try:
        if isinstance(value, (list, dict)):
            raise TypeError(value)
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise UsageError(f"{source}{name}: expected {base.__name__}, got {value!r}") from None


def _check_key(key: str, source: str) -> None:
    if key not in KEYS:
        raise UsageError(f"{source}: unknown option '{key}' (known: {', '.join(KEYS)})")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                **flags: Any) -> TrainConfig:
    """YAML file, then ``key=value`` overrides, then explicit flags (``None`` flags are ignored). A bad value
    is one usage error that says where it came from: the file, the ``--set`` or the flag."""
    from .fileio import read_text_file

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(read_text_file(path, "config file")) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"{path}: expected a mapping of option: value")
        for key, value in loaded.items():
            _check_key(str(key), str(path))
            values[key] = value if value is None else _coerce(key, value, f"{path}: ")
            sources[key] = f"{path}: "
    for item in overrides or []:
        if "=" not in item:
            raise UsageError(f"--set expects key=value, got '{item}'")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        _check_key(key, "--set")
        try:
            parsed = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            parsed = value
        values[key] = _coerce(key, parsed, f"--set {item}: ")
        sources[key] = f"--set {item}: "
    for key, value in flags.items():
        if value is not None:
            _check_key(key, "flag")
            values[key] = _coerce(key, value, f"--{key.replace('_', '-')}: ")
            sources[key] = "--"
    config = TrainConfig(**values)
    try:
        config.check()
    except OptionValueError as exc:
        source = sources.get(exc.field)
        if source is None:
            raise
        raise UsageError(f"{source}{exc}" if source != "--" else f"--{str(exc).replace('_', '-', 1)}") from None
    return config


def save_config(config: TrainConfig, path: str | Path) -> None:
    from .fileio import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
