"""Decoded frames -> model input, with the backbone's own preprocessing config (size, mean, std,
interpolation, resize mode), never hard-coded numbers.

Resizing and cropping run on uint8 in the DataLoader workers (small to ship between processes);
normalisation runs on the model's device.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .errors import UsageError, out_of_range

_INTERPOLATION = {
    "bicubic": InterpolationMode.BICUBIC,
    "bilinear": InterpolationMode.BILINEAR,
    "nearest": InterpolationMode.NEAREST,
}


class FramePreprocessor:
    """Resize + crop uint8 frames the way the backbone's image transform does, for 1 or 3 spatial crops.

    One crop is the centre crop of open_clip's eval transform; three crops take the two ends and the
    centre along the long side after the short side is resized.
    """

    def __init__(self, preprocess_cfg: dict, crops: int = 1):
        size = preprocess_cfg.get("size", 224)
        size = size if isinstance(size, (tuple, list)) else (size, size)
        self.height, self.width = int(size[0]), int(size[1])
        self.mean = tuple(float(m) for m in preprocess_cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
        self.std = tuple(float(s) for s in preprocess_cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
        interpolation = preprocess_cfg.get("interpolation", "bicubic")
        if interpolation not in _INTERPOLATION:
            raise UsageError(f"unsupported interpolation '{interpolation}' in the model's preprocess config")
        self.interpolation = _INTERPOLATION[interpolation]
        self.resize_mode = preprocess_cfg.get("resize_mode", "shortest")
        if self.resize_mode not in ("shortest", "squash"):
            raise UsageError(f"unsupported resize_mode '{self.resize_mode}' in the model's preprocess config")
        if crops not in (1, 3):
            raise out_of_range("crops", crops, "1 or 3")
        self.crops = crops

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``[..., H, W, 3]`` -> uint8 ``[crops, ..., 3, h, w]``."""
        frames = torch.as_tensor(frames)
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).contiguous()
        if self.resize_mode == "squash":
            x = TF.resize(x, [self.height, self.width], interpolation=self.interpolation, antialias=True)
        elif self.height == self.width:
            x = TF.resize(x, self.height, interpolation=self.interpolation, antialias=True)
        else:  # cover the non-square target keeping the aspect ratio, as open_clip's ResizeKeepRatio does
            h, w = x.shape[-2:]
            ratio = min(h / self.height, w / self.width)
            x = TF.resize(x, [round(h / ratio), round(w / ratio)], interpolation=self.interpolation,
                          antialias=True)
        views = [TF.crop(x, top, left, self.height, self.width) for top, left in self._crop_origins(x.shape[-2:])]
        out = torch.stack(views)
        return out.reshape(self.crops, *lead, 3, self.height, self.width)

    def _crop_origins(self, hw: torch.Size) -> list[tuple[int, int]]:
        h, w = int(hw[0]), int(hw[1])
        # Same rounding as torchvision's CenterCrop (open_clip's eval transform).
        centre = (int(round((h - self.height) / 2.0)), int(round((w - self.width) / 2.0)))
        if self.crops == 1:
            return [centre]
        if w >= h:  # landscape: slide along the width
            return [(centre[0], 0), centre, (centre[0], w - self.width)]
        return [(0, centre[1]), centre, (h - self.height, centre[1])]

    def normalize(self, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """uint8 ``[..., 3, h, w]`` -> normalised float, on ``x``'s device."""
        mean = torch.tensor(self.mean, device=x.device, dtype=dtype).view(3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=dtype).view(3, 1, 1)
        return (x.to(dtype) / 255.0 - mean) / std
