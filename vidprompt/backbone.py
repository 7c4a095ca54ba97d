"""The one way to get a frozen open_clip model: from a model name or config JSON, and a tag, file or ``none``.

Everything downstream (transforms, methods, caches, checkpoints) reads what it needs from the returned
:class:`Backbone`, so a model is never paired with the wrong preprocessing or tokenizer.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import UsageError, VidpromptError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ViT-B-16"
DEFAULT_PRETRAINED = "openai"
RANDOM_WEIGHTS = "none"
# Random weights come from this seed in every process, so a checkpoint trained on a random-weight backbone
# (tests, benchmarks) sees the same backbone when it is loaded elsewhere.
RANDOM_WEIGHTS_SEED = 0
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


@dataclass
class Backbone:
    """A frozen open_clip CLIP model in eval mode with its preprocessing config and tokenizer."""

    model: Any  # open_clip.CLIP
    name: str  # open_clip model name (a config JSON's stem)
    pretrained: str  # tag, absolute weights path, or "none"
    preprocess_cfg: dict
    tokenizer: Any
    config_path: str | None = None  # the model config JSON, when the model came from a file
    identity: str = field(default="")  # stable string naming model + weights, for cache keys

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if self._has_text_projection else int(
            self.model.visual.output_dim)

    @property
    def _has_text_projection(self) -> bool:
        proj = getattr(self.model, "text_projection", None)
        return isinstance(proj, torch.Tensor)

    @property
    def context_length(self) -> int:
        return int(self.model.context_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> "Backbone":
        self.model.to(device)
        return self


def _register_model(model: str) -> tuple[str, str | None]:
    """Model name or path to an open_clip config JSON -> (registered name, config path)."""
    import open_clip

    path = Path(model).expanduser()
    if model.endswith(".json") or path.is_file():
        if not path.is_file():
            raise UsageError(f"model config not found: {model}")
        try:
            open_clip.add_model_config(path)
        except Exception as exc:  # malformed JSON, unreadable file
            raise UsageError(f"cannot read model config {model}: {exc}") from None
        if path.stem not in open_clip.list_models():
            raise UsageError(f"{model} is not an open_clip model config (needs embed_dim, vision_cfg, text_cfg)")
        return path.stem, str(path.resolve())
    name = model.replace("/", "-")
    if name not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if name.lower() in m.lower()][:8]
        hint = f" (did you mean: {', '.join(close)})" if close else " (see `open_clip.list_models()`)"
        raise UsageError(f"unknown model '{model}'{hint}")
    return name, None


def _file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"


def _fetch_tagged_weights(name: str, tag: str) -> dict:
    """Make sure the weights of a known tag are in the local cache (download if allowed), fail fast if not."""
    from open_clip import pretrained as oc_pretrained

    cfg = oc_pretrained.get_pretrained_cfg(name, tag)
    try:
        with _quiet_open_clip():
            oc_pretrained.download_pretrained(cfg)
    except Exception as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        why = "offline (HF_HUB_OFFLINE is set)" if offline else f"{type(exc).__name__}"
        raise VidpromptError(
            f"weights for {name}/{tag} are not in the local cache and could not be downloaded ({why}); "
            f"run once with network access, set HF_HOME to a cache that has them, "
            f"or pass a local weights file: --pretrained /path/to/weights"
        ) from None
    return cfg


@contextlib.contextmanager
def _quiet_open_clip():
    """open_clip logs and warns loudly about things we report ourselves; keep stderr to our own lines."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        logger.setLevel(level)


def build_backbone(
    model: str = DEFAULT_MODEL,
    pretrained: str | None = DEFAULT_PRETRAINED,
    device: torch.device | str = "cpu",
) -> Backbone:
    """Build a frozen open_clip model.

    ``model``: an open_clip model name (``ViT-B-16``) or a path to an open_clip model config JSON (registered
    under its file stem). ``pretrained``: an open_clip tag (``openai``, ``laion2b_s34b_b88k``), a local
    weights file, or ``none``/``None`` for random weights drawn from a fixed seed.
    """
    import open_clip

    name, config_path = _register_model(model)
    pretrained = RANDOM_WEIGHTS if pretrained in (None, "", RANDOM_WEIGHTS) else str(pretrained)
    kwargs: dict[str, Any] = {}
    if pretrained == RANDOM_WEIGHTS:
        identity_weights = f"random-seed{RANDOM_WEIGHTS_SEED}"
        oc_pretrained = None
    elif Path(pretrained).expanduser().is_file():
        weights = Path(pretrained).expanduser().resolve()
        pretrained = str(weights)
        identity_weights = _file_identity(weights)
        oc_pretrained = pretrained
    elif pretrained.lower() in [t.lower() for t in open_clip.list_pretrained_tags_by_model(name)]:
        cfg = _fetch_tagged_weights(name, pretrained)
        # OpenAI weights were trained with QuickGELU; build the matching activation whatever the name.
        if cfg.get("quick_gelu", False):
            kwargs["force_quick_gelu"] = True
        identity_weights = f"tag:{pretrained}"
        oc_pretrained = pretrained
    elif pretrained.endswith(_WEIGHT_SUFFIXES) or os.sep in pretrained:
        raise UsageError(f"weights file not found: {pretrained}")
    else:
        tags = open_clip.list_pretrained_tags_by_model(name)
        known = ", ".join(tags) if tags else "none for this model"
        raise UsageError(f"unknown pretrained tag '{pretrained}' for {name} (known tags: {known}; "
                         f"or give a weights file, or 'none' for random weights)")

    try:
        with _quiet_open_clip(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            clip = open_clip.create_model(name, pretrained=oc_pretrained, device="cpu", **kwargs)
    except VidpromptError:
        raise
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VidpromptError(f"cannot build {name} with weights '{pretrained}': {message}") from None

    clip.eval()
    clip.requires_grad_(False)
    clip.to(device)
    preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(clip))
    tokenizer = open_clip.get_tokenizer(name)
    config_tag = ""
    if config_path is not None:
        config_tag = ":" + hashlib.sha256(Path(config_path).read_bytes()).hexdigest()[:16]
    identity = f"{name}{config_tag}|{identity_weights}|qg={int(bool(kwargs.get('force_quick_gelu')))}"
    return Backbone(model=clip, name=name, pretrained=pretrained, preprocess_cfg=preprocess_cfg,
                    tokenizer=tokenizer, config_path=config_path, identity=identity)
