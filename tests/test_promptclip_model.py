"""PromptCLIP's model: prompted text encoder against open_clip, temporal model, what trains and what not."""

from __future__ import annotations

import warnings

import pytest
import torch

from vidprompt.errors import OptionValueError
from vidprompt.methods.promptclip import PromptCLIP, PromptedTextEncoder
from vidprompt.methods.zeroshot import ZeroShotCLIP

PREFIX = "a video of a person"
SUFFIX = "in the gym."
# 1, 2 and 4 BPE tokens: the EOT position differs for each.
NAMES = ["surfing", "playing guitar", "riding a mechanical bull"]


def _frames(b=3, t=8, d=32, seed=0):
    return torch.randn(b, t, d, generator=torch.Generator().manual_seed(seed))


def test_template_prompts_reproduce_encode_text(tiny_backbone):
    tokenizer = tiny_backbone.tokenizer
    assert [len(tokenizer.encode(n)) for n in NAMES] == [1, 2, 4]
    encoder = PromptedTextEncoder.from_text(tiny_backbone, PREFIX, SUFFIX)
    assert (encoder.n_prefix, encoder.n_suffix) == (5, 4)

    with torch.no_grad():
        ours = encoder(NAMES)
        reference = tiny_backbone.model.encode_text(tokenizer([f"{PREFIX} {n} {SUFFIX}" for n in NAMES]))
    assert ours.shape == (3, tiny_backbone.embed_dim)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)
    # Each name alone gives the same row as in the batch.
    with torch.no_grad():
        torch.testing.assert_close(encoder([NAMES[2]])[0], ours[2], rtol=1e-6, atol=1e-6)
        # No prompts at all: the bare class name between SOT and EOT.
        bare = PromptedTextEncoder.from_text(tiny_backbone, "", "")
        torch.testing.assert_close(bare(NAMES), tiny_backbone.model.encode_text(tokenizer(NAMES)),
                                   rtol=1e-6, atol=1e-6)


def test_promptclip_encode_labels_with_template_prompts(tiny_backbone):
    model = PromptCLIP(tiny_backbone, n_prefix=5, n_suffix=4, temporal_layers=0, temporal_heads=4)
    with torch.no_grad():
        model.text_encoder.prefix.copy_(model.text_encoder.embed_text(PREFIX))
        model.text_encoder.suffix.copy_(model.text_encoder.embed_text(SUFFIX))
        ours = model.encode_labels(NAMES)
        reference = tiny_backbone.model.encode_text(
            tiny_backbone.tokenizer([f"{PREFIX} {n} {SUFFIX}" for n in NAMES]), normalize=True)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(3))


def test_prompts_start_small_and_random(tiny_backbone):
    encoder = PromptedTextEncoder(tiny_backbone)
    assert encoder.prefix.shape == encoder.suffix.shape == (16, 32)
    values = torch.cat([encoder.prefix, encoder.suffix]).detach()
    assert 0.005 < values.std().item() < 0.015
    assert set(dict(encoder.named_parameters())) == {"prefix", "suffix"}  # CLIP is referenced, not owned


def test_zero_temporal_model_is_zero_shot_average(tiny_backbone):
    model = PromptCLIP(tiny_backbone, temporal_layers=0, temporal_heads=4, max_frames=16)
    with torch.no_grad():
        model.temporal.position.zero_()
    frames = _frames(t=8) * 5 + 1
    ours = model.aggregate(frames)
    torch.testing.assert_close(ours, ZeroShotCLIP(tiny_backbone).aggregate(frames), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(3))


def test_temporal_model_is_order_sensitive(tiny_backbone):
    model = PromptCLIP(tiny_backbone, temporal_layers=2, temporal_heads=8, max_frames=16).eval()
    frames = _frames(t=8)
    with torch.no_grad():
        forward = model.aggregate(frames)
        backward = model.aggregate(frames.flip(1))
    assert forward.shape == (3, 32)
    torch.testing.assert_close(forward.norm(dim=-1), torch.ones(3))
    assert not torch.allclose(forward, backward, atol=1e-5)


