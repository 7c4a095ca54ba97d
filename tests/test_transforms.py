import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from vidprompt.transforms import FramePreprocessor


@pytest.mark.parametrize("hw", [(48, 80), (80, 48), (32, 32), (37, 101)])
def test_matches_open_clip_eval_transform(tiny_backbone, hw):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    reference = open_clip.image_transform(tiny_backbone.preprocess_cfg["size"], is_train=False)(
        Image.fromarray(image))
    pre = FramePreprocessor(tiny_backbone.preprocess_cfg)
    ours = pre.normalize(pre(image[None]))[0, 0]
    # uint8 resizing rounds like PIL up to one grey level: at most 1/255 / std, and rarely.
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max() <= 1.01 / 255 / min(pre.std)
    assert (ours - reference).abs().mean() < 2e-3


@pytest.mark.parametrize("hw", [(48, 80), (80, 48), (60, 60)])
def test_non_square_model_input_matches_open_clip(tiny_backbone, hw):
    """A model with a non-square input (here 24 x 40) is resized to cover it keeping the aspect ratio, then
    centre-cropped, as open_clip does; never padded."""
    cfg = {**tiny_backbone.preprocess_cfg, "size": (24, 40)}
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    reference = open_clip.image_transform((24, 40), is_train=False, mean=cfg["mean"], std=cfg["std"])(
        Image.fromarray(image))
    pre = FramePreprocessor(cfg)
    ours = pre.normalize(pre(image[None]))[0, 0]
    assert ours.shape == reference.shape == (3, 24, 40)
    assert (ours - reference).abs().max() <= 1.01 / 255 / min(pre.std)


def test_three_crops_cover_both_ends_and_centre():
    cfg = {"size": 4, "mean": (0, 0, 0), "std": (1, 1, 1), "interpolation": "nearest"}
    frame = np.zeros((1, 4, 12, 3), np.uint8)
    frame[0, :, :, 0] = np.arange(12, dtype=np.uint8)[None, :]  # column number in red
    views = FramePreprocessor(cfg, crops=3)(frame)
    assert views.shape == (3, 1, 3, 4, 4)
    assert [views[i, 0, 0, 0].tolist() for i in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    portrait = np.transpose(frame, (0, 2, 1, 3))
    views = FramePreprocessor(cfg, crops=3)(portrait)
    assert [views[i, 0, 0, :, 0].tolist() for i in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_keeps_leading_dims_and_uint8():
    cfg = {"size": 8}
    out = FramePreprocessor(cfg)(np.zeros((2, 3, 16, 20, 3), np.uint8))
    assert out.shape == (1, 2, 3, 3, 8, 8) and out.dtype == torch.uint8
