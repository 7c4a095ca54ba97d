"""The interface every method implements, so classify, eval and training treat them alike.

Frames enter as a float tensor ``[B, T, 3, H, W]`` already normalised with the backbone's own mean/std.
Video and text embeddings leave L2-normalised; ``logit_scale`` turns their cosine into logits.
"""

from __future__ import annotations

from typing import Sequence

import hashlib

import torch
from torch import nn
from torch.nn import functional as F

from ..backbone import Backbone


class VideoTextModel(nn.Module):
    """Scores videos against free-form class names with a frozen CLIP backbone plus trained parts."""

    method: str = "base"
    # True when per-frame features come from the frozen image encoder alone, so they can be cached and
    # training can run on ``aggregate`` without touching the backbone (zero-shot, PromptCLIP).
    frame_features_cacheable: bool = True

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone
        self.clip = backbone.model  # registered as a submodule: .to(device) moves it too

    # --- video side -------------------------------------------------------------------------------------
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3, H, W]`` -> per-frame projected image features ``[B, T, D]`` (not normalised)."""
        b, t = frames.shape[:2]
        features = self.clip.encode_image(frames.flatten(0, 1))
        return features.reshape(b, t, -1)

    def aggregate(self, frame_features: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]`` frame features -> normalised video embedding ``[B, D]``."""
        raise NotImplementedError

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        return self.aggregate(self.encode_frames(frames))

    # --- text side --------------------------------------------------------------------------------------
    def encode_labels(self, labels: Sequence[str]) -> torch.Tensor:
        """Class names -> normalised class embeddings ``[C, D]``."""
        raise NotImplementedError

    def text_cache_key(self) -> str | None:
        """A string that identifies the text side's weights, or ``None`` when text embeddings must not be
        cached on disk (e.g. while prompts are being trained)."""
        return None

    @property
    def logit_scale(self) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, video_embeddings: torch.Tensor, label_embeddings: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * video_embeddings @ label_embeddings.t()

    # --- checkpoints ------------------------------------------------------------------------------------
    def hparams(self) -> dict:
        """Everything beyond the backbone needed to rebuild this model (JSON-serialisable)."""
        return {}

    @staticmethod
    def stored_shape_problem(hparams: dict, shapes: dict[str, tuple[int, ...]]) -> str | None:
        """What in ``hparams`` (read from a checkpoint) disagrees with the stored tensors' ``shapes``, checked
        before the model is built; ``None`` when they agree."""
        return None

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trained tensors only (what a checkpoint stores): the parameters that require grad."""
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}


# --- combining the views of one video -----------------------------------------------------------------------
# A video is scored from several views (temporal clips x spatial crops); there are two rules, one per kind of
# consumer, and every consumer uses one of these two functions.

def view_probabilities(model: VideoTextModel, views: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Video embeddings ``[..., views, D]`` and label embeddings ``[C, D]`` -> class probabilities ``[..., C]``:
    each view's softmax, averaged over the views.

    Used by classify, eval and localize. Averaging probabilities is the multi-view test protocol of the papers
    (TSN; mmaction2's ``average_clips='prob'``, which produced the published AIM numbers), so a checkpoint
    scores here as it did there, and one confident view cannot outvote the others by its logit scale."""
    return model.logits(views, labels).float().softmax(dim=-1).mean(dim=-2)


def view_embedding(views: torch.Tensor) -> torch.Tensor:
    """Video embeddings ``[..., views, D]`` -> one unit embedding ``[..., D]``: the views' mean, normalised.

    Used by index and search (a stored row and a query video). They have no class list to take a softmax
    over, and one vector per clip keeps a search one matrix product over the library."""
    return normalize(views.float().mean(dim=-2))


def resample_positions(embedding: torch.Tensor, frames: int) -> torch.Tensor:
    """A learned per-frame embedding ``[n, D]`` for a clip of another number of frames ``[frames, D]``.

    Frame ``i`` of ``frames`` segment-sampled frames sits at the centre of segment ``i``, which is where
    learned position ``(i + 0.5) * n / frames - 0.5`` sat: linear interpolation between the two nearest
    learned rows (the end rows beyond the ends). Same count: the embedding itself.
    """
    if frames == embedding.shape[0]:
        return embedding
    return F.interpolate(embedding.t()[None], size=frames, mode="linear", align_corners=False)[0].t()


def normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), dim=-1)


def model_identity(model) -> dict:
    """Method, backbone weights, hyper-parameters and a digest of the trained tensors of a method."""
    state = model.trainable_state()
    trained = None
    if state:
        digest = hashlib.sha256()
        for name in sorted(state):
            tensor = state[name].detach().to("cpu", torch.float32).contiguous()
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.numpy().tobytes())
        trained = digest.hexdigest()
    return {"method": model.method, "backbone": model.backbone.identity, "hparams": model.hparams(),
            "trained_tensors": trained}
