"""The one way to get a frozen open_clip model: from a model name or config JSON, and a tag, file or ``none``.

Everything downstream (transforms, methods, caches, checkpoints) reads what it needs from the returned
:class:`Backbone`, so a model is never paired with the wrong preprocessing or tokenizer.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import socket
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
    quick_gelu: bool = False  # built with QuickGELU (OpenAI's activation) whatever the config says

    @property
    def embed_dim(self) -> int:
        """Width of the shared image-text embedding space."""
        return int(self.model.visual.output_dim)

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
        _register_config_file(path)
        return path.stem, str(path.resolve())
    name = model.replace("/", "-")
    if name not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if name.lower() in m.lower()][:8]
        hint = f" (did you mean: {', '.join(close)})" if close else " (see `open_clip.list_models()`)"
        raise UsageError(f"unknown model '{model}'{hint}")
    return name, None


def _is_hub(model: str) -> bool:
    from .hub import is_hub_ref

    return is_hub_ref(model)


def _from_hub(model: str) -> tuple[str, str | None, dict]:
    """``hf-hub:org/repo`` -> (its model config as a local JSON file named ``org--repo``, its weights file or None,
    its preprocessing config)."""
    from .fileio import atomic_write_json, cache_dir
    from .hub import hub_model

    found = hub_model(model)
    path = cache_dir() / "model_configs" / f"{found.ref.repo_id.replace('/', '--')}.json"
    if read_model_config(path) != found.model_cfg:
        atomic_write_json(path, found.model_cfg)
    return str(path), None if found.weights is None else str(found.weights), found.preprocess_cfg


def is_random_weights(pretrained: str | None) -> bool:
    """``pretrained`` asks for the fixed-seed random weights (``none``, empty or ``None``)."""
    return pretrained in (None, "", RANDOM_WEIGHTS)


def read_model_config(path: Path) -> dict | None:
    """An open_clip config file's JSON object, or ``None`` if it is unreadable or not an object."""
    try:
        cfg = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def _register_config_file(path: Path) -> None:
    """Register an open_clip config JSON under its file stem.

    open_clip re-reads every registered file on each registration, so one unreadable file (deleted, or
    edited into invalid JSON) would break all later ones: such entries are dropped first, and the file being
    registered goes last so that its content wins over an older file with the same stem.
    """
    import open_clip
    from open_clip import factory

    cfg = read_model_config(path)
    if cfg is None:
        raise UsageError(f"cannot read model config {path}: not a JSON object")
    if not all(key in cfg for key in ("embed_dim", "vision_cfg", "text_cfg")):
        raise UsageError(f"{path} is not an open_clip model config (needs embed_dim, vision_cfg, text_cfg)")
    resolved = path.resolve()
    factory._MODEL_CONFIG_PATHS[:] = [
        p for p in factory._MODEL_CONFIG_PATHS
        if Path(p).is_dir() or (Path(p).resolve() != resolved and read_model_config(Path(p)) is not None)]
    open_clip.add_model_config(resolved)


def _file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"


