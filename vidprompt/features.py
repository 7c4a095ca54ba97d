"""Frozen per-frame image features, computed once and cached on disk (float16), so training on a frozen
backbone (zero-shot, PromptCLIP) costs epochs over small tensors instead of image-encoder passes.

One file per (backbone, precision, video file version, sampling, draw): reruns, other runs on the same videos and
resumed runs reuse them; a video that changes on disk gets a new key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from .fileio import atomic_write, cache_dir
from .embedding import decoded, embedded
from .loader import VideoViews
from .methods.base import VideoTextModel
from .runtime import autocast, precision_name
from .transforms import FramePreprocessor
from .video import Decoder, ViewConfig, is_url

log = logging.getLogger(__name__)
TEST_DRAW = -1  # the deterministic test-time sampling (segment centres / centred window)


@dataclass
class CacheStats:
    encoded: int = 0
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)


class FrameFeatureCache:
    def __init__(self, model: VideoTextModel, view: ViewConfig, *, seed: int = 0, root: Path | None = None,
                 device: torch.device | str = "cpu", autocast_dtype: torch.dtype | None = None,
                 batch_size: int = 8, num_workers: int | None = None, decoder: Decoder | None = None):
        if not model.frame_features_cacheable:
            raise ValueError(f"{model.method} features depend on trained weights and cannot be cached")
        self.model = model
        self.view = ViewConfig(frames=view.frames, sampling=view.sampling, stride=view.stride)  # one clip, crop
        self.seed = seed
        # fp16 and fp32 encoders give slightly different features: each precision has its own entries
        identity = f"{model.backbone.identity}|{precision_name(autocast_dtype)}"
        backbone_key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.root = (root or cache_dir()) / "features" / backbone_key
        self.device = torch.device(device)
        self.autocast_dtype = autocast_dtype
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.decoder = decoder  # not part of the key: every decoder gives the same frames
        self.preprocessor = FramePreprocessor(model.backbone.preprocess_cfg, crops=1)
        self.stats = CacheStats()

    def _key(self, path: str, draw: int) -> Path:
        stat = os.stat(path)
        ident = {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                 "view": self.view.to_dict(), "draw": draw, "seed": None if draw == TEST_DRAW else self.seed}
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.safetensors"

    def _load(self, path: Path) -> torch.Tensor | None:
        from safetensors.torch import load_file

        try:
            return load_file(str(path))["features"]
        except Exception:  # missing or damaged entry: recompute
            return None

    def features(self, paths: Sequence[str], draw: int = TEST_DRAW,
                 progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
        """``path -> float16 [T, D]`` for every path that decodes; failures go to ``stats.failed``."""
        from safetensors.torch import save_file

        out: dict[str, torch.Tensor] = {}
        todo: list[str] = []
        for path in paths:
            cached = self._load(self._key(path, draw)) if _cacheable(path) else None
            if cached is not None:
                out[path] = cached
                self.stats.reused += 1
            else:
                todo.append(path)
        if progress is not None and len(paths) > len(todo):
            progress(len(paths) - len(todo))
        if not todo:
            return out
        seed = None if draw == TEST_DRAW else self.seed
        dataset = VideoViews(todo, self.view, self.preprocessor, seed=seed, draw=max(draw, 0), decoder=self.decoder)
        batches = decoded(dataset, self.batch_size, self.num_workers, pin_memory=self.device.type == "cuda")
        for batch in embedded(batches, self._encode, progress):
            for video in batch:
                if video.embedding is None:
                    self.stats.failed[video.path] = video.error
                    continue
                feat = video.embedding
                if _cacheable(video.path):
                    atomic_write(self._key(video.path, draw),
                                 lambda tmp, f=feat: save_file({"features": f.contiguous()}, tmp))
                out[video.path] = feat
                self.stats.encoded += 1
        return out

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 views ``[n, 1, T, 3, h, w]`` -> float16 per-frame features ``[n, T, D]`` on the CPU."""
        frames = frames[:, 0].to(self.device, non_blocking=True)
        with torch.inference_mode(), autocast(self.device, self.autocast_dtype):
            return self.model.encode_frames(self.preprocessor.normalize(frames)).half().cpu()


def _cacheable(path: str) -> bool:
    """A local file (keyed by its size and modification time); a URL has neither, so it is not cached."""
    return not is_url(path) and os.path.exists(path)
