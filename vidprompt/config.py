"""Training configuration: one dataclass with every option and its default, filled from a YAML file, then
``--set key=value`` overrides, then explicit command-line flags. The resolved config is saved with the run.

Each field declares all there is to know about its option once, in its metadata (see :func:`_opt`): the help
text, whether ``vidprompt train-prompts`` takes it as a flag, the values it accepts, the method whose model it
configures. The command's flags, :meth:`TrainConfig.check` and the method's keyword arguments derive from it.
The YAML keys are the field names, flat, as runs saved by any earlier version have them.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import OptionValueError, UsageError, out_of_range

# The recipes of the methods: the values of the optimisation fields the user leaves ``None``.
# AIM: the paper's recipe, scaled to what one GPU holds (8 x 8 accumulation = the paper's batch 64).
# PromptCLIP: the official run used lr 1e-4, about constant, for ~1,100 steps of 64 (HMDB51); a user's folder
# of a few hundred clips gives a few dozen steps, so the default is a higher rate with warm-up and cosine.
# examples/promptclip_k400_b16.yaml keeps lr 1e-4 for Kinetics-size data.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "promptclip": {"epochs": 20, "batch_size": 64, "lr": 5e-4, "weight_decay": 0.01, "warmup_epochs": 1.0},
    "aim": {"epochs": 30, "batch_size": 8, "lr": 3e-4, "weight_decay": 0.05, "warmup_epochs": 2.5},
}


def _opt(default: Any, help: str, *, flag: bool = True, short: str | None = None, path: bool = False,
         min: float | None = None, above: float | None = None, max: float | None = None,
         below: float | None = None, choices: tuple | None = None, hint: str | None = None,
         hparam: str | dict[str, str] | None = None, runtime: bool = False) -> Any:
    """A config field that carries its option's whole declaration, so that nothing else repeats it.

    ``flag``: ``train-prompts`` takes it as ``--name`` (``False``: YAML and ``--set`` only), ``short`` its
    one-letter alias, ``path`` whether the flag is a path. ``min``, ``above``, ``max``, ``below``, ``choices``:
    the values :meth:`TrainConfig.check` accepts (``None`` too where the field is optional); ``hint`` ends the
    error. ``hparam``: the method whose model takes the value under the field's name, or ``{method: keyword}``.
    ``runtime``: it says where a run executes, not what it computes, so a resumed run may change it.
    """
    given = {"short": short, "min": min, "above": above, "max": max, "below": below, "choices": choices,
             "hint": hint, "hparam": hparam}
    metadata = {"help": help, "flag": flag, "path": path, "runtime": runtime}
    metadata.update((key, value) for key, value in given.items() if value is not None)
    return field(default=default, metadata=metadata)


@dataclass(kw_only=True)  # by name only: the fields' order is for reading, not an interface
class TrainConfig:
    method: str = _opt("promptclip", "promptclip (learned prompts + temporal Transformer) or aim (adapters in "
                       "the image encoder).", choices=tuple(METHOD_DEFAULTS))
    # Training data: exactly one of data / list_file / dataset (+ root and annotations).
    data: str | None = _opt(None, "Folder with one sub-folder of videos per class.", path=True)
    list_file: str | None = _opt(None, "List file: CSV 'path,label' lines, or 'path label_index' lines with "
                                 "--labels-file or --label-set.", path=True)
    labels_file: str | None = _opt(None, "The class list that a list file's label indices point into, one class "
                                   "per line.", path=True)
    label_set: str | None = _opt(None, "The built-in class list that a list file's label indices point into "
                                 "(k400, ucf101, ...).")
    dataset: str | None = _opt(None, "Preset: k400, k600, k700, ucf101, hmdb51, ssv2.")
    root: str | None = _opt(None, "Video root for list files and presets.", path=True)
    annotations: str | None = _opt(None, "Kinetics CSV / SSv2 JSON with the training videos.", path=True)
    split: int = _opt(1, "UCF101/HMDB51 split (1-3).", choices=(1, 2, 3))
    splits_dir: str | None = _opt(None, "UCF101/HMDB51 split files folder.", path=True)
    labels_json: str | None = _opt(None, "SSv2 labels.json.", flag=False)
    val: str | None = _opt(None, "Validation videos: class folder or list file (default: a val_fraction "
                           "split).", path=True)
    val_fraction: float = _opt(0.1, "Fraction of each class held out for validation when no val is given.",
                               flag=False, min=0, below=1)
    classes: str | None = _opt(None, "Train on the classes listed in this file (base-to-novel / open-set "
                               "protocols).", path=True)
    shots: int | None = _opt(None, "K videos per class (few-shot), drawn with the seed.", min=1,
                             hint="leave it out to use every video")
    # Backbone.
    model: str = _opt("ViT-B-16", "open_clip model name (e.g. ViT-B-16) or path to an open_clip model config "
                      "JSON.", short="-m")
    pretrained: str = _opt("openai", "open_clip pretrained tag, a local weights file, or 'none' (random "
                           "weights).", short="-p")
    # Frames (the model of each method takes the count, under its own name).
    frames: int = _opt(8, "Frames per video.", short="-f",
                       hparam={"promptclip": "max_frames", "aim": "num_frames"})
    sampling: str = _opt("segment", "segment or dense.")
    stride: int = _opt(8, "Frame interval for dense sampling.")
    # PromptCLIP.
    cache_views: int = _opt(1, "PromptCLIP: random samplings cached per video (augmentation).", min=1)
    n_prefix: int = _opt(16, "PromptCLIP: learned vectors before the class name.", flag=False, min=0,
                         hparam="promptclip")
    n_suffix: int = _opt(16, "PromptCLIP: learned vectors after the class name.", flag=False, min=0,
                         hparam="promptclip")
    temporal_layers: int = _opt(2, "PromptCLIP: temporal Transformer layers.", flag=False, min=0,
                                hparam="promptclip")
    temporal_heads: int = _opt(8, "PromptCLIP: temporal Transformer heads.", flag=False, min=1,
                               hparam="promptclip")
    # AIM.
    adapter_positions: str = _opt("all", "AIM: all, bottom, top or skip.", hparam="aim",
                                  choices=("all", "bottom", "top", "skip"))  # methods.aim.ADAPTER_POSITIONS
    bottleneck_ratio: float = _opt(0.25, "AIM: adapter width / model width.", flag=False, above=0, max=1,
                                   hparam="aim")
    joint_scale: float = _opt(0.5, "AIM: scale s of the joint MLP adapter (1.0 for motion-heavy data).",
                              flag=False, min=0, hparam="aim")
    drop_path: float = _opt(0.2, "AIM: drop-path rate at the last block.", flag=False, min=0, below=1,
                            hparam="aim")
    grad_checkpointing: bool = _opt(False, "AIM: recompute activations in backward to save memory.",
                                    hparam="aim")
    # Optimisation (None = the method's recipe, see METHOD_DEFAULTS).
    accumulate: int = _opt(1, "Gradient accumulation steps (global batch = batch size x accumulate).", min=1)
    epochs: int | None = _opt(None, "Training epochs.", min=1)
    batch_size: int | None = _opt(None, "Videos per optimiser step and process (before accumulation).",
                                  short="-b", min=1)
    lr: float | None = _opt(None, "AdamW learning rate, then a cosine decay.", above=0)
    weight_decay: float | None = _opt(None, "AdamW weight decay (as the official recipes: all trained tensors "
                                      "but AIM's ln_post).", flag=False, min=0)
    warmup_epochs: float | None = _opt(None, "Linear warm-up length in epochs, then cosine decay.", flag=False,
                                       min=0)
    min_lr: float = _opt(0.0, "Learning rate at the end of the cosine.", flag=False, min=0)
    # Runtime.
    device: str = _opt("auto", "auto, cpu, cuda, mps.", runtime=True)
    precision: str = _opt("auto", "auto (fp16 autocast on GPU), fp32, fp16, bf16.")
    num_workers: int | None = _opt(None, "Decoding worker processes (default: min(8, CPUs); 0 decodes "
                                   "in-process).", short="-j", runtime=True)
    decoder: str = _opt("auto", "Video decoder: auto, pyav, decord or torchcodec.", runtime=True)
    seed: int = _opt(0, "Seed for every random choice.")
    out: str = _opt("runs/vidprompt", "Run folder: checkpoints, metrics, the resolved config.", short="-o",
                    path=True)

    def resolved(self) -> "TrainConfig":
        """A copy with the method's recipe filled in where the user left ``None``, checked."""
        recipe = METHOD_DEFAULTS.get(self.method, {})  # an unknown method fails the check
        resolved = dataclasses.replace(self, **{k: v for k, v in recipe.items() if getattr(self, k) is None})
        resolved.check()
        return resolved

    def check(self) -> None:
        """Out-of-range values as one usage error each (the bounds each field declares), before anything is
        built or read."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and not field_type(f.name)[1] and not f.metadata["runtime"]:
                # a YAML null where a value is needed (the runtime fields of older runs were saved as null: auto)
                raise OptionValueError(f.name, f"{f.name} needs a value (got null)")
            expected = _expected(f.metadata)
            if expected is not None and not _accepts(f, value):
                raise out_of_range(f.name, value, expected)
        if self.split != 1 and self.dataset not in ("ucf101", "hmdb51"):
            raise OptionValueError("split", f"split {self.split} applies to dataset ucf101 or hmdb51 only")
        from .video import ViewConfig

        ViewConfig(frames=self.frames, sampling=self.sampling, stride=self.stride)  # the same bounds as classify

    def method_options(self) -> dict[str, Any]:
        """The keyword arguments of ``build_method(self.method, ...)``: the fields declared as ``hparam`` of
        this method, under the names its model takes."""
        options = {}
        for f in fields(self):
            spec = f.metadata.get("hparam")
            names = {spec: f.name} if isinstance(spec, str) else spec or {}
            if self.method in names:
                options[names[self.method]] = getattr(self, f.name)
        return options

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


KEYS = tuple(f.name for f in fields(TrainConfig))
# What a resumed run may change: where it executes, not what it computes (every decoder gives the same frames:
# tests/test_decoders.py).
RESUME_OVERRIDES = tuple(f.name for f in fields(TrainConfig) if f.metadata["runtime"])


def flag_fields() -> list[dataclasses.Field]:
    """The fields that ``vidprompt train-prompts`` takes as flags, in declaration order."""
    return [f for f in fields(TrainConfig) if f.metadata["flag"]]


@functools.lru_cache(maxsize=None)
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def field_type(name: str) -> tuple[type, bool]:
    """The type of a field's values and whether it may also be ``None``."""
    hint = _hints()[name]
    args = typing.get_args(hint)
    return next((a for a in args if a is not type(None)), hint), type(None) in args


