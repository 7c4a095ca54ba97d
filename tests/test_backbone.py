import open_clip
import pytest
import torch

from vidprompt.backbone import build_backbone
from vidprompt.errors import UsageError, VidpromptError


def test_random_weights_are_the_same_in_every_build(tiny_config):
    a, b = build_backbone(tiny_config, "none"), build_backbone(tiny_config, None)
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
    assert a.identity == b.identity and a.name == "vp-tiny"
    assert not a.model.training and not any(p.requires_grad for p in a.model.parameters())


def test_building_does_not_touch_the_global_rng(tiny_config):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_backbone(tiny_config, "none")
    assert torch.equal(torch.rand(3), expected)


def test_preprocess_config_comes_from_the_model(tiny_backbone):
    cfg = tiny_backbone.preprocess_cfg
    assert tuple(cfg["size"]) == (32, 32) and cfg["interpolation"] == "bicubic" and len(cfg["mean"]) == 3


def test_real_architecture_name_builds_with_random_weights():
    backbone = build_backbone("ViT-B-32", "none")
    assert backbone.embed_dim == 512 and backbone.context_length == 77
    assert backbone.identity.startswith("ViT-B-32|random")


def test_local_weights_file(tiny_backbone, tiny_config, tmp_path):
    from safetensors.torch import save_file

    state = {k: v.clone() + 0.5 if k == "logit_scale" else v.clone() for k, v in
             tiny_backbone.model.state_dict().items()}
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    loaded = build_backbone(tiny_config, str(path))
    assert torch.equal(loaded.model.logit_scale, state["logit_scale"])
    assert loaded.pretrained == str(path.resolve()) and str(path.resolve()) in loaded.identity


def test_known_tag_loads_from_the_cache_without_network(tiny_backbone, tiny_config, tmp_path, monkeypatch):
    """The tag path up to the download: a tag whose weights are already cached loads from disk, takes the
    tag's preprocessing and QuickGELU setting."""
    from safetensors.torch import save_file

    path = tmp_path / "cached.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_backbone.model.state_dict().items()}, str(path))
    tag_cfg = {"file": str(path), "quick_gelu": True, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    monkeypatch.setattr(open_clip, "list_pretrained_tags_by_model", lambda name: ["mytag"])
    monkeypatch.setattr(open_clip.pretrained, "get_pretrained_cfg", lambda name, tag: tag_cfg)
    backbone = build_backbone(tiny_config, "mytag")
    assert backbone.preprocess_cfg["mean"] == (0.5, 0.5, 0.5)
    assert "tag:mytag" in backbone.identity and "qg=1" in backbone.identity
    assert isinstance(backbone.model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)


def test_missing_cached_tag_offline_fails_fast(tiny_config, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VidpromptError, match="not in the local cache"):
        build_backbone("ViT-B-32", "openai")


@pytest.mark.parametrize("model,pretrained,message", [
    ("ViT-Nope", "none", "unknown model"),
    ("missing.json", "none", "model config not found"),
    ("ViT-B-32", "bogus-tag", "unknown pretrained tag 'bogus-tag'"),
    ("ViT-B-32", "/nowhere/w.pt", "weights file not found"),
])
def test_bad_model_arguments_are_usage_errors(model, pretrained, message):
    with pytest.raises(UsageError, match=message):
        build_backbone(model, pretrained)


def test_malformed_config_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="cannot read model config"):
        build_backbone(str(bad), "none")
    bad.write_text('{"embed_dim": 8}')
    with pytest.raises(UsageError, match="not an open_clip model config"):
        build_backbone(str(bad), "none")


def test_a_config_file_that_breaks_later_does_not_poison_others(tiny_config, tmp_path):
    import json

    other = tmp_path / "vp-other.json"
    other.write_text(open(tiny_config).read())
    assert build_backbone(str(other), "none").name == "vp-other"
    other.write_text("{broken")  # e.g. edited, or its temp folder reused
    assert build_backbone(tiny_config, "none").name == "vp-tiny"
    changed = json.loads(open(tiny_config).read())
    changed["vision_cfg"]["layers"] = 1
    same_stem = tmp_path / "vp-tiny.json"
    same_stem.write_text(json.dumps(changed))
    assert len(build_backbone(str(same_stem), "none").model.visual.transformer.resblocks) == 1
    assert len(build_backbone(tiny_config, "none").model.visual.transformer.resblocks) == 2