def _cached_tag_weights(cfg: dict) -> str | None:
    """The local file of a tag's weights if a previous download left it in the cache, else ``None``."""
    from open_clip import pretrained as oc_pretrained

    if cfg.get("file"):
        return cfg["file"] if os.path.isfile(cfg["file"]) else None
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)
        names = [filename] if filename else [oc_pretrained.HF_SAFE_WEIGHTS_NAME, oc_pretrained.HF_WEIGHTS_NAME]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        for name in names:
            found = try_to_load_from_cache(repo_id, name)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url = cfg.get("url", "")
    if url:  # legacy direct downloads land in ~/.cache/clip
        legacy = Path("~/.cache/clip").expanduser() / os.path.basename(url)
        if legacy.is_file():
            return str(legacy)
    return None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe, so a machine without network fails in seconds instead of retrying for minutes."""
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def _fetch_tagged_weights(name: str, tag: str) -> tuple[str, dict]:
    """Local path of a known tag's weights: from the cache, else downloaded; fail fast when impossible."""
    from open_clip import pretrained as oc_pretrained

    cfg = oc_pretrained.get_pretrained_cfg(name, tag)
    local = _cached_tag_weights(cfg)
    if local is not None:
        return local, cfg
    hint = ("set HF_HOME to a cache that has them, or pass a local weights file as pretrained "
            "(--pretrained /path/to/weights)")
    if _offline():
        raise VidpromptError(f"weights for {name}/{tag} are not in the local cache and HF_HUB_OFFLINE is set; "
                             f"run once with network access, {hint}")
    if not _hub_reachable():
        raise VidpromptError(f"weights for {name}/{tag} are not in the local cache and the Hugging Face hub "
                             f"cannot be reached; run once with network access, {hint}")
    log.info("downloading %s/%s weights (once; cached for later runs)", name, tag)
    try:
        with _quiet_open_clip():
            return oc_pretrained.download_pretrained(cfg), cfg
    except Exception as exc:
        raise VidpromptError(f"download of {name}/{tag} weights failed ({type(exc).__name__}); {hint}") from None


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
    quick_gelu: bool = False,
) -> Backbone:
    """Build a frozen open_clip model.

    ``model``: an open_clip model name (``ViT-B-16``) or a path to an open_clip model config JSON (registered
    under its file stem). ``pretrained``: an open_clip tag (``openai``, ``laion2b_s34b_b88k``), a local
    weights file, or ``none``/``None`` for random weights drawn from a fixed seed. ``quick_gelu`` forces
    OpenAI's QuickGELU activation, which OpenAI tags get anyway: a checkpoint records the activation, so a
    local copy of those weights rebuilds the network it was trained on.
    """
    import open_clip

    tag_cfg: dict = {}
    if _is_hub(model):  # the repository's config, registered as a file; its weights unless others are asked for
        model, hub_weights, tag_cfg = _from_hub(model)
        if pretrained in (None, DEFAULT_PRETRAINED) and hub_weights is not None:
            pretrained = hub_weights
    name, config_path = _register_model(model)
    pretrained = RANDOM_WEIGHTS if is_random_weights(pretrained) else str(pretrained)
    kwargs: dict[str, Any] = {}
    if pretrained == RANDOM_WEIGHTS:
        identity_weights = f"random-seed{RANDOM_WEIGHTS_SEED}"
        weights_arg = None
    elif Path(pretrained).expanduser().is_file():
        weights = Path(pretrained).expanduser().resolve()
        pretrained = str(weights)
        identity_weights = _file_identity(weights)
        weights_arg = pretrained
    elif pretrained.lower() in [t.lower() for t in open_clip.list_pretrained_tags_by_model(name)]:
        weights_file, tag_cfg = _fetch_tagged_weights(name, pretrained)
        # OpenAI weights were trained with QuickGELU; build the matching activation whatever the name.
        if tag_cfg.get("quick_gelu", False):
            kwargs["force_quick_gelu"] = True
        identity_weights = f"tag:{pretrained}"
        weights_arg = weights_file  # load the file directly: no hub round-trip once it is cached
    elif pretrained.endswith(_WEIGHT_SUFFIXES) or os.sep in pretrained:
        raise UsageError(f"weights file not found: {pretrained}")
    else:
        tags = open_clip.list_pretrained_tags_by_model(name)
        known = ", ".join(tags) if tags else "none for this model"
        raise UsageError(f"unknown pretrained tag '{pretrained}' for {name} (known tags: {known}; "
                         f"or give a weights file, or 'none' for random weights)")

    if quick_gelu:
        kwargs["force_quick_gelu"] = True
    try:
        with _quiet_open_clip(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            clip = open_clip.create_model(name, pretrained=weights_arg, device="cpu", **kwargs)
    except VidpromptError:
        raise
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VidpromptError(f"cannot build {name} with weights '{pretrained}': {message}") from None

    if tag_cfg:  # a tag may carry its own mean/std/size: keep them with the model, as open_clip does
        from open_clip.model import get_model_preprocess_cfg, set_model_preprocess_cfg
        from open_clip.transform import merge_preprocess_dict

        set_model_preprocess_cfg(clip, merge_preprocess_dict(get_model_preprocess_cfg(clip), tag_cfg))
    clip.eval()
    clip.requires_grad_(False)
    clip.to(device)
    preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(clip))
    tokenizer = open_clip.get_tokenizer(name)
    config_tag = ""
    if config_path is not None:
        # the content, not the bytes: a checkpoint's copy of the config, written anew, is the same model
        canonical = json.dumps(read_model_config(Path(config_path)), sort_keys=True)
        config_tag = ":" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
    from open_clip.transformer import QuickGELU

    uses_quick_gelu = any(isinstance(module, QuickGELU) for module in clip.modules())
    identity = f"{name}{config_tag}|{identity_weights}|qg={int(uses_quick_gelu)}"
    return Backbone(model=clip, name=name, pretrained=pretrained, preprocess_cfg=preprocess_cfg,
                    tokenizer=tokenizer, config_path=config_path, identity=identity, quick_gelu=uses_quick_gelu)
