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


LABELS_PER_CHUNK = 256  # labels encoded per text-encoder pass: memory set by this, not by the label count


class TextEmbeddingCache:
    """Label embeddings by chunks of :data:`LABELS_PER_CHUNK` labels: a list of 20,000 labels is encoded in
    bounded passes, each chunk written to the disk cache as soon as it is done (an interrupted run keeps the
    chunks it finished), and the next run with the same list reads them back."""

    def __init__(self, root: Path | None = None, enabled: bool = True):
        self.root = (root or cache_dir()) / "text"
        self.enabled = enabled
        self._memory: dict[str, torch.Tensor] = {}

    @staticmethod
    def key(model_key: str, labels: Sequence[str]) -> str:
        payload = model_key + "\x00" + "\x1f".join(labels)
        return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()

    def get_or_compute(self, model_key: str | None, labels: Sequence[str],
                       compute: Callable[[Sequence[str]], torch.Tensor]) -> torch.Tensor:
        """Embeddings ``[len(labels), D]`` (float32, CPU); ``compute(some_labels)`` encodes one chunk.
        ``model_key=None`` means the text side is not cacheable (still encoded chunk by chunk)."""
        labels = list(labels)
        chunks = [labels[i:i + LABELS_PER_CHUNK] for i in range(0, len(labels), LABELS_PER_CHUNK)]
        if model_key is None:
            return torch.cat([compute(chunk).detach().float().cpu() for chunk in chunks])
        whole = self.key(model_key, labels)
        if whole in self._memory:
            return self._memory[whole]
        parts = []
        for chunk in chunks:
            key = self.key(model_key, chunk)
            embeddings = self._load(key, len(chunk)) if self.enabled else None
            if embeddings is None:
                embeddings = compute(chunk).detach().float().cpu()
                if self.enabled:
                    self._store(key, embeddings)
            parts.append(embeddings)
        embeddings = torch.cat(parts)
        self._memory = {whole: embeddings}  # the last list only: a session of many lists stays small
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
