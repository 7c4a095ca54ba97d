"""Checkpoints on the Hugging Face Hub, without a network: a Hub cache written by the test in huggingface_hub's own
layout, read with ``HF_HUB_OFFLINE=1`` through the real huggingface_hub code; ``push --dry-run`` checked file by
file; the upload is one huggingface_hub call, made with that folder."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from clirun import run_process
from media import solid_video, write_video
from vidprompt.checkpoint import save_checkpoint
from vidprompt.errors import UsageError, VidpromptError
from vidprompt.methods.promptclip import PromptCLIP
from vidprompt.video import ViewConfig

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def place_in_hub_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """``files`` as huggingface_hub stores a downloaded snapshot: ``models--ORG--NAME/refs/main`` names the
    commit, ``snapshots/COMMIT/NAME`` holds each file."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    for name, source in files.items():
        target = repo / "snapshots" / COMMIT / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_backbone):
    """A run folder as training leaves it: checkpoints, resolved config, metrics, and an eval report beside it."""
    run = tmp_path_factory.mktemp("run") / "kitchen"
    run.mkdir()
    model = PromptCLIP(tiny_backbone, temporal_layers=1, temporal_heads=4, max_frames=4)
    with torch.no_grad():
        model.temporal.position.normal_()
    save_checkpoint(run / "best.safetensors", model, ViewConfig(frames=4), ["red", "blue", "green"])
    save_checkpoint(run / "last.safetensors", model, ViewConfig(frames=4), ["red", "blue", "green"])
    (run / "config.yaml").write_text(yaml.safe_dump({"method": "promptclip", "data": "videos/", "epochs": 3,
                                                     "batch_size": 8, "accumulate": 1, "lr": 5e-4}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 3, "val_accuracy": 0.75}) + "\n")
    (run / "eval").mkdir()
    report = {"dataset": {"name": "kitchen-test"}, "counts": {"evaluated": 12},
              "metrics": {"top1": 0.5, "top5": 1.0, "top_k": 3, "mean_class_accuracy": 0.5}}
    (run / "eval" / "report.json").write_text(json.dumps(report))
    return run


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "red.mp4"
    write_video(path, solid_video((220, 30, 30)))
    return path


def test_dry_run_writes_exactly_the_folder_to_upload(run_dir, tmp_path):
    from vidprompt.hub import sha256_of
    from vidprompt.publish import prepare

    out = prepare(run_dir, tmp_path / "repo", "my-lab/kitchen")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.yaml", "model.safetensors",
                                                    "vidprompt.json"]
    assert (out / "model.safetensors").read_bytes() == (run_dir / "best.safetensors").read_bytes()
    record = json.loads((out / "vidprompt.json").read_text())
    assert record["checkpoint"] == {"file": "model.safetensors", "sha256": sha256_of(run_dir / "best.safetensors"),
                                    "bytes": (run_dir / "best.safetensors").stat().st_size,
                                    "source": "best.safetensors"}
    assert record["classes"] == ["red", "blue", "green"] and record["method"] == "promptclip"
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["library_name"] == "vidprompt" and "promptclip" in header["tags"]
    assert header["metrics"] == ["accuracy"]
    assert "| top-1 | 50.00% |" in card and "| top-3 | 100.00% |" in card  # the report's numbers
    assert "--checkpoint hf-hub:my-lab/kitchen" in card and "Validation accuracy after the last epoch: 75.00%" in card
    with pytest.raises(UsageError, match="not an empty folder"):
        prepare(run_dir, out, "my-lab/kitchen")
    with pytest.raises(UsageError, match="expected ORG/NAME"):
        prepare(run_dir, tmp_path / "other", "kitchen")


def test_push_uploads_that_folder_with_one_huggingface_hub_call(run_dir, tmp_path, monkeypatch):
    import huggingface_hub

    from vidprompt.publish import push

    calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo",
                        lambda self, repo_id, private, exist_ok: calls.append(("create", repo_id, private)) or
                        f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, commit_message):
        calls.append(("upload", repo_id, sorted(os.listdir(folder_path))))

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    url = push(run_dir, "my-lab/kitchen", private=True, staging=tmp_path / "staging")
    assert url == "https://huggingface.co/my-lab/kitchen"
    assert calls == [("create", "my-lab/kitchen", True),
                     ("upload", "my-lab/kitchen", ["README.md", "config.yaml", "model.safetensors", "vidprompt.json"])]


def _env(cache: Path) -> dict:
    return {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}


