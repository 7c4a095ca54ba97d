"""The adversarial suite: every command fed hostile inputs, as a real process (``python -m vidprompt``).

Table-driven. Each case asserts the exit code, exactly one message line per failure (naming what failed),
no traceback or "internal error", the other inputs' results intact, and the child's peak memory under a
bound (``os.wait4``'s resource usage of that process). Run it alone with ``pytest -m adversarial``.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from clirun import Run, run_forked, run_process
from hostile import Hostile

pytestmark = pytest.mark.adversarial

TINY_CONFIG = str(__import__("conftest").TINY_CONFIG)
TINY = ["--model", TINY_CONFIG, "--pretrained", "none"]
MEMORY_BOUND_MB = 1500  # a tiny model, a few small clips: far below this unless an input sets the memory
FORBIDDEN = ("Traceback", "internal error", "Exception ignored", "Error in atexit")


def failure_lines(run: Run) -> list[str]:
    """stderr lines that report a failure (warnings, progress and information lines left out)."""
    info = ("vidprompt: warning", "vidprompt: resuming", "vidprompt: global batch", "vidprompt: epoch ",
            "vidprompt: frame features", "vidprompt: usable training videos", "vidprompt: skipping",
            "vidprompt: discarding")
    return [line for line in run.lines if line.startswith("vidprompt: ") and not line.startswith(info)
            and not re.match(r"vidprompt: \d+ of \d+ videos failed", line)]


# --- the world every case runs in: real videos, a real checkpoint, a real index ---------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory, videos):
    from media import frame_index_video, solid_video, write_video

    root = tmp_path_factory.mktemp("adversarial")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VIDPROMPT_CACHE_DIR": str(root / "cache")}
    env.pop("VIDPROMPT_DEBUG", None)
    (root / "work").mkdir()
    bad = Hostile(root / "hostile")
    good = [str(write_video(root / "lib" / f"clip{i}.mp4", solid_video((40 * i, 90, 200 - 40 * i), n=20)))
            for i in range(3)]
    long = str(write_video(root / "long.mp4", frame_index_video(100, h=32, w=32), fps=25))

    from vidprompt.backbone import build_backbone
    from vidprompt.checkpoint import save_checkpoint
    from vidprompt.classifier import VideoClassifier
    from vidprompt.index import build_index
    from vidprompt.methods import build_method
    from vidprompt.methods.zeroshot import ZeroShotCLIP
    from vidprompt.video import ViewConfig

    backbone = build_backbone(TINY_CONFIG, "none")
    prompts = build_method("promptclip", backbone, n_prefix=2, n_suffix=2, temporal_layers=1, temporal_heads=2,
                           max_frames=4)
    checkpoint = save_checkpoint(root / "prompts.safetensors", prompts, ViewConfig(frames=4), ["red", "blue"])
    aim = build_method("aim", build_backbone(TINY_CONFIG, "none"), num_frames=4)
    aim_checkpoint = save_checkpoint(root / "aim.safetensors", aim, ViewConfig(frames=4), ["red", "blue"])
    clf = VideoClassifier(ZeroShotCLIP(backbone, ["a video of {}."]), ViewConfig(frames=2), device="cpu",
                          num_workers=0)
    index = root / "lib.vpindex"
    build_index(index, good, clf, inputs=[str(root / "lib")], window=0.4)
    return {"root": root, "env": env, "bad": bad, "good": good, "long": long, "checkpoint": str(checkpoint),
            "aim_checkpoint": str(aim_checkpoint), "index": str(index), "videos": videos}


# --- the cases ---------------------------------------------------------------------------------------------------

def _npy(values) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(values, np.int64))
    return buffer.getvalue()


@dataclass
class Case:
    """``args(w)`` builds the command line from the world ``w``; ``code`` is the expected exit code;
    ``errors``: regexes, one per expected failure line, each matching exactly one stderr line; ``check(w, run)``
    asserts anything else (results of the other inputs, files untouched...)."""

    id: str
    args: Callable[[dict], list]
    code: int
    errors: tuple[str, ...] = ()
    check: Callable[[dict, Run], None] | None = None
    memory_mb: float = MEMORY_BOUND_MB
    extra: dict = field(default_factory=dict)


def classify(w, *inputs, extra=()):
    return ["classify", *inputs, "--labels", "red,blue", "--json", "--frames", "2", "-q", "-j", "0", *TINY, *extra]


def json_rows(run: Run) -> list[dict]:
    return json.loads(run.stdout)


def rows_in_order(*expected_ok):
    """The JSON rows are one per input, in order; ``expected_ok[i]`` says whether input i has predictions."""
    def check(w, run):
        rows = json_rows(run)
        assert [("predictions" in r) for r in rows] == list(expected_ok), rows
        for row in rows:
            assert ("error" in row) != ("predictions" in row)
    return check


def no_marker(w, run):
    assert not (w["root"] / "PWNED").exists(), "a pickle ran code"


CASES: list[Case] = [
    # Videos and inputs: every input gets one result row or one error line, in input order.
    Case("folder-named-like-a-video", lambda w: classify(w, w["good"][0], w["bad"].folder("x.mp4"), w["good"][1]),
         1, (r"x\.mp4: .*folder.*no video",), rows_in_order(True, False, True)),
    Case("empty-fake-truncated-videos-among-good-ones",
         lambda w: classify(w, w["good"][0], w["videos"]["empty"], w["videos"]["not_video"], w["good"][1],
                            w["videos"]["truncated"]),
         1, (r"empty\.mp4: ", r"notes\.mp4: ", r"truncated\.mp4: "), rows_in_order(True, False, False, True, False)),
    Case("file-name-with-a-newline-is-one-line",
         lambda w: classify(w, w["bad"].text("bad\nname.mp4", b"not a video"), w["good"][0]),
         1, (r"bad\\nname\.mp4: not a readable video",), rows_in_order(False, True)),
    Case("file-name-with-terminal-escapes-is-escaped",
         lambda w: classify(w, w["bad"].text("\x1b[31mred.mp4", b"junk")),
         1, (r"\\x1b\[31mred\.mp4: ",)),
    Case("file-name-not-utf8-is-classified",
         lambda w: classify(w, w["bad"].copy(w["good"][0], b"caf\xe9.mp4"), w["good"][1]),
         0, (), lambda w, run: (rows_in_order(True, True)(w, run),
                                 _assert(json_rows(run)[0]["video"].endswith("caf\\xe9.mp4")))),
    Case("file-name-not-utf8-broken-is-one-line",
         lambda w: classify(w, w["bad"].text(b"bad\xff.mp4", b"junk"), w["good"][1]),
         1, (r"bad\\xff\.mp4: not a readable video",), rows_in_order(False, True)),
    Case("missing-file-and-dangling-link",
         lambda w: classify(w, w["root"] / "nope.mp4", _dangling(w), w["good"][0]),
         1, (r"nope\.mp4: .*not found", r"dangling\.mp4: .*not found"), rows_in_order(False, False, True)),
    Case("empty-folder-input", lambda w: classify(w, w["bad"].folder("empty-folder"), w["good"][0]),
         1, (r"empty-folder: .*no video",), rows_in_order(False, True)),
    Case("audio-only-file", lambda w: classify(w, _audio_only(w), w["good"][0]),
         1, (r"audio\.mp4: ",), rows_in_order(False, True)),
    Case("unreachable-url", lambda w: classify(w, "http://127.0.0.1:9/clip.mp4", w["good"][0]),
         1, (r"http://127\.0\.0\.1:9/clip\.mp4: ",), rows_in_order(False, True)),
    Case("list-file-that-lists-itself", lambda w: classify(w, w["bad"].self_including_list(w["good"][0])),
         2, (r"self\.txt.*lists itself",)),
    Case("list-files-that-list-each-other", lambda w: classify(w, w["bad"].mutual_lists(w["good"][0])[0]),
         2, (r"a\.txt.*lists itself",)),
    Case("list-file-not-utf8", lambda w: classify(w, w["bad"].not_utf8("paths.txt")),
         2, (r"paths\.txt: not UTF-8 text",)),
    Case("list-file-empty-among-inputs", lambda w: classify(w, w["bad"].text("none.txt", "# nothing\n"), w["good"][0]),
         1, (r"none\.txt: .*no video",), rows_in_order(False, True)),
    # Labels and templates.
    Case("labels-file-not-utf8", lambda w: ["classify", w["good"][0], "--labels-file", w["bad"].not_utf8("l.txt"), *TINY],
         2, (r"l\.txt: not UTF-8 text",)),
    Case("labels-file-is-a-folder", lambda w: ["classify", w["good"][0], "--labels-file", w["root"], *TINY],
         2, (r"is a folder",)),
    Case("labels-file-empty", lambda w: ["classify", w["good"][0], "--labels-file", w["bad"].text("e.txt", ""), *TINY],
         2, (r"e\.txt: the label list is empty",)),
    Case("labels-only-commas", lambda w: ["classify", w["good"][0], "--labels", ",,,", *TINY], 2, (r"--labels: ",)),
    Case("labels-duplicate", lambda w: ["classify", w["good"][0], "--labels", "Run,run", *TINY], 2, (r"duplicate",)),
    Case("label-set-unknown", lambda w: ["classify", w["good"][0], "--label-set", "k9000", *TINY], 2,
         (r"unknown label set",)),
    Case("labels-thousands-bounded", lambda w: ["classify", w["good"][0], "--labels-file", _many_labels(w, 4000),
                                               "-t", "a video of {}.", "--frames", "2", "-q", "-j", "0", "--json",
                                               *TINY],
         0, (), lambda w, run: _assert(len(json_rows(run)[0]["predictions"]) == 5)),
    *[Case(f"template-{name}", lambda w, t=template: ["classify", w["good"][0], "--labels", "a,b", "-t", t, *TINY],
           2, (r"template .* must contain exactly one '\{\}'",))
      for name, template in [("format-spec", "a video of {:>30}."), ("format-code", "{:d}"), ("positional", "{0}"),
                             ("named", "{label}"), ("conversion", "{!r}"), ("two-fields", "{} and {}"),
                             ("no-field", "a video"), ("unbalanced", "a {")]],
    # Option values: refused with the option's name, or bounded by the work there is.
    Case("frames-zero", lambda w: classify(w, w["good"][0], extra=["--frames", "0"]), 2, (r"--frames must be",)),
    Case("frames-absurd", lambda w: classify(w, w["good"][0], extra=["--frames", "1000000000"]), 2,
         (r"--frames .*at most",)),
    Case("clips-absurd", lambda w: classify(w, w["good"][0], extra=["--clips", "100000"]), 2, (r"--clips .*at most",)),
    Case("crops-two", lambda w: classify(w, w["good"][0], extra=["--crops", "2"]), 2, (r"--crops must be 1 or 3",)),
    Case("stride-zero", lambda w: classify(w, w["good"][0], extra=["--stride", "0"]), 2, (r"--stride must be",)),
    Case("sampling-unknown", lambda w: classify(w, w["good"][0], extra=["--sampling", "random"]), 2, (r"--sampling",)),
    Case("frames-not-a-number", lambda w: classify(w, w["good"][0], extra=["--frames", "lots"]), 2, (r"--frames",)),
    Case("batch-size-absurd-is-bounded", lambda w: classify(w, *w["good"], extra=["--batch-size", "1000000000"]), 0,
         (), rows_in_order(True, True, True)),
    Case("batch-size-zero", lambda w: classify(w, w["good"][0], extra=["--batch-size", "0"]), 2, (r"--batch-size",)),
    Case("workers-negative", lambda w: classify(w, w["good"][0], extra=["--num-workers", "-1"]), 2,
         (r"--num-workers",)),
    Case("workers-absurd-is-bounded", lambda w: classify(w, *w["good"][:2], extra=["--num-workers", "100000"]), 0,
         (), rows_in_order(True, True)),
    Case("top-k-absurd-is-bounded", lambda w: classify(w, w["good"][0], extra=["--top-k", "1000000000"]), 0, (),
         lambda w, run: _assert(len(json_rows(run)[0]["predictions"]) == 2)),
    Case("device-without-gpu", lambda w: classify(w, w["good"][0], extra=["--device", "cuda:7"]), 2, (r"cuda",)),
    Case("precision-unknown", lambda w: classify(w, w["good"][0], extra=["--precision", "fp8"]), 2, (r"precision",)),
    Case("decoder-unknown", lambda w: classify(w, w["good"][0], extra=["--decoder", "ffmpeg"]), 2, (r"decoder",)),
    Case("json-and-csv", lambda w: classify(w, w["good"][0], extra=["--csv"]), 2, (r"--json and --csv",)),
    # localize: windows capped by the frames that exist.
    Case("localize-tiny-stride-is-bounded",
         lambda w: ["localize", w["long"], "--labels", "a,b", "--stride", "0.000001", "--window", "1", "--json",
                    "-q", "-j", "0", "--frames", "2", *TINY],
         0, (), lambda w, run: _assert(len(json.loads(run.stdout)["windows"]) <= 100)),
    Case("localize-huge-window-is-bounded",
         lambda w: ["localize", w["long"], "--labels", "a,b", "--window", "1e12", "--stride", "1e12", "--json", "-q",
                    "-j", "0", "--frames", "2", *TINY],
         0, (), lambda w, run: _assert(len(json.loads(run.stdout)["windows"]) == 1)),
    Case("localize-zero-window", lambda w: ["localize", w["long"], "--labels", "a,b", "--window", "0", *TINY], 2,
         (r"--window",)),
    Case("localize-not-a-video", lambda w: ["localize", w["videos"]["not_video"], "--labels", "a,b", "-q", *TINY], 1,
         (r"notes\.mp4: ",)),
    # Checkpoints: damaged files and absurd metadata, one line naming the file, nothing allocated first.
    Case("checkpoint-is-a-folder", lambda w: ["classify", w["good"][0], "--checkpoint", w["root"]], 2,
         (r"is a folder",)),
    Case("checkpoint-is-text", lambda w: ["classify", w["good"][0], "--checkpoint", w["bad"].text("c.safetensors", "x")],
         1, (r"c\.safetensors is not a readable safetensors checkpoint",)),
    Case("checkpoint-pickle-never-runs", lambda w: ["classify", w["good"][0], "--checkpoint",
                                                    w["bad"].pickle_bomb("evil.pt", w["root"] / "PWNED")],
         1, (r"evil\.pt",), no_marker),
    *[Case(f"checkpoint-{name}", lambda w, n=name, c=change: ["classify", w["good"][0], "--checkpoint",
                                                             _edited(w, n, c), "-q", "-j", "0"],
           1, (rf"{name}\.safetensors: .*(damaged|does not fit)",))
      for name, change in [
          ("hparams-a-number", {"hparams": 5}),
          ("classes-a-number", {"classes": 3}),
          ("classes-of-numbers", {"classes": [1, 2]}),
          ("view-a-list", {"view": [1, 2]}),
          ("view-frames-absurd", {"view": {"frames": 10 ** 9, "sampling": "segment", "stride": 8, "clips": 1,
                                           "crops": 1}}),
          ("view-crops-seven", {"view": {"frames": 4, "sampling": "segment", "stride": 8, "clips": 1, "crops": 7}}),
          ("layers-absurd", {"hparams": {"n_prefix": 2, "n_suffix": 2, "temporal_layers": 100000,
                                         "temporal_heads": 2, "max_frames": 4}}),
          ("prefix-absurd", {"hparams": {"n_prefix": 10 ** 8, "n_suffix": 2, "temporal_layers": 1,
                                         "temporal_heads": 2, "max_frames": 4}}),
          ("max-frames-absurd", {"hparams": {"n_prefix": 2, "n_suffix": 2, "temporal_layers": 1,
                                             "temporal_heads": 2, "max_frames": 10 ** 9}}),
          ("hparam-unknown", {"hparams": {"n_prefix": 2, "n_suffix": 2, "temporal_layers": 1, "temporal_heads": 2,
                                          "max_frames": 4, "rm_rf": True}}),
          ("method-unknown", {"method": "magic"}),
          ("format-version-text", {"format_version": "one"}),
          ("model-path-traversal", {"model": "../../../etc/passwd"}),
          ("model-config-a-list", {"model_config": [1, 2]}),
          ("extra-a-list", {"extra": [1]}),
          ("not-json", {"hparams": "{not json"}),
      ]],
    Case("checkpoint-aim-frames-absurd",
         lambda w: ["classify", w["good"][0], "--checkpoint", _edited(w, "aim-frames", {"hparams": {
             **Hostile.metadata(w["aim_checkpoint"])["hparams"], "num_frames": 10 ** 7}}, w["aim_checkpoint"]), "-q"],
         1, (r"aim-frames\.safetensors: .*(damaged|does not fit)",)),
    Case("checkpoint-missing-key", lambda w: ["classify", w["good"][0], "--checkpoint",
                                              w["bad"].checkpoint_with(w["checkpoint"], "nometh.safetensors",
                                                                       drop=("method",))],
         1, (r"nometh\.safetensors: damaged checkpoint metadata",)),
    Case("checkpoint-frames-override-absurd",
         lambda w: ["classify", w["good"][0], "--checkpoint", w["checkpoint"], "--frames", "100000000"],
         2, (r"--frames .*at most",)),
    Case("inspect-damaged-extra", lambda w: ["inspect", _edited(w, "extra-bad", {"extra": "[1"})], 1,
         (r"extra-bad\.safetensors: damaged checkpoint metadata",)),
    # Training configs and data.
    Case("config-not-utf8", lambda w: ["train-prompts", "--config", w["bad"].not_utf8("c.yaml")], 2,
         (r"c\.yaml: not UTF-8 text",)),
    Case("config-a-list", lambda w: ["train-prompts", "--config", w["bad"].text("l.yaml", "- 1\n- 2\n")], 2,
         (r"l\.yaml: expected a mapping",)),
    Case("config-bad-yaml", lambda w: ["train-prompts", "--config", w["bad"].text("b.yaml", "a: [\n")], 2,
         (r"b\.yaml: not valid YAML",)),
    Case("config-unknown-key", lambda w: ["train-prompts", "--config", w["bad"].text("u.yaml", "epoch: 3\n")], 2,
         (r"u\.yaml: unknown option 'epoch'",)),
    Case("config-wrong-type", lambda w: ["train-prompts", "--config", w["bad"].text("t.yaml", "epochs: [1, 2]\n")],
         2, (r"t\.yaml: epochs: expected int",)),
    Case("config-frames-absurd-names-the-file",
         lambda w: ["train-prompts", "--config", w["bad"].text("f.yaml", "frames: 1000000000\n"),
                    "--data", w["root"] / "lib"],
         2, (r"f\.yaml: frames .*at most",)),
    Case("config-is-a-folder", lambda w: ["train-prompts", "--config", w["root"]], 2, (r"is a folder",)),
    Case("set-bad", lambda w: ["train-prompts", "--set", "epochs=0", "--data", w["root"] / "lib"], 2,
         (r"--set epochs=0: epochs must be at least 1",)),
    Case("data-one-class", lambda w: _train(w, w["bad"].class_folders("one", {"red": w["good"]})), 2,
         (r"one: .*at least 2 classes",), lambda w, run: _assert(not (w["root"] / "runs" / "one").exists())),
    Case("data-empty-class-folder",
         lambda w: _train(w, w["bad"].class_folders("hollow", {"red": w["good"][:2], "blue": []})), 2,
         (r"hollow: class 'blue' has no videos",)),
    Case("data-nothing-decodes",
         lambda w: _train(w, w["bad"].class_folders("junk", {"red": [b"x", b"y"], "blue": [b"z", b""]})), 1,
         (r"no training video could be read \((blue|red): 0 of 1, (blue|red): 0 of 1\)",),
         lambda w, run: _assert(not list((w["root"] / "runs" / "junk").glob("*.safetensors")))),
    Case("data-folder-missing", lambda w: _train(w, w["root"] / "nowhere"), 2, (r"nowhere",)),
    Case("data-list-file-not-utf8", lambda w: ["train-prompts", "--list-file", w["bad"].not_utf8("train.csv"), *TINY],
         2, (r"train\.csv: not UTF-8 text",)),
    Case("data-annotations-not-utf8",
         lambda w: ["eval", "--dataset", "k400", "--root", w["root"], "--annotations", w["bad"].not_utf8("val.csv"),
                    *TINY],
         2, (r"val\.csv: not UTF-8 text",)),
    Case("eval-list-file-not-utf8", lambda w: ["eval", "--list-file", w["bad"].not_utf8("eval.txt"), *TINY], 2,
         (r"eval\.txt: not UTF-8 text",)),
    Case("eval-classes-not-utf8",
         lambda w: ["eval", "--data", w["bad"].class_folders("evaldata", {"red": w["good"][:1], "blue": w["good"][1:2]}),
                    "--classes", w["bad"].not_utf8("classes.txt"), *TINY],
         2, (r"classes\.txt: not UTF-8 text",)),
    *[Case(f"eval-predictions-{name}", lambda w, n=name, r=record: _damaged_eval(w, n, r), 1,
           (r"predictions\.jsonl.*damaged",))
      for name, record in [("wrong-types", {"predictions": 5, "truth_rank": "1"}),
                           ("class-out-of-range", {"predictions": [{"label": "x", "index": 99, "score": 1.0}]}),
                           ("not-a-record", None)]],
    # Indexes: damaged metadata is one line for search, and `index` again repairs it.
    *[Case(f"index-{name}", lambda w, n=name, d=damage: ["search", _damaged_index(w, n, d), "red", *TINY[:0]],
           1, (rf"{name}.*(damaged|rebuild)",))
      for name, damage in [
          ("meta-view-a-number", {"meta": {"view": 5}}),
          ("meta-view-frames-absurd", {"meta": {"view": {"frames": 10 ** 9, "sampling": "segment", "stride": 8,
                                                         "clips": 1, "crops": 1}}}),
          ("meta-model-missing", {"meta": {"model": None}}),
          ("meta-windows-a-string", {"meta": {"windows": "yes"}}),
          ("entries-not-json", {"entries": '{"path": "a.mp4", "row": 0}\n{not json\n'}),
          ("entries-short", {"entries": '{"path": 5}\n'}),
          ("segments-a-string", {"meta": {"segments": "all of them"}}),
          ("segment-missing", {"meta": {"segments": [{"number": 7, "dead": None}], "generation": 9}}),
          ("dead-not-npy", {"dead": b"\x93NUMPY nonsense"}),
          ("dead-out-of-range", {"dead": _npy([10 ** 6])}),
          ("generation-negative", {"meta": {"generation": -3}}),
          ("embeddings-missing", {"remove": ("embeddings.npy",)}),
          ("offsets-missing", {"remove": ("offsets.npy",)}),
      ]],
    Case("index-rerun-repairs-a-damaged-index",
         lambda w: ["index", w["root"] / "lib", "--out", _damaged_index(w, "repair", {"entries": "{oops\n"}), "-q",
                    "-j", "0", *TINY],
         0, (), lambda w, run: _assert("3 videos" in run.stdout)),
    Case("search-empty-query", lambda w: ["search", w["index"], "  "], 2, (r"query is empty",)),
    Case("search-top-k-absurd", lambda w: ["search", w["index"], "red", "--top-k", "1000000000", "--json"], 0, (),
         lambda w, run: _assert(len(json.loads(run.stdout)) >= 1)),
    Case("search-not-an-index", lambda w: ["search", w["root"] / "lib", "red"], 2, (r"no index here",)),
    # Output that cannot be written.
    Case("stdout-full-disk", lambda w: classify(w, w["good"][0]), 1, (r"(stdout|output).*No space left",),
         extra={"stdout": "/dev/full"}),
    Case("stdout-closed-pipe", lambda w: classify(w, *w["good"]), 1, (r"(stdout|output).*pipe",),
         extra={"stdout": "closed-pipe"}),
    Case("eval-out-file-too-large",
         lambda w: ["eval", "--data", w["bad"].class_folders("fsize", {"red": w["good"][:1], "blue": w["good"][1:2]}),
                    "--out", w["root"] / "fsize-out", "-q", "-j", "0", "--frames", "2", *TINY],
         1, (r"fsize-out.*(File too large|No space)",), extra={"fsize": 1}),
]

CASES_BY_ID = {case.id: case for case in CASES}
assert len(CASES_BY_ID) == len(CASES), "case ids must be unique"


def _assert(condition: bool) -> None:
    assert condition


def _dangling(w) -> Path:
    link = w["bad"].path("dangling.mp4")
    if not link.is_symlink():
        link.symlink_to(w["root"] / "gone.mp4")
    return link


def _audio_only(w) -> Path:
    import av

    path = w["bad"].path("audio.mp4")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _many_labels(w, count: int) -> Path:
    return w["bad"].text(f"labels-{count}.txt", "".join(f"action number {i}\n" for i in range(count)))


def _edited(w, name: str, change: dict, source: str | None = None) -> Path:
    return w["bad"].checkpoint_with(source or w["checkpoint"], f"{name}.safetensors", **change)


def _damaged_index(w, name: str, damage: dict) -> Path:
    return w["bad"].damaged_index(w["index"], f"{name}.vpindex", **damage)


def _damaged_eval(w, name: str, change: dict | None) -> list:
    """An eval run folder made by a real run, then its first prediction record edited (or replaced by a list)."""
    data = w["bad"].class_folders(f"evaldata-{name}", {"red": w["good"][:2], "blue": w["good"][2:]})
    out = w["root"] / f"eval-{name}"
    args = ["eval", "--data", data, "--out", out, "-q", "-j", "0", "--frames", "2", *TINY]
    made = run_forked(args, env=w["env"], workdir=w["root"] / "work")
    assert made.code == 0, made.stderr
    lines = (out / "predictions.jsonl").read_text().splitlines()
    lines[0] = json.dumps([1, 2]) if change is None else json.dumps({**json.loads(lines[0]), **change})
    (out / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    return args


def _train(w, data: Path) -> list:
    return ["train-prompts", "--data", data, "--out", w["root"] / "runs" / data.name, "--epochs", "1", "--frames", "2",
            "-q", "--num-workers", "0", *TINY]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_input(case: Case, world):
    limit = case.extra.get("fsize")
    run = run_forked(case.args(world), env=world["env"], workdir=world["root"] / "work",
                     stdout=case.extra.get("stdout"), file_size_limit=None if limit is None else limit * 1024)
    assert_well_behaved(run, case.code, case.errors, case.memory_mb)
    if case.check is not None:
        case.check(world, run)


def assert_well_behaved(run: Run, code: int, errors: tuple[str, ...], memory_mb: float = MEMORY_BOUND_MB) -> None:
    context = f"exit {run.code}\nstderr:\n{run.stderr[-3000:]}"
    assert run.code == code, context
    for bad in FORBIDDEN:
        assert bad not in run.stderr, context
    failures = failure_lines(run)
    assert len(failures) == len(errors), context
    for pattern in errors:
        matching = [line for line in failures if re.search(pattern, line)]
        assert len(matching) == 1, f"{pattern!r} should match exactly one line\n{context}"
    assert run.peak_mb < memory_mb, f"peak memory {run.peak_mb:.0f} MB\n{context}"


# --- signals: Ctrl-C says what was interrupted, and that training, eval and index resume -----------------------

def _started(path: Path, pattern: str = "*") -> Callable[[], bool]:
    return lambda: any(path.glob(pattern)) if path.exists() else False


@pytest.mark.parametrize("command", ["classify", "train-prompts", "eval", "index"])
def test_ctrl_c_is_one_line_and_says_how_to_resume(command, world):
    root: Path = world["root"]
    from media import solid_video, write_video

    lib = root / f"sigint-{command}"
    # Enough one-video batches that the work cannot finish within a poll of the marker on a fast machine: the
    # markers appear when the work starts (the label cache, the opened predictions file, the pending run).
    count = 12 if command == "train-prompts" else 40
    for cls in ("red", "blue"):
        for i in range(count):
            write_video(lib / cls / f"{cls}{i}.mp4", solid_video((200, 30, 30) if cls == "red" else (30, 30, 200), n=12))
    out = root / f"sigint-{command}-out"
    cache = root / f"sigint-{command}-cache"  # its own: classify is interrupted once its labels are cached
    common = ["-q", "-j", "0", "--frames", "2", *TINY]
    args = {
        "classify": ["classify", lib, "--labels", "red,blue", "--clips", "4", "--batch-size", "1", *common],
        "train-prompts": ["train-prompts", "--data", lib, "--out", out, "--epochs", "1000", *common],
        "eval": ["eval", "--data", lib, "--out", out, "--batch-size", "1", *common],
        "index": ["index", lib, "--out", out, "--batch-size", "1", *common],
    }[command]
    ready = {"classify": _started(cache / "text"),
             "train-prompts": _started(out, "last.safetensors"),
             "eval": _started(out, "predictions.jsonl"),
             "index": _started(out / "pending", "run.json")}[command]
    run = run_process(args, env={**world["env"], "VIDPROMPT_CACHE_DIR": str(cache)}, workdir=root / "work",
                      interrupt_when=ready)
    context = f"exit {run.code}\nstderr:\n{run.stderr}"
    assert run.code == 130, context
    for bad in FORBIDDEN:
        assert bad not in run.stderr, context
    failures = failure_lines(run)
    assert len(failures) == 1 and failures[0].startswith("vidprompt: interrupted"), context
    if command != "classify":
        assert "resume" in failures[0], context


def test_a_second_index_build_of_one_folder_is_refused_at_once(world):
    """Two `vidprompt index` into one folder: the second is refused before it loads a model, while the first
    is still working, and the first ends with the whole index."""
    import subprocess
    import sys

    from media import solid_video, write_video

    root: Path = world["root"]
    lib = root / "busy-lib"
    for i in range(16):
        write_video(lib / f"clip{i}.mp4", solid_video((10 * i, 80, 160), n=12))
    out = root / "busy.vpindex"
    first = subprocess.Popen([sys.executable, "-m", "vidprompt", "index", lib, "--out", out, "-q", "-j", "0",
                              "--frames", "2", *TINY], env=world["env"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ((out / ".build.lock").is_file() and (out / ".build.lock").read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read().decode()
            time.sleep(0.02)
        second = run_forked(["index", lib, "--out", out, *TINY], env=world["env"], workdir=root / "work")
        still_running = first.poll() is None
    finally:
        stdout, stderr = first.communicate(timeout=180)
    assert_well_behaved(second, 1, (r"busy\.vpindex is being updated by another `vidprompt index`",))
    assert still_running, "the second build should be refused while the first is working"
    assert first.returncode == 0, stderr.decode()
    assert "16 videos" in stdout.decode()
