"""End-to-end: the real console script in a subprocess, as a user runs it."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

TINY = ["--model", str(__import__("conftest").TINY_CONFIG), "--pretrained", "none"]


def vidprompt(*args, env=None, timeout=120):
    exe = shutil.which("vidprompt", path=os.path.dirname(sys.executable)) or shutil.which("vidprompt")
    cmd = [exe] if exe else [sys.executable, "-m", "vidprompt"]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=full_env)


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    return {"VIDPROMPT_CACHE_DIR": str(tmp_path_factory.mktemp("vp-cache"))}


def test_version_and_help_do_not_import_torch():
    probe = ("import sys; sys.argv = ['vidprompt', '--help']\n"
             "from vidprompt.cli import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
             "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', code)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("NO-TORCH 0")
    start = time.perf_counter()
    version = vidprompt("--version")
    assert version.returncode == 0 and version.stdout.strip().startswith("vidprompt ")
    assert time.perf_counter() - start < 30  # sanity only; the speed figure comes from the benchmark


def test_classify_json_in_input_order_with_a_failed_video(videos, cache_env):
    inputs = [videos["index_mp4"], videos["truncated"], videos["red"]]
    out = vidprompt("classify", *inputs, "--labels", "surfing, cooking,playing guitar", "--json",
                    "--frames", "4", *TINY, env=cache_env)
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert [d["video"] for d in data] == inputs
    assert set(data[1]) == {"video", "error"} and "\n" not in data[1]["error"]
    for entry in (data[0], data[2]):
        preds = entry["predictions"]
        assert len(preds) == 3 and {p["label"] for p in preds} == {"surfing", "cooking", "playing guitar"}
        assert [p["score"] for p in preds] == sorted((p["score"] for p in preds), reverse=True)
        assert abs(sum(p["score"] for p in preds) - 1) < 1e-4
    assert "Traceback" not in out.stderr
    assert f"{videos['truncated']}: not a readable video" in out.stderr
    assert "random weights" in out.stderr


def test_classify_folder_labels_file_csv_and_top_k(videos, tmp_path, cache_env):
    labels = tmp_path / "classes.txt"
    labels.write_text("# classes\nred\ngreen\nblue\nyellow\n")
    folder = os.path.dirname(videos["index_mp4"])
    out = vidprompt("classify", folder, "--labels-file", labels, "--csv", "--top-k", "2", "--crops", "3",
                    "--clips", "2", "-q", *TINY, env=cache_env)
    assert out.returncode == 1, out.stderr  # the folder's broken/ sub-folder is found too
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert rows and set(rows[0]) == {"video", "rank", "label", "score", "error"}
    failed = {r["video"] for r in rows if r["error"]}
    assert failed == {videos["truncated"], videos["empty"], videos["not_video"]}
    good = [r for r in rows if not r["error"]]
    assert len(good) == 2 * 10 and {r["rank"] for r in good} == {"1", "2"}
    assert "3 of 13 videos failed" in out.stderr


def test_classify_label_set_table(videos, cache_env):
    out = vidprompt("classify", videos["red"], "--label-set", "hmdb51", "-k", "7", "-q", *TINY, env=cache_env)
    assert out.returncode == 0, out.stderr
    assert "red.mp4" in out.stdout and "#7" in out.stdout and "#8" not in out.stdout


def test_top_k_is_capped_at_the_number_of_labels(videos, cache_env):
    out = vidprompt("classify", videos["red"], "-l", "a,b", "-k", "5", "--json", "-q", *TINY, env=cache_env)
    assert out.returncode == 0 and len(json.loads(out.stdout)[0]["predictions"]) == 2


@pytest.mark.parametrize("args,message", [
    ([], "no labels"),
    (["--labels", " , "], "empty"),
    (["--labels", "a,b,a"], "duplicate label 'a'"),
    (["--label-set", "k999"], "unknown label set"),
    (["--labels", "a", "--label-set", "k400"], "only one"),
    (["--labels", "a", "--model", "ViT-Q-99"], "unknown model 'ViT-Q-99'"),
    (["--labels", "a", "--model", "ViT-B-32", "--pretrained", "nosuchtag"], "unknown pretrained tag"),
    (["--labels", "a", "--pretrained", "/no/such/weights.pt"], "weights file not found"),
    (["--labels", "a", "--crops", "2"], "--crops must be 1 or 3"),
    (["--labels", "a", "--sampling", "sideways"], "--sampling"),
    (["--labels", "a", "--frames", "x"], "Invalid value"),
    (["--labels", "a", "--top-k", "0"], "--top-k"),
    (["--labels", "a", "--device", "tpu"], "--device"),
    (["--labels", "a", "--precision", "fp16", "--device", "cpu"], "fp16 needs a GPU"),
    (["--labels", "a", "--template", "no slot"], "exactly one '{}'"),
    (["--labels", "a", "--template", "a {} {x}"], "exactly one '{}'"),
    (["--labels", "a", "--json", "--csv"], "only one of --json and --csv"),
    (["--labels", "a", "--bogus"], "No such option"),
])
def test_usage_errors_exit_2_with_one_line(videos, args, message):
    out = vidprompt("classify", videos["red"], *args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("vidprompt: ")
    assert out.stdout == ""


def test_missing_weights_offline_fail_fast_with_one_line(videos, tmp_path):
    start = time.perf_counter()
    out = vidprompt("classify", videos["red"], "-l", "a,b", "--model", "ViT-B-32", "--pretrained", "openai",
                    env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    elapsed = time.perf_counter() - start
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "not in the local cache" in lines[0] and "--pretrained /path" in lines[0]
    assert elapsed < 30


def test_local_weights_file_gives_the_same_model(tiny_backbone, videos, tmp_path, cache_env):
    from safetensors.torch import save_file

    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_backbone.model.state_dict().items()}, str(weights))
    common = ["classify", videos["index_mp4"], "-l", "red,green,blue", "--json", "-q",
              "--model", str(__import__("conftest").TINY_CONFIG)]
    from_file = vidprompt(*common, "--pretrained", weights, env=cache_env)
    random = vidprompt(*common, "--pretrained", "none", env=cache_env)
    assert from_file.returncode == random.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout) == json.loads(random.stdout)
    assert "random weights" not in from_file.stderr


def test_only_missing_files_exit_1(tmp_path, cache_env):
    out = vidprompt("classify", tmp_path / "gone.mp4", "-l", "a,b", "--json", "-q", *TINY, env=cache_env)
    assert out.returncode == 1
    assert json.loads(out.stdout) == [{"video": str(tmp_path / "gone.mp4"), "error": "file not found"}]
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    out = vidprompt("classify", empty, "-l", "a,b", *TINY, env=cache_env)
    assert out.returncode == 1 and f"{empty}: a folder with no video files in it" in out.stderr  # a row, not dropped


def test_python_dash_m_entry_point(videos, cache_env):
    out = subprocess.run([sys.executable, "-m", "vidprompt", "classify", videos["red"], "-l", "a,b", "--json",
                          "-q", *TINY], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **cache_env})
    assert out.returncode == 0, out.stderr and len(json.loads(out.stdout)) == 1


def test_names_with_brackets_print_as_written(videos, tmp_path, cache_env):
    """Square brackets are rich markup; a file or label that contains them must come out verbatim."""
    clip = tmp_path / "holiday [b-roll].mp4"
    clip.write_bytes(open(videos["red"], "rb").read())
    out = vidprompt("classify", clip, "-l", "rock [/music],[bold]dog", "-k", "2", "-q", *TINY, env=cache_env)
    assert out.returncode == 0, out.stderr
    assert "holiday [b-roll].mp4" in out.stdout.replace("\n", "")
    assert "rock [/music]" in out.stdout and "[bold]dog" in out.stdout


def test_outputs_that_cannot_be_written_are_refused_before_any_work(videos, tmp_path, cache_env):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    data = tmp_path / "data"
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        (data / name / "clip.mp4").write_bytes(open(videos["red"], "rb").read())
    cases = [
        (["train-prompts", "--data", data, "--out", a_file], "--out", "exists and is not a folder"),
        (["eval", "--data", data, "--out", a_file / "sub"], "--out", "is a file, not a folder"),
        (["index", videos["red"], "--out", a_file / "idx"], "--out", "is a file, not a folder"),
        (["localize", videos["red"], "-l", "a,b", "--plot", tmp_path], "--plot", "is a folder"),
    ]
    for args, option, message in cases:
        out = vidprompt(*args, *TINY, env=cache_env)
        assert out.returncode == 2, (args, out.stderr)
        line = out.stderr.strip().splitlines()[-1]
        assert option in line and message in line and "Traceback" not in out.stderr, (args, out.stderr)
