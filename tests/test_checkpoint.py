"""Checkpoints rebuild exactly the backbone they were trained on, or refuse with one line."""

import json

import open_clip
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import TINY_CONFIG
from vidprompt.backbone import build_backbone
from vidprompt.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from vidprompt.errors import UsageError, VidpromptError
from vidprompt.methods.promptclip import PromptCLIP
from vidprompt.video import ViewConfig


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDPROMPT_CACHE_DIR", str(tmp_path / "cache"))


def saved(tmp_path, backbone, name="ckpt.safetensors"):
    model = PromptCLIP(backbone, temporal_layers=1, temporal_heads=4, max_frames=4)
    with torch.no_grad():
        model.temporal.position.normal_()  # something trained
    return save_checkpoint(tmp_path / name, model, ViewConfig(frames=4), ["a", "b"]), model


def uses_quick_gelu(backbone):
    return isinstance(backbone.model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)


def test_round_trip_in_eval_mode_with_the_same_tensors(tmp_path, tiny_backbone):
    path, model = saved(tmp_path, tiny_backbone)
    loaded, info = load_checkpoint(path)
    assert not loaded.training and info.quick_gelu is False and not uses_quick_gelu(loaded.backbone)
    assert loaded.backbone.identity == tiny_backbone.identity
    assert all(torch.equal(loaded.trainable_state()[k], v) for k, v in model.trainable_state().items())


def test_the_activation_is_recorded_and_rebuilt(tmp_path):
    """OpenAI weights run QuickGELU; a checkpoint trained on them and loaded from a local copy of the
    weights (no tag to say so) must rebuild QuickGELU, not the config's GELU."""
    backbone = build_backbone(str(TINY_CONFIG), "none", quick_gelu=True)
    assert uses_quick_gelu(backbone) and backbone.quick_gelu
    path, _ = saved(tmp_path, backbone)
    assert read_checkpoint_info(path).describe()["quick_gelu"] is True
    loaded, _ = load_checkpoint(path)
    assert uses_quick_gelu(loaded.backbone) and loaded.backbone.identity == backbone.identity


def test_another_config_under_the_same_name_is_refused(tmp_path, tiny_backbone):
    path, _ = saved(tmp_path, tiny_backbone)
    same = tmp_path / "copy" / "vp-tiny.json"
    same.parent.mkdir()
    same.write_text(TINY_CONFIG.read_text())
    assert load_checkpoint(path, model=str(same))[0].backbone.identity.split("|")[1:] == \
        tiny_backbone.identity.split("|")[1:]
    other = tmp_path / "other" / "vp-tiny.json"
    other.parent.mkdir()
    config = json.loads(TINY_CONFIG.read_text())
    config["vision_cfg"]["layers"] += 1
    other.write_text(json.dumps(config))
    with pytest.raises(UsageError, match="differs from the vp-tiny config the checkpoint was trained on"):
        load_checkpoint(path, model=str(other))


def test_real_weights_for_a_random_weights_checkpoint_are_refused(tmp_path, tiny_backbone):
    path, _ = saved(tmp_path, tiny_backbone)
    weights = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_backbone.model.state_dict().items()}, str(weights))
    with pytest.raises(UsageError, match=r"^pretrained .* is not the weights the checkpoint was trained with "
                                         r"\(vp-tiny, 'none'\)"):
        load_checkpoint(path, pretrained=str(weights))


def test_a_model_name_that_is_a_path_is_refused_before_any_file_is_written(tmp_path, tiny_backbone):
    path, _ = saved(tmp_path, tiny_backbone)
    with safe_open(str(path), "pt") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    for name in ("../../escaped/evil", "/tmp/evil", ".hidden", "a\\b"):
        crafted = tmp_path / "crafted.safetensors"
        save_file(tensors, str(crafted), metadata={**meta, "model": name})
        with pytest.raises(VidpromptError, match="damaged checkpoint metadata"):
            load_checkpoint(crafted)
    assert not (tmp_path / "escaped").exists()
