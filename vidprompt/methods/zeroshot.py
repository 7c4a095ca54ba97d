"""Zero-shot CLIP on video: mean of normalised frame embeddings vs template-ensembled text embeddings.

This is the reference every trained method must beat.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch

from ..backbone import Backbone
from ..labels import DEFAULT_TEMPLATES, check_template, fill_templates
from .base import VideoTextModel, normalize


class ZeroShotCLIP(VideoTextModel):
    method = "zeroshot"

    def __init__(self, backbone: Backbone, templates: Sequence[str] = DEFAULT_TEMPLATES):
        super().__init__(backbone)
        self.templates = tuple(check_template(t) for t in templates)

    def aggregate(self, frame_features: torch.Tensor) -> torch.Tensor:
        return normalize(normalize(frame_features).mean(dim=1))

    @torch.no_grad()
    def encode_labels(self, labels: Sequence[str]) -> torch.Tensor:
        prompts = fill_templates(labels, self.templates)
        flat = [p for per_label in prompts for p in per_label]
        tokens = self.backbone.tokenizer(flat).to(self.backbone.device)
        text = normalize(self.clip.encode_text(tokens)).reshape(len(labels), len(self.templates), -1)
        return normalize(text.mean(dim=1))

    def text_cache_key(self) -> str:
        digest = hashlib.sha256("\n".join(self.templates).encode()).hexdigest()[:16]
        return f"zeroshot|templates={digest}"

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp().float()

    def hparams(self) -> dict:
        return {"templates": list(self.templates)}