def _expected(meta: typing.Mapping[str, Any]) -> str | None:
    """What a field's bounds accept, in the words of the error (``at least 1``, ``above 0 and at most 1``)."""
    if "choices" in meta:
        words = [str(choice) for choice in meta["choices"]]
        text = " or ".join(filter(None, [", ".join(words[:-1]), words[-1]]))
    else:
        low = f"at least {meta['min']}" if "min" in meta else f"above {meta['above']}" if "above" in meta else ""
        high = f"at most {meta['max']}" if "max" in meta else f"below {meta['below']}" if "below" in meta else ""
        if not (low or high):
            return None
        alone = {"at least 0": "0 or more", "above 0": "positive"}
        text = f"{low} and {high}" if low and high else alone.get(low, low) or high
    return f"{text} ({meta['hint']})" if "hint" in meta else text


def _accepts(f: dataclasses.Field, value: Any) -> bool:
    if value is None:
        return field_type(f.name)[1]
    meta = f.metadata
    if "choices" in meta:
        return value in meta["choices"]
    return (("min" not in meta or value >= meta["min"]) and ("above" not in meta or value > meta["above"])
            and ("max" not in meta or value <= meta["max"]) and ("below" not in meta or value < meta["below"]))


def _coerce(name: str, value: Any) -> Any:
    """Turn YAML or ``--set`` values into the field's type; ``none``/``null`` clears optional fields. A YAML
    null is kept as it is (runs saved with one resume as they started; :meth:`TrainConfig.check` refuses it
    where a field needs a value)."""
    base, optional = field_type(name)
    if value is None or isinstance(value, str) and optional and value.strip().lower() in ("none", "null", "~", ""):
        return None
    if isinstance(value, str) and not value.strip():
        raise OptionValueError(name, f"{name} cannot be empty")
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
        raise OptionValueError(name, f"{name}: expected {base.__name__}, got {value!r}") from None


