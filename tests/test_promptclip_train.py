"""PromptCLIP training end to end: temporal learning, checkpoints, resume, cache reuse, CLI."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import TINY_CONFIG
from killpoints import Killed, killed_after_write
from media import moving_square, write_video
from vidprompt.checkpoint import load_checkpoint, read_checkpoint
from vidprompt.classifier import VideoClassifier, load_classifier
from vidprompt.config import load_config
from vidprompt.methods.zeroshot import ZeroShotCLIP
from vidprompt.training import Trainer, train
from vidprompt.video import ViewConfig

CLASSES = {"moving right": "right", "moving left": "left"}


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    """Class = direction of motion. 40 frames, 8 segment centres: the sampled frame set is symmetric under
    time reversal, so every sampled frame of a 'right' clip also occurs in some 'left' clip. 16 held-out
    clips per class, so one error does not decide the 90 % threshold."""
    root = tmp_path_factory.mktemp("motion")
    import numpy as np

    rng = np.random.default_rng(0)
    for split, count in (("train", 24), ("test", 16)):
        for name, direction in CLASSES.items():
            for i in range(count):
                frames = moving_square(direction, n=40, square=16, rng=rng)
                write_video(root / split / name / f"{direction}{i}.mp4", frames)
                if split == "test":  # the same clip played backwards
                    write_video(root / "reversed" / name / f"{direction}{i}.mp4", frames[::-1])
    return root


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDPROMPT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def motion_config(motion, out, **overrides):
    options = dict(data=str(motion / "train"), val=str(motion / "test"), model=str(TINY_CONFIG),
                   pretrained="none", epochs=150, batch_size=16, lr=1e-3, warmup_epochs=0.0, temporal_heads=4,
                   num_workers=0, out=str(out))
    options.update(overrides)
    return load_config(None, None, **options)


def test_prompted_model_learns_motion_direction_that_frame_averaging_cannot(motion, tmp_path, cache_dir,
                                                                             tiny_backbone):
    summary = train(motion_config(motion, tmp_path / "run"), progress=False)
    assert summary["history"][-1]["val_accuracy"] >= 0.9

    # Frame averaging is at chance: a linear probe on zero-shot frame-averaged embeddings cannot separate.
    zs = VideoClassifier(ZeroShotCLIP(tiny_backbone), ViewConfig(frames=8), device="cpu", num_workers=0)

    def averaged(split):
        paths = sorted((motion / split).rglob("*.mp4"))
        emb = torch.stack([e[0] for _, _, e, _ in zs.video_embeddings([str(p) for p in paths])])
        labels = torch.tensor([0 if p.parent.name == "moving right" else 1 for p in paths])
        return emb, labels

    x_train, y_train = averaged("train")
    x_test, y_test = averaged("test")
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    probe = torch.nn.Linear(x_train.shape[1], 2)
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2)
    for _ in range(500):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(probe((x_train - mean) / std), y_train).backward()
        opt.step()
    probe_acc = float((probe((x_test - mean) / std).argmax(-1) == y_test).float().mean())
    assert probe_acc <= 0.65, f"frame averaging leaks the class ({probe_acc:.0%})"

    # Held-out clips played backwards flip the trained model's prediction.
    clf = load_classifier(checkpoint=str(tmp_path / "run" / "last.safetensors"), device="cpu", num_workers=0)
    forward = clf.classify(sorted(map(str, (motion / "test").rglob("*.mp4"))))
    backward = clf.classify(sorted(map(str, (motion / "reversed").rglob("*.mp4"))))
    flipped = [f.predictions[0].label != b.predictions[0].label for f, b in zip(forward, backward)]
    assert sum(flipped) / len(flipped) >= 0.9


def test_checkpoint_round_trip_gives_the_same_scores(motion, tmp_path, cache_dir):
    trainer = Trainer(motion_config(motion, tmp_path / "run", epochs=3), progress=False)
    trainer.fit()
    ckpt = tmp_path / "run" / "last.safetensors"
    info, tensors = read_checkpoint(ckpt)
    assert info.method == "promptclip" and info.classes == ["moving left", "moving right"]
    assert all(not name.startswith("clip.") for name in tensors)
    assert ckpt.stat().st_size < 2_000_000
    clip = str(next((motion / "test").rglob("*.mp4")))
    in_memory = VideoClassifier(trainer.model, trainer.view, device="cpu", num_workers=0)
    loaded = load_classifier(checkpoint=str(ckpt), device="cpu", num_workers=0)
    labels = ["moving left", "moving right", "a square sliding sideways"]  # a name never trained on
    a = in_memory.classify([clip], labels)[0].probabilities
    b = loaded.classify([clip], labels)[0].probabilities
    torch.testing.assert_close(a, b)
    model, _ = load_checkpoint(ckpt)
    for name, tensor in trainer.model.trainable_state().items():
        assert torch.equal(model.trainable_state()[name], tensor)


def test_interrupted_training_resumes_to_identical_tensors(motion, tmp_path, cache_dir):
    reference = motion_config(motion, tmp_path / "straight", epochs=6, batch_size=8)
    train(reference, progress=False)

    class Killed(Exception):
        pass

    def kill_after_epoch_3(record):
        if record["epoch"] == 3:
            raise Killed

    broken = Trainer(motion_config(motion, tmp_path / "resumed", epochs=6, batch_size=8), progress=False)
    broken.out.mkdir(parents=True)
    from vidprompt.config import save_config

    save_config(broken.cfg, broken.out / "config.yaml")
    with pytest.raises(Killed):
        broken.fit(on_epoch=kill_after_epoch_3)
    train(load_config(None, None, out=str(tmp_path / "resumed")), resume=True, progress=False)
    _, a = read_checkpoint(tmp_path / "straight" / "last.safetensors")
    _, b = read_checkpoint(tmp_path / "resumed" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]


def test_a_kill_between_any_two_saved_files_loses_nothing(motion, tmp_path, cache_dir):
    """Each epoch writes several files (checkpoints, metrics, state). Killed right after any one of them and
    resumed, the run ends with the files of an uninterrupted run: best.safetensors included."""
    import vidprompt.training as train_module

    def config(out):
        return motion_config(motion, tmp_path / out, epochs=3, batch_size=8)

    def run_killed_after(kill_at, out):
        with killed_after_write(train_module, kill_at) as written:
            train(config(out), progress=False)
        return len(written)

    total = run_killed_after(None, "straight")
    assert total >= 9  # at least last, metrics and state for each of 3 epochs
    for kill_at in range(1, total):
        out = f"killed_{kill_at}"
        with pytest.raises(Killed):
            run_killed_after(kill_at, out)
        train(load_config(None, None, out=str(tmp_path / out)), resume=True, progress=False)
        for name in ("best.safetensors", "last.safetensors"):
            meta_a, a = read_checkpoint(tmp_path / "straight" / name)
            meta_b, b = read_checkpoint(tmp_path / out / name)
            assert meta_a.extra == meta_b.extra, (kill_at, name)
            assert all(torch.equal(a[k], b[k]) for k in a), (kill_at, name)
        assert (tmp_path / out / "metrics.jsonl").read_text().count("\n") == 3


def test_a_second_run_into_a_busy_folder_is_refused(motion, tmp_path, cache_dir):
    from vidprompt.errors import VidpromptError
    from vidprompt.locks import FileLock, fcntl

    if fcntl is None:
        pytest.skip("no flock on this platform")
    out = tmp_path / "run"
    out.mkdir()
    other = FileLock(out / ".run.lock")
    assert other.acquire(blocking=False)  # as if another train-prompts were writing here
    with pytest.raises(VidpromptError, match="being trained by another `vidprompt train-prompts`"):
        train(motion_config(motion, out, epochs=1), progress=False)
    assert not (out / "state.pt").exists()
    other.release()
    assert train(motion_config(motion, out, epochs=1), progress=False)["epochs"] == 1


def test_resume_refuses_a_state_that_does_not_fit(motion, tmp_path, cache_dir):
    from vidprompt.errors import VidpromptError

    out = tmp_path / "run"
    train(motion_config(motion, out, epochs=1), progress=False)
    state = torch.load(out / "state.pt", weights_only=True)
    state["model"]["clip.visual.proj"] = torch.zeros(1)  # never copied into the frozen backbone
    torch.save(state, out / "state.pt")
    with pytest.raises(VidpromptError, match="do not fit this run's model"):
        train(load_config(None, None, out=str(out)), resume=True, progress=False)


def test_a_video_that_failed_in_its_drawn_sampling_uses_another(motion, tmp_path, cache_dir):
    trainer = Trainer(motion_config(motion, tmp_path / "run", epochs=1), progress=False)
    path = trainer.data.train_paths[0]
    first, second = torch.zeros(8, 32), torch.ones(8, 32)
    tables = [{}, {path: first}, {path: second}]
    assert trainer._cached_draw(tables, 0, 0) is first  # draw 0 did not decode: the next one that did
    assert trainer._cached_draw(tables, 0, 2) is second
    assert trainer._cached_draw([{}, {}], 0, 1) is None


def test_feature_cache_is_reused_across_runs(motion, tmp_path, cache_dir):
    first = Trainer(motion_config(motion, tmp_path / "a", epochs=1), progress=False)
    first.fit()
    assert first.cache_stats.encoded == 80 and first.cache_stats.reused == 0
    second = Trainer(motion_config(motion, tmp_path / "b", epochs=1), progress=False)
    second.fit()
    assert second.cache_stats.encoded == 0 and second.cache_stats.reused == 80
    third = Trainer(motion_config(motion, tmp_path / "c", epochs=1, cache_views=2), progress=False)
    third.fit()  # one more random sampling per training video: only those are encoded
    assert third.cache_stats.encoded == 48 and third.cache_stats.reused == 80


def test_shots_and_class_subset(motion, tmp_path, cache_dir):
    classes = tmp_path / "classes.txt"
    classes.write_text("moving right\nmoving left\n")
    trainer = Trainer(motion_config(motion, tmp_path / "r", shots=4, classes=str(classes), val=None,
                                    val_fraction=0.0), progress=False)
    assert trainer.data.classes == ["moving right", "moving left"] and len(trainer.data.train_paths) == 8
    again = Trainer(motion_config(motion, tmp_path / "s", shots=4, classes=str(classes), val=None,
                                  val_fraction=0.0), progress=False)
    assert again.data.train_paths == trainer.data.train_paths


# --- CLI, in real processes ----------------------------------------------------------------------------------
def run(*args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "vidprompt", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


def test_cli_train_kill_resume_classify_inspect(motion, tmp_path):
    env = {"VIDPROMPT_CACHE_DIR": str(tmp_path / "cache")}
    common = ["train-prompts", "--data", motion / "train", "--val", motion / "test", "--model", TINY_CONFIG,
              "--pretrained", "none", "--epochs", "20", "--batch-size", "16", "--lr", "1e-3",
              "--set", "temporal_heads=4", "--set", "warmup_epochs=0", "--num-workers", "0", "-q"]
    straight = run(*common, "--out", tmp_path / "straight", env=env)
    assert straight.returncode == 0, straight.stderr
    summary = json.loads(straight.stdout)
    assert summary["epochs"] == 20

    # Kill a second run at an arbitrary point after its first epoch, then resume it.
    cmd = [sys.executable, "-m", "vidprompt", *map(str, common), "--out", str(tmp_path / "killed")]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "state.pt"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    refused = run("train-prompts", "--resume", tmp_path / "killed", "--lr", "1", "-q", env=env)
    assert refused.returncode == 2 and "continues a run with its saved config; drop --lr" in refused.stderr
    # where it runs may change on resume (--num-workers, --device), what it computes may not
    resumed = run("train-prompts", "--resume", tmp_path / "killed", "--num-workers", "0", "-q", env=env)
    assert resumed.returncode == 0, resumed.stderr
    _, a = read_checkpoint(tmp_path / "straight" / "last.safetensors")
    _, b = read_checkpoint(tmp_path / "killed" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "straight" / "config.yaml").is_file()
    assert len((tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()) == 20

    best = tmp_path / "straight" / "best.safetensors"
    clip = next((motion / "test" / "moving left").glob("*.mp4"))
    trained = run("classify", clip, "--checkpoint", best, "--json", "-q", env=env)
    assert trained.returncode == 0, trained.stderr
    preds = json.loads(trained.stdout)[0]["predictions"]
    assert {p["label"] for p in preds} == {"moving left", "moving right"}
    novel = run("classify", clip, "--checkpoint", best, "--labels", "whisking eggs,chopping garlic,sliding left",
                "--json", "-q", env=env)
    assert novel.returncode == 0 and len(json.loads(novel.stdout)[0]["predictions"]) == 3

    shown = run("inspect", best, "--json", env=env)
    meta = json.loads(shown.stdout)
    assert meta["method"] == "promptclip" and meta["classes"] == ["moving left", "moving right"]
    assert meta["hparams"]["n_prefix"] == 16 and meta["file_bytes"] < 2_000_000

    again = run(*common, "--out", tmp_path / "straight", env=env)
    assert again.returncode == 2 and "already holds a run" in again.stderr


def test_bad_checkpoints_get_one_line(tmp_path, motion):
    from safetensors.torch import save_file

    env = {"VIDPROMPT_CACHE_DIR": str(tmp_path / "cache")}
    good_run = tmp_path / "run"
    train(motion_config(motion, good_run, epochs=1, num_workers=0), progress=False)
    good = (good_run / "last.safetensors").read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.safetensors").write_text("hello")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    from safetensors import safe_open

    with safe_open(str(good_run / "last.safetensors"), "pt") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    save_file(tensors, str(tmp_path / "future.safetensors"), metadata={**meta, "format_version": "99"})
    clip = next((motion / "test").rglob("*.mp4"))
    cases = [(tmp_path / "truncated.safetensors", "not a readable safetensors checkpoint", 1),
             (tmp_path / "text.safetensors", "not a readable safetensors checkpoint", 1),
             (tmp_path / "foreign.safetensors", "not a vidprompt checkpoint", 1),
             (tmp_path / "future.safetensors", "newer than this vidprompt", 1),
             (tmp_path / "missing.safetensors", "checkpoint not found", 2)]
    for path, message, code in cases:
        out = run("classify", clip, "--checkpoint", path, env=env)
        assert out.returncode == code and message in out.stderr, (path, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1
    other = run("classify", clip, "--checkpoint", good_run / "last.safetensors", "--model", "ViT-B-32", env=env)
    assert other.returncode == 2 and "trained on vp-tiny" in other.stderr


def test_a_run_started_with_the_older_weight_decay_groups_resumes_exactly(motion, tmp_path, cache_dir,
                                                                          monkeypatch, caplog):
    """Runs started before vidprompt followed the official weight-decay rule kept norms, biases and embeddings
    out of decay: resumed now, they keep those groups and end where an uninterrupted run of that rule ends."""
    import vidprompt.training as training

    def legacy(model, weight_decay):
        decay, no_decay = training._legacy_groups(model)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    class Killed(Exception):
        pass

    def kill_after_epoch_1(record):
        if record["epoch"] == 1:
            raise Killed

    from vidprompt.config import save_config

    with monkeypatch.context() as patch:  # the earlier vidprompt
        patch.setattr(training, "_param_groups", legacy)
        train(motion_config(motion, tmp_path / "straight", epochs=2, batch_size=8), progress=False)
        broken = Trainer(motion_config(motion, tmp_path / "resumed", epochs=2, batch_size=8), progress=False)
        broken.out.mkdir(parents=True)
        save_config(broken.cfg, broken.out / "config.yaml")
        with pytest.raises(Killed):
            broken.fit(on_epoch=kill_after_epoch_1)
    with caplog.at_level("WARNING"):
        train(load_config(None, None, out=str(tmp_path / "resumed")), resume=True, progress=False)
    assert "started by an earlier vidprompt" in caplog.text
    _, a = read_checkpoint(tmp_path / "straight" / "last.safetensors")
    _, b = read_checkpoint(tmp_path / "resumed" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
