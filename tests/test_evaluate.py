"""vidprompt.evaluation: metrics against hand-computed values, the predictions file, resumable runs in-process."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys

import pytest
import torch

from vidprompt.errors import UsageError, VidpromptError
from vidprompt.evaluation import (EvalRun, compute_metrics, confusion_matrix, evaluate, mean_class_accuracy,
                                per_class_accuracy, prediction_record, read_predictions, report_json,
                                top_confusions, top_k_accuracy, write_report_files)

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None  # optional: the PNG is skipped without it


def rec(truth: int, ranking: list[int], classes: list[str] | None = None) -> dict:
    """A record whose classes are ranked ``ranking`` (best first), as the run writes it."""
    classes = classes or [f"c{i}" for i in range(len(ranking))]
    return {"truth": classes[truth], "truth_index": truth, "truth_rank": ranking.index(truth) + 1,
            "predictions": [{"label": classes[i], "index": i, "score": 0.0} for i in ranking[:5]]}


FAILED = {"truth": "c", "truth_index": 2, "error": "not a readable video"}
ABC = ["a", "b", "c"]
# truth -> ranking; ranks of the truth: 1, 2, 1, 3, 2, 1 (and one failed video)
THREE = [rec(0, [0, 1, 2]), rec(0, [1, 0, 2]), rec(1, [1, 2, 0]), rec(1, [2, 0, 1]), rec(2, [0, 2, 1]),
         FAILED, rec(0, [0, 2, 1])]


def test_metrics_on_fixed_predictions():
    assert top_k_accuracy(THREE, 1) == pytest.approx(3 / 6)  # the failed video is not scored
    assert top_k_accuracy(THREE, 2) == pytest.approx(5 / 6)
    assert top_k_accuracy(THREE, 3) == 1.0
    # a: 2 of 3 right, b: 1 of 2, c: 0 of 1 -> each class counts once
    assert mean_class_accuracy(THREE, 3) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert confusion_matrix(THREE, 3) == [[2, 1, 0],
                                          [0, 1, 1],
                                          [1, 0, 0]]
    rows = per_class_accuracy(THREE, ABC, k=2)
    assert [(r["class"], r["videos"], r["correct"], r["top2_correct"]) for r in rows] == [
        ("a", 3, 2, 3), ("b", 2, 1, 1), ("c", 1, 0, 1)]
    assert rows[0]["accuracy"] == pytest.approx(2 / 3) and rows[1]["top2_accuracy"] == 0.5
    confusions = top_confusions(confusion_matrix(THREE, 3), ABC)
    assert [(c["truth"], c["predicted"], c["count"]) for c in confusions] == [("a", "b", 1), ("b", "c", 1),
                                                                              ("c", "a", 1)]
    assert [c["share"] for c in confusions] == pytest.approx([1 / 3, 1 / 2, 1.0])


def test_top5_mean_class_and_empty_classes():
    classes = [f"c{i}" for i in range(7)]
    order = [0, 1, 2, 3, 4, 5, 6]
    records = [
        rec(0, order),                      # rank 1
        rec(3, order),                      # rank 4
        rec(4, order),                      # rank 5
        rec(5, order),                      # rank 6: outside the top 5
        rec(6, [6, 0, 1, 2, 3, 4, 5]),      # rank 1
    ]
    metrics = compute_metrics(records, classes)
    assert metrics["top1"] == pytest.approx(2 / 5)
    assert metrics["top5"] == pytest.approx(4 / 5) and metrics["top_k"] == 5
    # classes 1 and 2 have no videos: left out of the mean, shown as None
    assert metrics["mean_class_accuracy"] == pytest.approx((1 + 0 + 0 + 0 + 1) / 5)
    assert metrics["per_class"][1]["accuracy"] is None and metrics["per_class"][1]["videos"] == 0
    assert metrics["confusion_matrix"][3][0] == 1 and sum(map(sum, metrics["confusion_matrix"])) == 5
    assert [(c["truth"], c["predicted"]) for c in metrics["top_confusions"]] == [
        ("c3", "c0"), ("c4", "c0"), ("c5", "c0")]
    nothing = compute_metrics([FAILED], ABC)
    assert nothing["evaluated"] == 0 and nothing["top1"] is None and nothing["mean_class_accuracy"] is None
    with pytest.raises(ValueError):
        top_k_accuracy(records, 0)


def test_prediction_record_ranks_ties_by_class_index():
    classes = ["w", "x", "y", "z"]
    record = prediction_record(5, "/v.mp4", 2, torch.tensor([0.1, 0.4, 0.4, 0.1]), classes)
    assert [p["index"] for p in record["predictions"]] == [1, 2, 0, 3]  # 4 classes: all of them
    assert record["truth_rank"] == 2 and record["truth_score"] == pytest.approx(0.4)
    assert record["truth"] == "y" and record["index"] == 5 and record["video"] == "/v.mp4"
    many = [f"k{i}" for i in range(9)]
    probs = torch.arange(9, dtype=torch.float32).softmax(0)
    record = prediction_record(0, "/v.mp4", 0, probs, many)
    assert [p["label"] for p in record["predictions"]] == ["k8", "k7", "k6", "k5", "k4"]
    assert record["truth_rank"] == 9 and compute_metrics([record], many)["confusion_matrix"][0][8] == 1


def test_read_predictions_drops_a_torn_last_line_only(tmp_path):
    path = tmp_path / "predictions.jsonl"
    good = "".join(json.dumps({"index": i, "video": f"v{i}"}) + "\n" for i in range(3))
    path.write_text(good + '{"index": 3, "vid')
    records, length = read_predictions(path)
    assert [r["index"] for r in records] == [0, 1, 2] and length == len(good.encode())
    path.write_text(good + json.dumps({"index": 3}))  # complete JSON but no newline: not known to be whole
    assert len(read_predictions(path)[0]) == 3
    path.write_text(good.replace('"video": "v1"', '"vid'))
    with pytest.raises(VidpromptError, match=":2: not a prediction record"):
        read_predictions(path)


def test_report_json_keeps_matrix_rows_on_one_line():
    report = {"confusion_matrix": [[1, 0], [2, 3]], "video": "a [1,\t2] b.mp4", "x": [0.5, 1e-07],
              "empty": [], "names": ["p", "q"]}
    text = report_json(report)
    assert json.loads(text) == report
    assert "[1, 0]" in text and "[2, 3]" in text and "[0.5, 1e-07]" in text
    assert '"a [1,\\t2] b.mp4"' in text


# --- runs on generated videos with the tiny random CLIP ---------------------------------------------------------

@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory):
    from media import solid_video, write_video

    root = tmp_path_factory.mktemp("eval-data")
    colours = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
    for name, rgb in colours.items():
        for i in range(2):
            write_video(root / name / f"{name}{i}.mp4", solid_video(tuple(c - 20 * i for c in rgb), n=8))
    (root / "green" / "broken.mp4").write_bytes(b"\x00\x00\x00 ftypisom garbage")
    return root


def make_classifier(backbone, frames=4, batch_size=2):
    from vidprompt.classifier import VideoClassifier
    from vidprompt.methods.zeroshot import ZeroShotCLIP
    from vidprompt.text_cache import TextEmbeddingCache
    from vidprompt.video import ViewConfig

    return VideoClassifier(ZeroShotCLIP(backbone, ["a video of {}."]), ViewConfig(frames=frames), device="cpu",
                           batch_size=batch_size, num_workers=0, text_cache=TextEmbeddingCache(enabled=False))


def test_interrupted_run_resumes_to_the_same_report(tiny_backbone, folder_dataset, tmp_path):
    from vidprompt.datasets import load_dataset

    dataset = load_dataset(data=folder_dataset)
    clf = make_classifier(tiny_backbone)
    full = evaluate(clf, dataset, tmp_path / "full", config={"note": "x"})
    assert full["counts"] == {"videos": 7, "evaluated": 6, "failed": 1, "missing": 0, "not_run": 0}
    assert full["failed"][0]["video"].endswith("broken.mp4")
    assert sum(map(sum, full["confusion_matrix"])) == 6
    assert {p.name for p in (tmp_path / "full").iterdir()} == {
        "run.json", "predictions.jsonl", "report.json", "per_class.csv", "top_confusions.csv", ".eval.lock",
        *(["confusion_matrix.png"] if HAS_MATPLOTLIB else [])}

    class Stop(Exception):
        pass

    def stop_after_first_batch(n):
        raise Stop

    out = tmp_path / "part"
    with pytest.raises(Stop):
        EvalRun(clf, dataset, out, config={"note": "x"}).run(progress=stop_after_first_batch)
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2  # the finished batch is on disk
    resumed = EvalRun(clf, dataset, out, config={"note": "x"})
    assert resumed.resumed == 2 and resumed.pending == [2, 3, 4, 5, 6]
    resumed.run()
    assert resumed.report() == full
    indices = [json.loads(line)["index"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(indices) == list(range(7))
    again = EvalRun(clf, dataset, out)  # everything recorded: nothing left to run
    assert again.pending == [] and again.report()["metrics"] == full["metrics"]


def test_a_different_run_is_refused(tiny_backbone, folder_dataset, tmp_path):
    from vidprompt.datasets import load_dataset

    dataset = load_dataset(data=folder_dataset)
    out = tmp_path / "out"
    EvalRun(make_classifier(tiny_backbone), dataset, out)  # records itself in run.json
    with pytest.raises(UsageError, match=r"refusing to mix results \(view: recorded 4x1x1 segment, now 8x1x1"):
        EvalRun(make_classifier(tiny_backbone, frames=8), dataset, out)
    with pytest.raises(UsageError, match="classes: recorded 3 classes"):
        EvalRun(make_classifier(tiny_backbone), dataset.subset_classes(["red", "blue"]), out)
    # batch size is how, not what: it may change between runs
    EvalRun(make_classifier(tiny_backbone, batch_size=3), dataset, out)

    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "predictions.jsonl").write_text('{"index": 0}\n')
    with pytest.raises(UsageError, match="without run.json"):
        EvalRun(make_classifier(tiny_backbone), dataset, stray)


def test_a_second_eval_into_a_busy_folder_is_refused(tiny_backbone, folder_dataset, tmp_path):
    from vidprompt.datasets import load_dataset
    from vidprompt.errors import VidpromptError
    from vidprompt.locks import FileLock, fcntl

    if fcntl is None:
        pytest.skip("no flock on this platform")
    out = tmp_path / "out"
    out.mkdir()
    other = FileLock(out / ".eval.lock")
    assert other.acquire(blocking=False)  # as if another eval were writing here
    dataset = load_dataset(data=folder_dataset)
    with pytest.raises(VidpromptError, match="being written by another `vidprompt eval`"):
        evaluate(make_classifier(tiny_backbone), dataset, out)
    assert not (out / "predictions.jsonl").exists()
    other.release()
    assert evaluate(make_classifier(tiny_backbone), dataset, out)["counts"]["evaluated"] == 6


def test_report_files_for_many_classes_and_without_matplotlib(tmp_path, monkeypatch, caplog):
    classes = [f"class {i}" for i in range(120)]
    records = [rec(i % 120, [(i + 1) % 120, *[j for j in range(120) if j != (i + 1) % 120]], classes)
               for i in range(240)]
    metrics = compute_metrics(records, classes)
    report = {"dataset": {"name": "many"}, "classes": classes, **metrics}
    written = write_report_files(tmp_path / "many", report, records)
    assert [p.name for p in written] == ["report.json", "per_class.csv", "top_confusions.csv"]
    lines = (tmp_path / "many" / "top_confusions.csv").read_text().splitlines()
    assert lines[0] == "truth,predicted,count,share_of_truth" and len(lines) == 121
    assert lines[1] == "class 0,class 1,2,1.000000"

    few = {"dataset": {"name": "few"}, "classes": ABC, **compute_metrics(THREE, ABC)}
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with caplog.at_level(logging.WARNING):
        written = write_report_files(tmp_path / "few", few, THREE)
    assert "confusion_matrix.png" not in [p.name for p in written]
    assert "matplotlib is not installed" in caplog.text
    rows = (tmp_path / "few" / "per_class.csv").read_text().splitlines()
    assert rows[0] == "index,class,videos,correct,accuracy,top5_correct,top5_accuracy"
    assert rows[1] == "0,a,3,2,0.666667,3,1.000000"
