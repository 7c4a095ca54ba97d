"""Published AIM and PromptCLIP checkpoints: safe reading, exact conversion, the official variants, bad files.

Official-format files are written by ``tests/official_files.py`` (the authors' dicts and tensor names, on the
tiny config); the converted models are compared with the official math computed straight from those files.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from clirun import run_forked, run_process
from conftest import TINY_CONFIG
from official_files import (aim_state, official_aim, official_promptclip_logits, official_promptclip_text,
                            official_promptclip_video, promptclip_state, write_aim_file, write_promptclip_file)

from vidprompt.checkpoint import load_checkpoint, read_checkpoint_info
from vidprompt.errors import UsageError, VidpromptError
from vidprompt.official import ConvertOptions
from vidprompt.safe_pickle import Opaque, load_pickled

TINY = ["--model", str(TINY_CONFIG), "--pretrained", "none"]
CLASSES = ["archery", "bowling", "cooking on a campfire", "dancing", "eating"]
# Names of 1 to 9 tokens: the official prompt table gives each length other suffix rows.
NAMES = ["a", "surfing", "playing the violin", "riding a mechanical bull at night", "x y z w v u t s r"]


@pytest.fixture(scope="module")
def backbone():
    from vidprompt.backbone import build_backbone

    return build_backbone(str(TINY_CONFIG), "none", quick_gelu=True)  # the official models run QuickGELU


def tiny(**kwargs) -> ConvertOptions:
    return ConvertOptions(model=str(TINY_CONFIG), pretrained="none", **kwargs)


@pytest.fixture(scope="module")
def world(tmp_path_factory, videos):
    root = tmp_path_factory.mktemp("official")
    (root / "work").mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VIDPROMPT_CACHE_DIR": str(root / "cache")}
    return {"root": root, "env": env, "videos": videos}


def cli(world, *args, timeout=180):
    return run_forked(list(args), env=world["env"], workdir=world["root"] / "work", timeout=timeout)


# --- exactness against the official math ----------------------------------------------------------------------

@pytest.mark.parametrize("frames", [8, 16, 32])
def test_aim_equals_official_math(tmp_path, backbone, frames):
    state = aim_state(backbone, frames=frames, classes=5, seed=frames)
    path = write_aim_file(tmp_path / "aim.pth", state, frames=frames, classes=5)
    model, info = load_checkpoint(path, official=tiny(classes=CLASSES))
    assert info.hparams["num_frames"] == frames and info.hparams["head_classes"] == 5
    x = torch.randn(2, frames, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    want_logits, want_tokens = official_aim(state, x, heads=2, scale=0.5)
    with torch.no_grad():
        tokens = model.pooled_frames(x)
        head = model.closed_set(info.classes)
        logits = head.logits(head.encode_video(x), head.encode_labels(info.classes))
        # open vocabulary: CLIP's projection of the same time-averaged tokens, normalised
        video = model.encode_video(x)
    torch.testing.assert_close(tokens, want_tokens, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, want_logits, atol=1e-5, rtol=0)
    projected = want_tokens @ backbone.model.visual.proj
    torch.testing.assert_close(video, torch.nn.functional.normalize(projected.mean(1), dim=-1), atol=1e-5, rtol=0)


def test_aim_with_temporal_adapter_in_equals_official_math(tmp_path, backbone):
    state = aim_state(backbone, frames=8, classes=0, adapter_in=True)
    path = write_aim_file(tmp_path / "ssv2.pth", state, frames=8, classes=0, scale=1, interval=2, clips=1,
                          crop="ThreeCrop", dataset="sthv2", adapter_in=True)
    model, info = load_checkpoint(path, official=tiny())
    assert info.hparams["temporal_adapter_in"] and info.hparams["joint_scale"] == 1.0
    assert (info.view.clips, info.view.crops, info.view.stride) == (1, 3, 2)
    x = torch.randn(1, 8, 3, 32, 32)
    _, want = official_aim(state, x, heads=2, scale=1.0, adapter_in=True)
    with torch.no_grad():
        torch.testing.assert_close(model.pooled_frames(x), want, atol=1e-5, rtol=0)


def test_zero_initialised_official_aim_is_the_frozen_clip(tmp_path, backbone):
    state = aim_state(backbone, frames=8, classes=0, zero=True)
    model, _ = load_checkpoint(write_aim_file(tmp_path / "zero.pth", state, classes=0), official=tiny())
    x = torch.randn(2, 8, 3, 32, 32)
    with torch.no_grad():
        ours = model.encode_frames(x)
        clip = backbone.model.encode_image(x.flatten(0, 1)).unflatten(0, (2, 8))
    torch.testing.assert_close(ours, clip, atol=1e-5, rtol=0)


@pytest.mark.parametrize("frames", [8, 16, 32])
def test_promptclip_equals_official_math(tmp_path, backbone, frames):
    state = promptclip_state(backbone, frames=frames, layers=2, seed=frames)
    path = write_promptclip_file(tmp_path / "run" / "model_best.pth.tar", state)
    model, info = load_checkpoint(path, official=tiny(n_prefix=8, n_suffix=5))
    assert info.hparams["prompt_layout"] == "official" and not info.hparams["frame_norm"]
    features = torch.randn(3, frames, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model.logits(model.aggregate(features), model.encode_labels(NAMES))
    want = official_promptclip_logits(official_promptclip_video(state, features, heads=8),
                                      official_promptclip_text(state, backbone.tokenizer, NAMES, 8, 5, heads=2))
    torch.testing.assert_close(logits, want, atol=1e-5, rtol=0)


def test_official_promptclip_without_prompts_is_plain_clip_text(tmp_path, backbone):
    state = promptclip_state(backbone, frames=8, layers=1)
    model, _ = load_checkpoint(write_promptclip_file(tmp_path / "p0.pth.tar", state),
                               official=tiny(n_prefix=0, n_suffix=0))
    with torch.no_grad():
        ours = model.encode_labels(NAMES)
        clip = backbone.model.encode_text(backbone.tokenizer(NAMES))
    torch.testing.assert_close(ours, torch.nn.functional.normalize(clip, dim=-1), atol=1e-5, rtol=0)


def test_official_layout_refuses_a_name_that_does_not_fit(tmp_path, backbone):
    state = promptclip_state(backbone, frames=8)
    model, _ = load_checkpoint(write_promptclip_file(tmp_path / "p.pth.tar", state),
                               official=tiny(n_prefix=35, n_suffix=35))
    with pytest.raises(UsageError, match="official PromptCLIP layout fits at most 5"):
        model.encode_labels(["a b c d e f g h"])


def test_prompt_lengths_come_from_the_official_run_folder(tmp_path, backbone):
    state = promptclip_state(backbone, frames=8)
    saved = write_promptclip_file(tmp_path / "a" / "ckpt.pth.tar", state,
                                  command={"prefix": 4, "postfix": 3, "tfm_heads": 4, "dataset": "HMDB51-feature"})
    info = read_checkpoint_info(saved, official=tiny())
    assert (info.hparams["n_prefix"], info.hparams["n_suffix"], info.hparams["temporal_heads"]) == (4, 3, 4)
    assert len(info.classes) == 51  # the HMDB51 training set named in the saved command
    named = tmp_path / "2022_07_01-dataset_HMDB51-iter_1e+03-prompt_6+X+2-Temp" / "c.pth.tar"
    info = read_checkpoint_info(write_promptclip_file(named, state), official=tiny())
    assert (info.hparams["n_prefix"], info.hparams["n_suffix"]) == (6, 2)
    with pytest.raises(UsageError, match="--prefix N --suffix M"):
        read_checkpoint_info(write_promptclip_file(tmp_path / "bare" / "c.pth.tar", state), official=tiny())


# --- safe loading ------------------------------------------------------------------------------------------------

class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_with_a_code_payload_never_runs(tmp_path, world):
    marker = tmp_path / "pwned"
    as_zip = tmp_path / "payload.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": _Payload(marker)}, as_zip)
    top = tmp_path / "top.pth"
    torch.save(_Payload(marker), top)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Payload(marker)))
    loaded = load_pickled(as_zip)
    assert isinstance(loaded["meta"], Opaque) and loaded["meta"].name == "posix.system"
    assert not marker.exists()
    for path, says in ((as_zip, "not an AIM or PromptCLIP checkpoint"), (top, "a call to posix.system (not run)"),
                       (raw, "refused without running it")):
        run = cli(world, "classify", world["videos"]["red"], "--checkpoint", path, *TINY)
        assert run.code == 1, run.stderr
        assert len(run.lines) == 1 and says in run.stderr, run.stderr
    assert not marker.exists()


def _aim_file(tmp_path, backbone, name="aim.pth", **edit):
    state = aim_state(backbone, frames=8, classes=51)
    for key, value in edit.items():
        key = key.replace("__", ".")
        if value is None:
            state.pop(key)
        else:
            state[key] = value
    return write_aim_file(tmp_path / name, state, classes=51, dataset="hmdb51")


def test_bad_official_files_are_one_line(tmp_path, world, backbone):
    good = _aim_file(tmp_path, backbone)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    wrong_shape = _aim_file(tmp_path, backbone, "shape.pth", backbone__temporal_embedding=torch.zeros(1, 8, 63))
    missing = _aim_file(tmp_path, backbone, "missing.pth", backbone__ln_post__weight=None)
    no_adapter = _aim_file(tmp_path, backbone, "adapter.pth",
                           **{"backbone__transformer__resblocks__1__S_Adapter__D_fc2__bias": None})
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    cases = [(truncated, 1, "damaged or truncated PyTorch file"), (wrong_shape, 1, "temporal_embedding"),
             (missing, 1, "no backbone.ln_post.weight"), (no_adapter, 1, "S_Adapter.D_fc2.bias"),
             (text, 1, "not a PyTorch file")]
    for path, code, says in cases:
        run = cli(world, "classify", world["videos"]["red"], "--checkpoint", path, *TINY)
        errors = [line for line in run.lines if "warning: --pretrained none" not in line]
        assert run.code == code and len(errors) == 1 and says in run.stderr, (path.name, run.stderr)
        assert "Traceback" not in run.stderr
    # a head of 51 classes converted with the 400 names of Kinetics: a usage error
    run = cli(world, "convert", good, "--out", tmp_path / "x.safetensors", "--label-set", "k400", *TINY)
    assert run.code == 2 and "the linear head has 51 classes but 400 class names" in run.stderr, run.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_frozen_weights_of_another_clip_are_refused(tmp_path, world, backbone):
    state = aim_state(backbone, frames=8, classes=51)
    state["backbone.conv1.weight"] = state["backbone.conv1.weight"] + 0.5
    path = write_aim_file(tmp_path / "other.pth", state, classes=51, dataset="hmdb51")
    run = cli(world, "convert", path, "--out", tmp_path / "o.safetensors", *TINY)
    assert run.code == 1 and "frozen CLIP weights are not" in run.stderr and "visual.conv1.weight" in run.stderr


# --- the commands ------------------------------------------------------------------------------------------------

def test_convert_then_every_command_uses_the_file(tmp_path, world, backbone):
    source = _aim_file(tmp_path, backbone)
    out = tmp_path / "aim_hmdb.safetensors"
    run = run_process(["convert", source, "--out", out, *TINY], env=world["env"], workdir=world["root"] / "work")
    assert run.code == 0, run.stderr
    assert "aim on vp-tiny" in run.stdout and "51 classes" in run.stdout and "aim-official" in run.stdout
    info = json.loads(cli(world, "inspect", out, "--json").stdout)
    assert info["origin"]["format"] == "aim-official" and info["origin"]["file"] == "aim.pth"
    assert len(info["origin"]["sha256"]) == 64 and info["hparams"]["head_classes"] == 51
    assert info["view"] == {"frames": 8, "sampling": "mmaction-dense", "stride": 16, "clips": 3, "crops": 1}
    assert info["classes"][:2] == ["brush hair", "cartwheel"]
    again = cli(world, "convert", source, "--out", out, *TINY)
    assert again.code == 2 and "--force" in again.stderr

    clip = world["videos"]["index_mp4"]
    direct = cli(world, "classify", clip, "--checkpoint", source, "--json", *TINY)
    converted = cli(world, "classify", clip, "--checkpoint", out, "--json", *TINY)
    assert direct.code == converted.code == 0, direct.stderr + converted.stderr
    assert "converted in memory" in direct.stderr and "converted in memory" not in converted.stderr
    assert json.loads(direct.stdout) == json.loads(converted.stdout)
    ranked = json.loads(converted.stdout)[0]["predictions"]
    assert all(p["label"] in info["classes"] for p in ranked) and "text encoder" not in converted.stderr
    # the head's own classes from the label set: still the head; other labels: the text encoder, said once
    same = cli(world, "classify", clip, "--checkpoint", out, "--label-set", "hmdb51", "--json", *TINY)
    assert json.loads(same.stdout) == json.loads(converted.stdout) and "text encoder" not in same.stderr
    open_vocab = cli(world, "classify", clip, "--checkpoint", out, "--labels", "surfing,cooking", "--json", *TINY)
    assert open_vocab.code == 0 and "CLIP text encoder (open vocabulary)" in open_vocab.stderr
    assert {p["label"] for p in json.loads(open_vocab.stdout)[0]["predictions"]} == {"surfing", "cooking"}
    data = tmp_path / "data"
    for name, video in (("brush_hair", "red"), ("cartwheel", "index_mp4")):
        (data / name).mkdir(parents=True)
        (data / name / "v.mp4").write_bytes(Path(world["videos"][video]).read_bytes())
    for args in (["localize", clip, "--checkpoint", out, "--window", "1", "--json"],
                 ["index", world["videos"]["red"], "--out", tmp_path / "idx", "--checkpoint", out],
                 ["eval", "--data", data, "--checkpoint", out, "--out", tmp_path / "report"]):
        run = cli(world, *args, *TINY)
        assert run.code == 0, run.stderr
    # two of the head's 51 classes: scored through the text encoder, in the published views
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["counts"]["evaluated"] == 2 and "CLIP text encoder" in run.stderr
    assert (report["view"]["frames"], report["view"]["clips"], report["view"]["stride"]) == (8, 3, 16)


def test_convert_promptclip_records_the_official_variant(tmp_path, world, backbone):
    state = promptclip_state(backbone, frames=8, layers=1)
    source = write_promptclip_file(tmp_path / "hmdb" / "model_best.pth.tar", state)
    out = tmp_path / "pc.safetensors"
    run = cli(world, "convert", source, "--out", out, "--prefix", "4", "--suffix", "4", "--labels",
              "surfing,cooking", *TINY)
    assert run.code == 0, run.stderr
    info = json.loads(cli(world, "inspect", out, "--json").stdout)
    assert info["hparams"]["prompt_layout"] == "official" and info["hparams"]["temporal_activation"] == "quick_gelu"
    assert info["classes"] == ["surfing", "cooking"] and info["origin"]["iteration"] == 1100
    model, _ = load_checkpoint(out)
    direct, _ = load_checkpoint(source, official=tiny(n_prefix=4, n_suffix=4))
    with torch.no_grad():
        torch.testing.assert_close(model.encode_labels(NAMES), direct.encode_labels(NAMES))
    unlabelled = tmp_path / "unlabelled.safetensors"  # no training classes: labels are given at each use
    assert cli(world, "convert", source, "--out", unlabelled, "--prefix", "2", "--suffix", "2", *TINY).code == 0
    assert read_checkpoint_info(unlabelled).classes == []
    run = cli(world, "classify", world["videos"]["red"], "--checkpoint", unlabelled, "--pretrained", "none")
    assert run.code == 2 and "no labels" in run.stderr
    missing = cli(world, "convert", source, "--out", tmp_path / "m.safetensors", *TINY)
    assert missing.code == 2 and "--prefix N --suffix M" in missing.stderr


def test_published_views_come_from_the_config(tmp_path, backbone):
    state = aim_state(backbone, frames=32, classes=0)
    path = write_aim_file(tmp_path / "k700.pth", state, frames=32, classes=0, interval=4, clips=3, crop="ThreeCrop")
    view = read_checkpoint_info(path, official=tiny()).view
    assert (view.frames, view.sampling, view.stride, view.clips, view.crops) == (32, "mmaction-dense", 4, 3, 3)
    bare = write_aim_file(tmp_path / "bare.pth", aim_state(backbone, frames=16, classes=0), frames=16, classes=0,
                          config=False)
    view = read_checkpoint_info(bare, official=tiny(view={"clips": 1})).view
    assert (view.frames, view.stride, view.clips) == (16, 8, 1)


def test_restricted_loader_reads_what_weights_only_refuses(tmp_path, backbone):
    path = _aim_file(tmp_path, backbone)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # the mmcv ConfigDict in meta
    loaded = load_pickled(path)
    assert isinstance(loaded["meta"]["extra"], Opaque) and loaded["meta"]["extra"].items == [("lr", 3e-4)]
    assert torch.equal(loaded["state_dict"]["backbone.conv1.weight"],
                       backbone.model.state_dict()["visual.conv1.weight"])
    # a storage shorter than its tensors say (a damaged archive member) is one error, not a crash
    damaged = tmp_path / "damaged.pth"
    with zipfile.ZipFile(path) as archive, zipfile.ZipFile(damaged, "w") as out:
        for item in archive.infolist():
            data = archive.read(item)
            out.writestr(item, data[:-4] if item.filename.endswith("/data/0") else data)
    with pytest.raises(VidpromptError, match=r"damaged.pth: damaged or truncated PyTorch file \(storage 0 holds"):
        load_pickled(damaged)
    # a small file cannot claim a large allocation: compressed members and stride-0 tensors are refused
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path) as archive, zipfile.ZipFile(bomb, "w") as out:
        for item in archive.infolist():
            deflate = item.filename.endswith("/data/0")
            out.writestr(item.filename, archive.read(item), zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
    with pytest.raises(VidpromptError, match="is compressed, which torch.save never does"):
        load_pickled(bomb)
    expanded = tmp_path / "expanded.pth"
    torch.save({"w": torch.zeros(1, 1, 64).expand(1, 2_000_000, 64)}, expanded)
    with pytest.raises(VidpromptError, match="a tensor of 128000000 elements on a storage of 64"):
        load_pickled(expanded)


def test_drop_path_drops_whole_videos():
    from vidprompt.methods.aim import DropPath

    drop = DropPath(0.5).train()
    torch.manual_seed(0)
    out = drop(torch.ones(16 * 4, 3, 2), frames=4).reshape(16, 4, -1)
    kept = out.flatten(1).amax(dim=1) > 0
    assert 0 < kept.sum() < 16  # some videos dropped, some kept
    for video in out:
        assert torch.all(video == video[0, 0])  # all frames of a video share the draw


def test_weight_decay_follows_the_official_recipes(backbone):
    from vidprompt.methods.aim import AIM
    from vidprompt.methods.promptclip import PromptCLIP
    from vidprompt.training import _param_groups

    aim = AIM(backbone, num_frames=4)
    decayed, exempt = _param_groups(aim, 0.05)
    names = {id(p): n for n, p in aim.named_parameters()}
    assert {names[id(p)] for p in exempt["params"]} == {"ln_post.weight", "ln_post.bias"}
    assert "temporal_embedding" in {names[id(p)] for p in decayed["params"]}
    prompt = PromptCLIP(backbone, n_prefix=2, n_suffix=2, temporal_layers=1)
    decayed, exempt = _param_groups(prompt, 0.01)
    assert not exempt["params"] and len(decayed["params"]) == sum(p.requires_grad for p in prompt.parameters())


def test_an_unknown_safetensors_file_and_an_unknown_pickle(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.ones(2)}, str(other))
    with pytest.raises(VidpromptError, match="not a vidprompt checkpoint"):
        read_checkpoint_info(other)
    state = tmp_path / "state.pth"
    torch.save({"encoder.weight": torch.ones(2)}, state)
    with pytest.raises(VidpromptError, match="found 1 tensors such as encoder.weight"):
        read_checkpoint_info(state)


def test_format_is_recognised_by_content_and_the_file_is_released(tmp_path, backbone):
    import shutil

    import vidprompt.official as official

    source = write_aim_file(tmp_path / "aim.pth", aim_state(backbone, frames=8, classes=0), classes=0)
    renamed = tmp_path / "downloaded.safetensors"  # a misleading name does not decide the format
    shutil.copy(source, renamed)
    assert read_checkpoint_info(renamed, official=tiny()).method == "aim"
    assert official._LAST_READ  # kept between reading the info and loading the model
    model, _ = load_checkpoint(renamed, official=tiny())
    assert not official._LAST_READ  # and released once the model is built


def _mmaction_test_frames(total: int, clip_len: int, interval: int, num_clips: int, uniform: bool) -> list:
    """mmaction2's ``SampleFrames(test_mode=True)`` written out from its definition, for comparison."""
    if uniform:
        size = float(total - 1) / clip_len
        return [[(int(np.round(size * i)) + int(np.round(size * (i + 1)))) // 2 for i in range(clip_len)]]
    span = clip_len * interval
    average = (total - span + 1) / float(num_clips)
    offsets = [int(i * average + average / 2.0) if total > span - 1 else 0 for i in range(num_clips)]
    return [[(o + j * interval) % total for j in range(clip_len)] for o in offsets]


def test_mmaction_sampling_matches_its_definition():
    from vidprompt.video import ViewConfig, sample_indices

    for total in list(range(1, 80)) + [299, 300, 301, 1000]:
        for frames, stride, clips in ((8, 16, 3), (32, 4, 3), (16, 8, 1), (8, 2, 1)):
            view = ViewConfig(frames=frames, sampling="mmaction-dense", stride=stride, clips=clips)
            assert sample_indices(total, view).tolist() == _mmaction_test_frames(total, frames, stride, clips, False)
        for frames in (8, 16, 32):
            view = ViewConfig(frames=frames, sampling="mmaction-uniform")
            assert sample_indices(total, view).tolist() == _mmaction_test_frames(total, frames, 1, 1, True)
    # the reviewer's examples: clip starts of a 300-frame video at 32x4x3, and an 8-frame video sampled uniformly
    assert sample_indices(300, ViewConfig(frames=32, sampling="mmaction-dense", stride=4, clips=3))[:, 0].tolist() \
        == [28, 86, 144]
    assert sample_indices(8, ViewConfig(frames=8, sampling="mmaction-uniform"))[0].tolist() == [0, 1, 2, 3, 4, 4, 5, 6]
    rng = np.random.default_rng(0)
    for total in (5, 40, 300):  # training draws stay inside the video
        view = ViewConfig(frames=8, sampling="mmaction-dense", stride=4, clips=2)
        assert 0 <= sample_indices(total, view, rng).min() and sample_indices(total, view, rng).max() < total
        view = ViewConfig(frames=8, sampling="mmaction-uniform")
        assert 0 <= sample_indices(total, view, rng).min() and sample_indices(total, view, rng).max() < total


def test_a_head_without_names_is_left_aside_in_memory_and_named_by_convert(tmp_path, world, backbone):
    state = aim_state(backbone, frames=8, classes=48)
    source = write_aim_file(tmp_path / "d48.pth", state, classes=48, dataset="diving48")
    clip = world["videos"]["red"]
    run = cli(world, "classify", clip, "--checkpoint", source, "--labels", "forward dive,back dive", "--json", *TINY)
    assert run.code == 0 and "head is left aside" in run.stderr, run.stderr
    assert len([line for line in run.lines if "converted in memory" in line]) == 1
    refused = cli(world, "convert", source, "--out", tmp_path / "d48.safetensors", *TINY)
    assert refused.code == 2 and "--labels-file" in refused.stderr
    names = tmp_path / "d48.txt"
    names.write_text("".join(f"dive {i}\n" for i in range(48)))
    named = cli(world, "convert", source, "--out", tmp_path / "d48.safetensors", "--labels-file", names, *TINY)
    assert named.code == 0, named.stderr
    # the head's classes in another spelling and order are still the head's classes
    spelled = ",".join(f"Dive_{i}" for i in reversed(range(48)))
    head = cli(world, "classify", clip, "--checkpoint", tmp_path / "d48.safetensors", "--json", *TINY)
    same = cli(world, "classify", clip, "--checkpoint", tmp_path / "d48.safetensors", "--labels", spelled, "--json",
               *TINY)
    assert "text encoder" not in same.stderr
    top = json.loads(head.stdout)[0]["predictions"][0]
    other = json.loads(same.stdout)[0]["predictions"][0]
    assert other["label"].lower().replace("_", " ") == top["label"] and other["score"] == pytest.approx(top["score"])


def test_damaged_layouts_and_configs_are_one_line(tmp_path, world, backbone):
    from vidprompt.official.mmconfig import read_config

    assert read_config("x = {(1, [2]): 2}\ny = dict(a=1)") == {"x": {}, "y": {"a": 1}}
    assert read_config("x = " + "[" * 100000 + "]" * 100000) == {}
    assert read_config("import os\nos.system('touch /tmp/x')\nz = 3") == {"z": 3}
    state = aim_state(backbone, frames=8, classes=51)
    for name in [k for k in state if ".T_Adapter." in k]:
        state.pop(name)
    path = write_aim_file(tmp_path / "no_t.pth", state, classes=51, dataset="hmdb51")
    run = cli(world, "inspect", path)
    assert run.code == 1 and len(run.lines) == 1 and "no T_Adapter" in run.stderr, run.stderr
