"""Checkpoints on the Hugging Face Hub: ``hf-hub:org/repo`` (or ``hf-hub:org/repo/file.safetensors``, with an
optional ``@revision``) names a vidprompt checkpoint the way open_clip names models.

Files come through ``huggingface_hub``: its cache (``HF_HOME``), its offline mode (``HF_HUB_OFFLINE=1``) and its
token. A repository written by ``vidprompt push`` holds ``model.safetensors`` and ``vidprompt.json``, whose
``sha256`` the downloaded checkpoint must match, so a pulled checkpoint is byte for byte the one published.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError, VidpromptError

PREFIX = "hf-hub:"
CHECKPOINT_FILE = "model.safetensors"
RECORD_FILE = "vidprompt.json"  # what was published: checkpoint file name and its SHA-256


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    filename: str = CHECKPOINT_FILE
    revision: str | None = None

    def __str__(self) -> str:
        default = self.filename == CHECKPOINT_FILE
        return f"{PREFIX}{self.repo_id}{'' if default else '/' + self.filename}" + \
            (f"@{self.revision}" if self.revision else "")


def is_hub_ref(value: object) -> bool:
    return isinstance(value, (str, os.PathLike)) and os.fspath(value).startswith(PREFIX)


def parse_ref(value: str | os.PathLike) -> HubRef:
    """``hf-hub:org/repo[/path/in/repo.safetensors][@revision]`` -> its parts; a malformed one is a usage error."""
    text = os.fspath(value)[len(PREFIX):]
    text, _, revision = text.partition("@")
    parts = [p for p in text.split("/")]
    if len(parts) < 2 or not all(parts) or any(p in (".", "..") for p in parts):
        raise UsageError(f"{os.fspath(value)}: expected hf-hub:ORG/REPO or hf-hub:ORG/REPO/FILE.safetensors")
    filename = "/".join(parts[2:]) or CHECKPOINT_FILE
    return HubRef("/".join(parts[:2]), filename, revision or None)


def local_checkpoint(value: str | os.PathLike) -> Path:
    """The local path of a checkpoint: itself, or for an ``hf-hub:`` name the file in the Hugging Face cache
    (downloaded if needed and allowed), checked against the published SHA-256 when the repository records one."""
    if not is_hub_ref(value):
        return Path(value)
    ref = parse_ref(value)
    path = Path(_download(ref, ref.filename))
    expected = _published_sha256(ref)
    if expected is not None and sha256_of(path) != expected:
        raise VidpromptError(f"{ref}: the downloaded {ref.filename} does not match the SHA-256 its repository "
                             f"publishes in {RECORD_FILE}; delete it from the Hugging Face cache and try again")
    return path


# open_clip's own file names in a model repository (open_clip.pretrained.HF_*_NAME)
MODEL_CONFIG_FILE = "open_clip_config.json"
MODEL_WEIGHTS_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class HubModel:
    """An open_clip model repository in the local cache: its model config (``model_cfg``), the preprocessing it
    asks for, and its weights file (None when it has none)."""

    ref: HubRef
    model_cfg: dict
    preprocess_cfg: dict
    weights: Path | None


def hub_model(value: str) -> HubModel:
    """``hf-hub:org/repo[@revision]``, an open_clip model on the Hub (as ``open_clip.create_model`` takes it),
    fetched through the cache like a checkpoint."""
    ref = parse_ref(value)
    if ref.filename != CHECKPOINT_FILE:
        raise UsageError(f"{value}: a model is a whole repository: hf-hub:ORG/REPO")
    try:
        config = json.loads(Path(_download(ref, MODEL_CONFIG_FILE)).read_text("utf-8"))
    except _MissingFile:
        raise VidpromptError(f"{ref}: no {MODEL_CONFIG_FILE}, so it is not an open_clip model repository") from None
    except (OSError, ValueError) as exc:
        raise VidpromptError(f"{ref}: {MODEL_CONFIG_FILE} is unreadable ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_cfg"), dict):
        raise VidpromptError(f"{ref}: {MODEL_CONFIG_FILE} has no model_cfg")
    weights = None
    for name in MODEL_WEIGHTS_FILES:
        try:
            weights = Path(_download(ref, name, missing_ok=True))
            break
        except _MissingFile:
            continue
    preprocess = config.get("preprocess_cfg") if isinstance(config.get("preprocess_cfg"), dict) else {}
    return HubModel(ref, config["model_cfg"], preprocess, weights)


def _published_sha256(ref: HubRef) -> str | None:
    try:
        record = json.loads(Path(_download(ref, RECORD_FILE)).read_text("utf-8"))
    except _MissingFile:
        return None
    except (OSError, ValueError) as exc:
        raise VidpromptError(f"{ref}: {RECORD_FILE} is unreadable ({exc})") from None
    published = record.get("checkpoint", {}) if isinstance(record, dict) else {}
    if isinstance(published, dict) and published.get("file") == ref.filename:
        return published.get("sha256")
    return None


class _MissingFile(Exception):
    pass


def _download(ref: HubRef, filename: str, missing_ok: bool = False) -> str:
    """One file through huggingface_hub; its failures become one line that says what to do (``missing_ok``, or
    the optional record file: :class:`_MissingFile` when the repository or the cache lacks it)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    try:
        return hf_hub_download(ref.repo_id, filename, revision=ref.revision)
    except LocalEntryNotFoundError:  # (a kind of EntryNotFoundError: first)
        if filename == RECORD_FILE or missing_ok:
            raise _MissingFile() from None
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
        raise VidpromptError(f"{ref}: not in the Hugging Face cache and {why}; download it once with a network "
                             f"connection (or copy the file and give its path)") from None
    except EntryNotFoundError:
        if filename == RECORD_FILE or missing_ok:
            raise _MissingFile() from None
        raise UsageError(f"{ref}: the repository has no file {filename}") from None
    except GatedRepoError:
        raise VidpromptError(f"{ref}: the repository is gated; accept its terms on the Hub and log in "
                             "(`hf auth login` or HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise UsageError(f"{ref}: no such repository on the Hub (or it is private: log in with `hf auth login` "
                         "or HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise UsageError(f"{ref}: no revision {ref.revision}") from None
    except HfHubHTTPError as exc:
        raise VidpromptError(f"{ref}: the Hub answered {str(exc).splitlines()[0]}") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
