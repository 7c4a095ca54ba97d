"""Class-name embeddings cached in memory and on disk, keyed by backbone weights, text method, precision
and labels, so a 400-class label set is encoded once, not on every run."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable, Sequence

import torch

from .fileio import atomic_write, cache_dir

log = logging.getLogger(__name__)


class TextEmbeddingCache:
    def __init__(self, root: Path | None = None, enabled: bool = True):
        self.root = (root or cache_dir()) / "text"
        self.enabled = enabled
        self._memory: dict[str, torch.Tensor] = {}

    @staticmethod
    def key(model_key: str, labels: Sequence[str]) -> str:
        payload = model_key + "\x00" + "\x1f".join(labels)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def get_or_compute(self, model_key: str | None, labels: Sequence[str],
                       compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Embeddings for ``labels``; ``model_key=None`` means the text side is not cacheable."""
        if model_key is None:
            return compute()
        key = self.key(model_key, labels)
        if key in self._memory:
            return self._memory[key]
        embeddings = self._load(key, len(labels)) if self.enabled else None
        if embeddings is None:
            embeddings = compute().detach().float().cpu()
            if self.enabled:
                self._store(key, embeddings)
        self._memory[key] = embeddings
        return embeddings

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def _load(self, key: str, count: int) -> torch.Tensor | None:
        from safetensors.torch import load_file

        path = self._path(key)
        if not path.is_file():
            return None
        try:
            embeddings = load_file(str(path))["embeddings"]
        except Exception:  # a damaged cache entry is recomputed, never fatal
            log.debug("ignoring unreadable text cache entry %s", path)
            return None
        return embeddings if embeddings.shape[0] == count else None

    def _store(self, key: str, embeddings: torch.Tensor) -> None:
        from safetensors.torch import save_file

        try:
            atomic_write(self._path(key), lambda tmp: save_file({"embeddings": embeddings.contiguous()}, tmp))
        except OSError as exc:  # read-only home, full disk: caching is an optimisation only
            log.debug("cannot write text cache %s: %s", self._path(key), exc)
