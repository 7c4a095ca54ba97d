"""Golden outputs: logits of every model on the tiny config and a generated clip, stored in
``tests/data/golden.json``, so an open_clip, torch or vidprompt change that moves the numbers fails loudly.

The backbone's random weights come from open_clip's initialisation with vidprompt's fixed seed and the trained
tensors from a seeded generator, so the file pins the math and those initialisations together. When a change
of numbers is intended (or an upgrade changed the initialisation), rewrite the file and review its diff:

    VIDPROMPT_WRITE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from conftest import DATA, TINY_CONFIG
from media import moving_square

GOLDEN = DATA / "golden.json"
LABELS = ["surfing", "cooking dinner", "playing the violin"]
ATOL = 1e-4  # float32 sums in another order (another BLAS, another CPU) move the 6th digit, not the 4th


def _fill(model, seed: int) -> None:
    """Every trained tensor from a seeded generator, in name order (norm weights around 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.requires_grad:
                noise = torch.randn(param.shape, generator=generator) * 0.05
                param.copy_(noise + 1.0 if name.endswith(("norm1.weight", "norm2.weight", "ln_post.weight"))
                            else noise)


def _clip(backbone) -> torch.Tensor:
    """A moving square, 8 frames at the model's 32 px, normalised with the backbone's own mean and std."""
    frames = torch.from_numpy(moving_square("right", n=8, size=32, square=8)).float() / 255.0  # [T, H, W, 3]
    mean = torch.tensor(backbone.preprocess_cfg["mean"])
    std = torch.tensor(backbone.preprocess_cfg["std"])
    return ((frames - mean) / std).permute(0, 3, 1, 2)[None]  # [1, T, 3, H, W]


def _outputs() -> dict[str, list[float]]:
    from vidprompt.backbone import build_backbone
    from vidprompt.methods.aim import AIM
    from vidprompt.methods.promptclip import PromptCLIP
    from vidprompt.methods.zeroshot import ZeroShotCLIP

    backbone = build_backbone(str(TINY_CONFIG), "none")
    x = _clip(backbone)
    models = {
        "zeroshot": ZeroShotCLIP(backbone),
        "promptclip": PromptCLIP(backbone, n_prefix=4, n_suffix=4, temporal_layers=1, temporal_heads=4, max_frames=8),
        "promptclip_official": PromptCLIP(backbone, n_prefix=4, n_suffix=4, temporal_layers=1, temporal_heads=4,
                                          max_frames=8, prompt_layout="official", temporal_activation="quick_gelu",
                                          frame_norm=False),
        "aim": AIM(backbone, num_frames=8, drop_path=0.0, head_classes=3),
    }
    out = {}
    with torch.no_grad():
        for seed, (name, model) in enumerate(models.items()):
            _fill(model, seed)
            model.eval()
            out[name] = model.logits(model.encode_video(x), model.encode_labels(LABELS))[0].tolist()
        head = models["aim"].closed_set(LABELS)
        out["aim_head"] = head.logits(head.encode_video(x), head.encode_labels(LABELS))[0].tolist()
    return out


def test_logits_equal_the_stored_golden_values():
    outputs = _outputs()
    if os.environ.get("VIDPROMPT_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps({"labels": LABELS, "logits": outputs}, indent=2) + "\n")
        pytest.skip(f"wrote {GOLDEN}")
    stored = json.loads(GOLDEN.read_text())
    assert stored["labels"] == LABELS
    assert set(stored["logits"]) == set(outputs), "a model was added or removed: rewrite the golden file"
    for name, values in outputs.items():
        want = torch.tensor(stored["logits"][name])
        got = torch.tensor(values)
        assert torch.allclose(got, want, atol=ATOL, rtol=0), (
            f"{name}: logits {got.tolist()} differ from the stored {want.tolist()} by up to "
            f"{(got - want).abs().max().item():.2e}; if the change is intended, rewrite tests/data/golden.json "
            "(see this file's docstring)")