def _located(exc: OptionValueError, source: str) -> UsageError:
    """A bad value's error, prefixed by where the value came from (``c.yaml: ``, ``--set k=v: ``). Values
    passed as keyword arguments have no prefix: the error names the parameter, and the command line shows
    the flag instead (:meth:`OptionValueError.for_flags`)."""
    return UsageError(f"{source}{exc}") if source else exc


def _take(values: dict, sources: dict, key: str, value: Any, source: str) -> None:
    if key not in KEYS:
        raise UsageError(f"{source}unknown option '{key}' (known: {', '.join(KEYS)})")
    try:
        values[key] = _coerce(key, value)
    except OptionValueError as exc:
        raise _located(exc, source) from None
    sources[key] = source


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                **flags: Any) -> TrainConfig:
    """YAML file, then ``key=value`` overrides, then keyword arguments (``None`` ones are ignored). A bad value
    is one usage error that says where it came from: the file, the ``--set`` or the keyword argument."""
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
            _take(values, sources, str(key), value, f"{path}: ")
    for item in overrides or []:
        if "=" not in item:
            raise UsageError(f"--set expects key=value, got '{item}'")
        key, value = item.split("=", 1)
        try:
            parsed = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            parsed = value
        _take(values, sources, key.strip().replace("-", "_"), parsed, f"--set {item}: ")
    for key, value in flags.items():
        if value is not None:
            _take(values, sources, key, value, "")
    config = TrainConfig(**values)
    try:
        config.check()
    except OptionValueError as exc:
        raise _located(exc, sources.get(exc.field, "")) from None
    return config


def save_config(config: TrainConfig, path: str | Path) -> None:
    from .fileio import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