def test_a_published_checkpoint_pulled_by_name_classifies_as_the_file_does(run_dir, clip, tmp_path):
    from vidprompt.publish import prepare

    folder = prepare(run_dir, tmp_path / "repo", "my-lab/kitchen")
    cache = tmp_path / "hub"
    place_in_hub_cache(cache, "my-lab/kitchen", {p.name: p for p in folder.iterdir()})
    env = _env(cache)
    local = run_process(["classify", clip, "--checkpoint", run_dir / "best.safetensors", "--json", "-j", "0"],
                        env=env, workdir=tmp_path)
    pulled = run_process(["classify", clip, "--checkpoint", "hf-hub:my-lab/kitchen", "--json", "-j", "0"],
                         env=env, workdir=tmp_path)
    assert local.code == pulled.code == 0, pulled.stderr
    assert json.loads(pulled.stdout)[0]["predictions"] == json.loads(local.stdout)[0]["predictions"]
    named = run_process(["inspect", "hf-hub:my-lab/kitchen/model.safetensors", "--json"], env=env, workdir=tmp_path)
    assert named.code == 0 and json.loads(named.stdout)["classes"] == ["red", "blue", "green"]


def test_a_changed_file_in_the_cache_is_refused(run_dir, tmp_path):
    from vidprompt.hub import local_checkpoint
    from vidprompt.publish import prepare

    folder = prepare(run_dir, tmp_path / "repo", "my-lab/kitchen")
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes() + b" ")
    cache = tmp_path / "hub"
    place_in_hub_cache(cache, "my-lab/kitchen", {p.name: p for p in folder.iterdir()})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(cache))
        mp.setenv("HF_HUB_OFFLINE", "1")
        import huggingface_hub.constants as constants

        mp.setattr(constants, "HF_HUB_CACHE", str(cache))
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        with pytest.raises(VidpromptError, match="does not match the SHA-256"):
            local_checkpoint("hf-hub:my-lab/kitchen")


def test_offline_and_not_cached_is_one_line_within_seconds(clip, tmp_path):
    run = run_process(["classify", clip, "--checkpoint", "hf-hub:my-lab/absent", "--labels", "a,b"],
                      env=_env(tmp_path / "empty-hub"), workdir=tmp_path, timeout=60)
    assert run.code == 1 and len(run.stderr.strip().splitlines()) == 1
    assert "hf-hub:my-lab/absent: not in the Hugging Face cache and HF_HUB_OFFLINE is set" in run.stderr
    assert run.seconds < 30


@pytest.mark.parametrize("ref, problem", [("hf-hub:kitchen", "expected hf-hub:ORG/REPO"),
                                          ("hf-hub:a//b", "expected hf-hub:ORG/REPO"),
                                          ("hf-hub:a/b/../c", "expected hf-hub:ORG/REPO")])
def test_malformed_names_are_usage_errors(ref, problem):
    from vidprompt.hub import parse_ref

    with pytest.raises(UsageError, match=problem):
        parse_ref(ref)


def test_names_parse_into_repo_file_and_revision():
    from vidprompt.hub import HubRef, parse_ref

    assert parse_ref("hf-hub:org/repo") == HubRef("org/repo", "model.safetensors", None)
    assert parse_ref("hf-hub:org/repo/runs/best.safetensors@v1") == HubRef("org/repo", "runs/best.safetensors", "v1")
    assert str(parse_ref("hf-hub:org/repo@main")) == "hf-hub:org/repo@main"


def test_an_open_clip_model_on_the_hub_by_name(tiny_backbone, tiny_config, clip, tmp_path):
    """``--model hf-hub:ORG/REPO``: open_clip's repository layout (open_clip_config.json with model_cfg and
    preprocess_cfg, open_clip_model.safetensors), used as the same config and weights given as files."""
    from safetensors.torch import save_file

    weights = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_backbone.model.state_dict().items()}, str(weights))
    config = tmp_path / "open_clip_config.json"
    config.write_text(json.dumps({"model_cfg": json.loads(Path(tiny_config).read_text()),
                                  "preprocess_cfg": tiny_backbone.preprocess_cfg}))
    cache = tmp_path / "hub"
    place_in_hub_cache(cache, "my-lab/tiny-clip", {config.name: config, weights.name: weights})
    env = {**_env(cache), "VIDPROMPT_CACHE_DIR": str(tmp_path / "vp-cache")}
    args = ["classify", clip, "--labels", "red,blue", "--json", "-j", "0"]
    by_name = run_process([*args, "--model", "hf-hub:my-lab/tiny-clip"], env=env, workdir=tmp_path)
    by_file = run_process([*args, "--model", tiny_config, "--pretrained", weights], env=env, workdir=tmp_path)
    assert by_name.code == by_file.code == 0, by_name.stderr
    assert json.loads(by_name.stdout)[0]["predictions"] == json.loads(by_file.stdout)[0]["predictions"]
    missing = run_process([*args, "--model", "hf-hub:my-lab/absent"], env=env, workdir=tmp_path, timeout=60)
    assert missing.code == 1 and "not in the Hugging Face cache" in missing.stderr