def test_other_frame_counts_resample_the_positions_by_segment_centre(tiny_backbone):
    from vidprompt.methods.base import resample_positions

    rows = torch.arange(8.0)[:, None].expand(8, 2)  # learned position j holds the value j
    assert resample_positions(rows, 8) is rows
    # 4 segments: segment i's centre is where positions 2i and 2i + 1 of 8 sat
    assert resample_positions(rows, 4)[:, 0].tolist() == [0.5, 2.5, 4.5, 6.5]
    assert resample_positions(rows, 1)[:, 0].tolist() == [3.5]  # the clip's middle
    coarse = resample_positions(rows[::2] / 2, 8)[:, 0]  # 4 learned rows 0..3 read at 8 frames
    assert coarse.tolist() == [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]  # clamped beyond the ends

    model = PromptCLIP(tiny_backbone, temporal_layers=1, temporal_heads=4, max_frames=8)
    assert model.aggregate(_frames(t=3)).shape == (3, 32)
    assert model.aggregate(_frames(t=16)).shape == (3, 32)


def test_heads_must_divide_embed_dim(tiny_backbone):
    with pytest.raises(OptionValueError, match="^temporal_heads must be a divisor") as caught:
        PromptCLIP(tiny_backbone, temporal_heads=5)
    assert caught.value.field == "temporal_heads"
    with pytest.raises(OptionValueError, match="no room"):
        PromptCLIP(tiny_backbone, n_prefix=40, n_suffix=40)


def test_overlong_name_is_clipped_with_one_warning(tiny_backbone):
    encoder = PromptedTextEncoder(tiny_backbone)  # 16 + 16 prompts leave 77 - 34 = 43 name tokens
    long_name = " ".join(["dog"] * 60)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            clipped = encoder([long_name, "surfing"])
            again = encoder([long_name])
    assert len([w for w in caught if "only the first 43" in str(w.message)]) == 1
    assert clipped.shape == (2, 32) and torch.isfinite(clipped).all()
    with torch.no_grad():
        expected = encoder([" ".join(["dog"] * 43)])
    torch.testing.assert_close(clipped[:1], expected)
    torch.testing.assert_close(again, expected)


def test_trainable_state_is_prompts_and_temporal(tiny_backbone):
    model = PromptCLIP(tiny_backbone, temporal_layers=2, temporal_heads=8, max_frames=32)
    state = model.trainable_state()
    assert all(k.startswith(("text_encoder.", "temporal.")) for k in state), sorted(state)
    assert {"text_encoder.prefix", "text_encoder.suffix", "temporal.position"} <= set(state)
    d = 32
    per_layer = 12 * d * d + 13 * d
    assert sum(v.numel() for v in state.values()) == 32 * d + 32 * d + 2 * per_layer
    assert not any(p.requires_grad for p in model.clip.parameters())
    key = model.text_cache_key()  # keyed on the prompt values: a prompt update changes it
    with torch.no_grad():
        model.text_encoder.prefix.add_(1e-3)
    assert model.text_cache_key() != key and key.startswith("promptclip|")
    assert model.hparams() == {"n_prefix": 16, "n_suffix": 16, "temporal_layers": 2, "temporal_heads": 8,
                               "max_frames": 32, "temperature": 0.07, "prompt_layout": "shared",
                               "temporal_activation": "gelu", "frame_norm": True}
    torch.testing.assert_close(model.logit_scale, torch.tensor(1 / 0.07))
    # train() keeps the frozen CLIP in eval mode (the fixture is shared).
    model.train()
    assert model.temporal.training and not model.clip.training


def test_vit_b16_trainable_count():
    from vidprompt.backbone import build_backbone

    backbone = build_backbone("ViT-B-16", "none")
    model = PromptCLIP(backbone)
    d = backbone.embed_dim
    assert d == 512
    # Per block: qkv (3d^2 + 3d), out proj (d^2 + d), MLP (4d^2 + 4d + 4d^2 + d), two LayerNorms (4d).
    blocks = 2 * (12 * d * d + 13 * d)
    assert blocks == 6_304_768  # the paper rounds this to "about 5M"
    expected = blocks + 32 * d + (16 + 16) * d
    assert sum(v.numel() for v in model.trainable_state().values()) == expected == 6_337_536


def test_gradients_reach_only_trained_parts(tiny_backbone):
    model = PromptCLIP(tiny_backbone, temporal_layers=2, temporal_heads=4, max_frames=8).train()
    video = model.aggregate(_frames(b=2, t=4))
    text = model.encode_labels(NAMES)
    loss = torch.nn.functional.cross_entropy(model.logits(video, text), torch.tensor([0, 2]))
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith(("text_encoder.", "temporal.")):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
