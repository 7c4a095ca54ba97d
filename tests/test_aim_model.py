"""AIM on the tiny config: zero-init equals frozen CLIP, temporal mixing works, only adapters train;
parameter counts on the real architectures match the paper's."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from vidprompt.backbone import build_backbone
from vidprompt.errors import UsageError
from vidprompt.methods.aim import AIM, Adapter, adapted_blocks, aim_parameter_counts
from vidprompt.methods.zeroshot import ZeroShotCLIP

B, T = 2, 4


@pytest.fixture()
def frames() -> torch.Tensor:
    return torch.randn(B, T, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture()
def fresh_backbone(tiny_config):
    """A backbone of our own, for tests that train or perturb weights."""
    return build_backbone(tiny_config, "none")


def clip_frames(backbone, frames: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return backbone.model.encode_image(frames.flatten(0, 1)).reshape(B, T, -1)


def perturb_adapters(model: AIM, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "adapter" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


def test_adapter_starts_as_no_op_and_skip_adds_input():
    x = torch.randn(3, 5, 16)
    assert_close(Adapter(16)(x), torch.zeros_like(x))
    assert_close(Adapter(16, skip=True)(x), x)
    adapter = Adapter(16, ratio=0.5)
    assert adapter.down.out_features == 8 and isinstance(adapter.act, torch.nn.GELU)
    assert adapter.act.approximate == "none"
    large = Adapter(512)  # 65k draws: the down-projection's std is close to 0.02
    assert float(large.down.weight.detach().std()) == pytest.approx(0.02, rel=0.05)
    assert not large.down.bias.any() and not large.up.weight.any() and not large.up.bias.any()


def test_fresh_aim_equals_frozen_clip_per_frame(tiny_backbone, frames):
    model = AIM(tiny_backbone, num_frames=T)
    assert not model.training and not model.clip.training
    expected = clip_frames(tiny_backbone, frames)
    with torch.no_grad():
        assert_close(model.encode_frames(frames), expected, rtol=1e-6, atol=1e-6)
    # Training mode with drop-path: zero-init branches add zero whether or not they are dropped.
    model.train()
    assert not model.clip.training and model.blocks[-1].drop_path.training
    assert model.blocks[-1].drop_path.rate == pytest.approx(0.2)
    assert_close(model.encode_frames(frames), expected, rtol=1e-6, atol=1e-6)
    assert_close(model.encode_video(frames), torch.nn.functional.normalize(expected.mean(1), dim=-1),
                 rtol=1e-6, atol=1e-6)


def test_text_side_is_zero_shot_clip(tiny_backbone):
    model, zeroshot = AIM(tiny_backbone), ZeroShotCLIP(tiny_backbone)
    labels = ["surfing", "cooking pasta", "juggling"]
    assert_close(model.encode_labels(labels), zeroshot.encode_labels(labels))
    assert model.text_cache_key() == zeroshot.text_cache_key()
    assert_close(model.logit_scale, zeroshot.logit_scale)
    assert model.method == "aim" and not model.frame_features_cacheable


def test_adapters_mix_frames(fresh_backbone, frames):
    model = AIM(fresh_backbone, num_frames=T, drop_path=0.0)
    perturb_adapters(model)
    with torch.no_grad():
        out = model.encode_frames(frames)
        assert not torch.allclose(out, clip_frames(fresh_backbone, frames), atol=1e-3)
        # Frame 0's feature depends on the other frames: temporal attention works.
        changed = frames.clone()
        changed[:, 1:] = torch.randn_like(changed[:, 1:])
        assert not torch.allclose(model.encode_frames(changed)[:, 0], out[:, 0], atol=1e-4)
        # Attention alone is order-blind: permuting frames permutes the features ...
        perm = torch.tensor([2, 0, 3, 1])
        assert_close(model.encode_frames(frames[:, perm]), out[:, perm], rtol=1e-5, atol=1e-5)
        # ... and the temporal embedding is what makes the video embedding depend on frame order.
        model.temporal_embedding.normal_(std=0.5)
        assert not torch.allclose(model.encode_video(frames[:, perm]), model.encode_video(frames), atol=1e-4)


def test_other_frame_counts_resample_temporal_embedding(tiny_backbone, frames):
    model = AIM(tiny_backbone, num_frames=8)
    with torch.no_grad():
        assert model.encode_frames(frames).shape == (B, T, 32)
        assert model.encode_video(frames).shape == (B, 32)


def test_only_adapters_temporal_embedding_and_ln_post_train(fresh_backbone, frames):
    # No drop-path: it draws per video, and with 2 videos a branch is sometimes dropped for both, leaving its
    # adapter without a gradient in this one step (what trains is the question here, not drop-path).
    model = AIM(fresh_backbone, num_frames=T, drop_path=0.0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters()
                         if "adapter" in n or n in ("temporal_embedding", "ln_post.weight", "ln_post.bias")}
    assert not any(p.requires_grad for p in model.clip.parameters())
    assert set(model.trainable_state()) == trainable

    perturb_adapters(model)  # so every trainable tensor gets a gradient (zero up-projections block it)
    model.train()
    frozen_before = {n: p.detach().clone() for n, p in model.clip.named_parameters()}
    trained_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    labels = model.encode_labels(["a", "b", "c"])
    loss = torch.nn.functional.cross_entropy(model.logits(model.encode_video(frames), labels),
                                             torch.tensor([0, 2]))
    loss.backward()
    optimizer.step()
    for name, p in model.clip.named_parameters():
        assert torch.equal(p, frozen_before[name]), name
        assert p.grad is None, name
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p, trained_before[name]), name


def test_gradient_checkpointing_gives_same_gradients(fresh_backbone, frames):
    model = AIM(fresh_backbone, num_frames=T)
    perturb_adapters(model)
    model.train()  # drop-path active: checkpointing must replay the same masks

    def grads(checkpointing: bool) -> dict[str, torch.Tensor]:
        model.grad_checkpointing = checkpointing
        model.zero_grad(set_to_none=True)
        torch.manual_seed(123)
        model.encode_video(frames).square().sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    plain, checkpointed = grads(False), grads(True)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)


def adapter_params(model: AIM) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "adapter" in n)


def test_adapter_positions(tiny_backbone):
    width, hidden = 64, 16
    per_adapter = width * hidden + hidden + hidden * width + width
    extra = T * width + 2 * width  # temporal embedding + ln_post
    counts = {}
    for positions, blocks in [("all", 2), ("bottom", 1), ("top", 1), ("skip", 1)]:
        model = AIM(tiny_backbone, num_frames=T, adapter_positions=positions)
        tunable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert tunable == 3 * per_adapter * blocks + extra, positions
        counts[positions] = adapter_params(model)
    assert [b.adapted for b in AIM(tiny_backbone, adapter_positions="top").blocks] == [False, True]
    for positions in ("bottom", "top", "skip"):
        assert counts[positions] * 2 == counts["all"]
    assert adapted_blocks(12, "bottom") == [True] * 6 + [False] * 6
    assert adapted_blocks(12, "top") == [False] * 6 + [True] * 6
    assert adapted_blocks(12, "skip") == [True, False] * 6
    with pytest.raises(UsageError):
        AIM(tiny_backbone, adapter_positions="middle")


def test_hparams_rebuild_the_same_model(tiny_backbone):
    model = AIM(tiny_backbone, num_frames=16, adapter_positions="skip", bottleneck_ratio=0.125,
                joint_scale=1.0, drop_path=0.1, grad_checkpointing=True, templates=["a video of {}."])
    hp = model.hparams()
    assert hp == {"num_frames": 16, "adapter_positions": "skip", "bottleneck_ratio": 0.125, "joint_scale": 1.0,
                  "drop_path": 0.1, "grad_checkpointing": True, "templates": ["a video of {}."],
                  "temporal_adapter_in": False, "head_classes": 0}
    rebuilt = AIM(tiny_backbone, **hp)
    assert {n: p.shape for n, p in rebuilt.trainable_state().items()} == \
        {n: p.shape for n, p in model.trainable_state().items()}


@pytest.mark.parametrize("name, total, tunable", [
    ("ViT-B-16", 97e6, 11e6),
    pytest.param("ViT-L-14", 341e6, 38e6, marks=pytest.mark.slow),
])
def test_parameter_counts_match_paper(name, total, tunable):
    counts = aim_parameter_counts(AIM(build_backbone(name, "none")), num_classes=400)
    assert counts["total"] == pytest.approx(total, rel=0.02)
    assert counts["tunable"] == pytest.approx(tunable, rel=0.02)
