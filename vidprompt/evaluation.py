"""Evaluation: score a labelled dataset, keep every prediction on disk as it is made, compute the metrics.

Two layers:

- **Metrics** (pure functions of prediction records, no torch): :func:`top_k_accuracy`,
  :func:`confusion_matrix`, :func:`per_class_accuracy`, :func:`mean_class_accuracy`,
  :func:`top_confusions` and :func:`compute_metrics`, which bundles them.
- **A run** (:class:`EvalRun`, or :func:`evaluate` for the whole thing in one call): a
  :class:`~vidprompt.classifier.VideoClassifier` over a :class:`~vidprompt.datasets.VideoDataset`. With an
  output folder the run is resumable: ``run.json`` records what is being evaluated (model, views,
  precision, classes, the exact video list), ``predictions.jsonl`` gets one line per video, flushed after
  every batch, and a rerun skips the videos already there. A killed run loses at most the batch in flight;
  a partly written last line is dropped and redone. The report is always computed from the records, in
  dataset order, so a resumed run reports exactly what an uninterrupted one would.

Under ``torchrun`` (once :func:`vidprompt.distributed.init_from_env` has joined the process group) the same
:class:`EvalRun` splits the work: the ranks check that they evaluate the same thing, rank 0 alone opens the
output folder (resume included) and shares what is already done, each rank scores every ``world_size``-th
pending video, and after every batch the new records are gathered to all ranks; rank 0 appends them to
``predictions.jsonl``. Every rank ends with every record, so the report is the single-process one, and a
run may be resumed with any number of processes.

A prediction record (one JSON line)::

    {"index": 3, "video": "/abs/path.mp4", "truth": "surfing", "truth_index": 7,
     "predictions": [{"label": "surfing", "index": 7, "score": 0.61}, ...],   # top 5, best first
     "truth_rank": 1, "truth_score": 0.61}

``truth_rank`` is the 1-based rank of the true class among all classes (ties broken by class index, as in
``predictions``), so top-k accuracy for any k and the confusion matrix follow from the records alone. A
video that could not be decoded is ``{"index", "video", "truth", "truth_index", "error"}``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from . import distributed
from ._version import __version__
from .errors import OptionValueError, UsageError, VidpromptError
from .fileio import atomic_write, atomic_write_json, atomic_write_text, make_folder
from .locks import FileLock, claim
from .methods.base import model_identity
from .video import absolute_source

if TYPE_CHECKING:  # torch-free at import time; these are only annotations
    from .classifier import VideoClassifier
    from .datasets import VideoDataset

log = logging.getLogger(__name__)

TOP_K = 5  # predictions stored per video; top-5 accuracy is the usual second metric
MAX_MATRIX_PLOT_CLASSES = 100  # above this a confusion-matrix image is unreadable: top confusions instead
TOP_CONFUSIONS_IN_REPORT = 20
RUN_FORMAT = 1

RUN_FILE = "run.json"
PREDICTIONS_FILE = "predictions.jsonl"
LOCK_FILE = ".eval.lock"
REPORT_FILE = "report.json"
PER_CLASS_FILE = "per_class.csv"
CONFUSIONS_FILE = "top_confusions.csv"
MATRIX_PLOT_FILE = "confusion_matrix.png"

Record = Mapping[str, Any]


# --- metrics: pure functions of prediction records -----------------------------------------------------------

def _scored(records: Iterable[Record]) -> list[Record]:
    """The records of videos that were scored (failed videos carry an ``error`` and no prediction)."""
    return [r for r in records if r.get("error") is None]


def top_k_accuracy(records: Iterable[Record], k: int) -> float | None:
    """Fraction of scored videos whose true class is among the ``k`` best; ``None`` when none was scored."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    scored = _scored(records)
    if not scored:
        return None
    return sum(r["truth_rank"] <= k for r in scored) / len(scored)


def confusion_matrix(records: Iterable[Record], num_classes: int) -> list[list[int]]:
    """``matrix[truth][predicted]`` = number of videos of class ``truth`` whose top prediction is
    ``predicted`` (rows sum to the class's scored videos)."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for record in _scored(records):
        matrix[record["truth_index"]][record["predictions"][0]["index"]] += 1
    return matrix


def per_class_accuracy(records: Iterable[Record], classes: Sequence[str], k: int = TOP_K) -> list[dict]:
    """One row per class, in class order: scored videos, top-1 and top-``k`` hits and accuracies
    (``None`` for a class without scored videos)."""
    rows = [{"index": i, "class": name, "videos": 0, "correct": 0, f"top{k}_correct": 0}
            for i, name in enumerate(classes)]
    for record in _scored(records):
        row = rows[record["truth_index"]]
        row["videos"] += 1
        row["correct"] += record["truth_rank"] == 1
        row[f"top{k}_correct"] += record["truth_rank"] <= k
    for row in rows:
        n = row["videos"]
        row["accuracy"] = row["correct"] / n if n else None
        row[f"top{k}_accuracy"] = row[f"top{k}_correct"] / n if n else None
    return rows


def mean_class_accuracy(records: Iterable[Record], num_classes: int) -> float | None:
    """Top-1 accuracy averaged over the classes that have scored videos (each class counts once)."""
    hits = [0] * num_classes
    totals = [0] * num_classes
    for record in _scored(records):
        totals[record["truth_index"]] += 1
        hits[record["truth_index"]] += record["truth_rank"] == 1
    accuracies = [h / n for h, n in zip(hits, totals) if n]
    return sum(accuracies) / len(accuracies) if accuracies else None


def top_confusions(matrix: Sequence[Sequence[int]], classes: Sequence[str],
                   limit: int | None = None) -> list[dict]:
    """Off-diagonal cells of the confusion matrix, most frequent first (ties: by truth, then predicted
    index). ``share`` is the fraction of the true class's scored videos that went to ``predicted``."""
    cells = []
    for t, row in enumerate(matrix):
        total = sum(row)
        for p, count in enumerate(row):
            if count and p != t:
                cells.append({"truth": classes[t], "predicted": classes[p], "truth_index": t,
                              "predicted_index": p, "count": count, "share": count / total})
    cells.sort(key=lambda c: (-c["count"], c["truth_index"], c["predicted_index"]))
    return cells if limit is None else cells[:limit]


def compute_metrics(records: Iterable[Record], classes: Sequence[str]) -> dict:
    """All metrics of one evaluation, from its records (failed videos are counted, not scored)."""
    records = list(records)
    scored = _scored(records)
    k = min(TOP_K, len(classes))
    matrix = confusion_matrix(scored, len(classes))
    return {
        "evaluated": len(scored),
        "top1": top_k_accuracy(scored, 1),
        f"top{TOP_K}": top_k_accuracy(scored, k),
        "top_k": k,  # the k behind the top-5 figure (fewer when there are fewer classes)
        "mean_class_accuracy": mean_class_accuracy(scored, len(classes)),
        "per_class": per_class_accuracy(scored, classes, TOP_K),
        "confusion_matrix": matrix,
        "top_confusions": top_confusions(matrix, classes),
    }


# --- prediction records ------------------------------------------------------------------------------------

def prediction_record(index: int, video: str, truth_index: int, probs, classes: Sequence[str],
                      k: int = TOP_K) -> dict:
    """The record of one scored video from its probabilities over ``classes`` (a 1-D tensor)."""
    import torch

    order = torch.sort(probs.float(), descending=True, stable=True).indices
    rank = int((order == truth_index).nonzero()[0, 0]) + 1
    top = order[: min(k, len(classes))].tolist()
    return {
        "index": index, "video": video, "truth": classes[truth_index], "truth_index": truth_index,
        "predictions": [{"label": classes[i], "index": i, "score": round(float(probs[i]), 6)} for i in top],
        "truth_rank": rank, "truth_score": round(float(probs[truth_index]), 6),
    }


def failure_record(index: int, video: str, truth_index: int, error: str, classes: Sequence[str]) -> dict:
    return {"index": index, "video": video, "truth": classes[truth_index], "truth_index": truth_index,
            "error": error}


def read_predictions(path: str | Path) -> tuple[list[dict], int]:
    """Records of a ``predictions.jsonl`` and the byte length of its complete lines.

    The last line is dropped when it has no newline (the process was killed while writing it); any other
    unreadable line means the file is damaged, and that is an error rather than a silent skip.
    """
    path = Path(path)
    data = path.read_bytes()
    records: list[dict] = []
    pos = 0
    line_no = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end == -1:
            break  # a partly written last line: redone by the caller
        line_no += 1
        line = data[pos:end].strip()
        if line:
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except ValueError:
                raise VidpromptError(f"{path}:{line_no}: not a prediction record; the file is damaged "
                                     "(delete it to start the evaluation over)") from None
            records.append(record)
        pos = end + 1
    return records, pos


# --- run identity: what must match for a rerun to continue ---------------------------------------------------

def dataset_digest(paths: Sequence[str], truth: Sequence[int]) -> str:
    digest = hashlib.sha256()
    for path, index in zip(paths, truth):
        digest.update(f"{path}\t{index}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _jsonable(value):
    return json.loads(json.dumps(value))


def _describe(key: str, value) -> str:
    if key == "view" and isinstance(value, dict):
        text = f"{value.get('frames')}x{value.get('clips')}x{value.get('crops')} {value.get('sampling')}"
        return text + (f" stride {value.get('stride')}" if value.get("sampling") == "dense" else "")
    if key == "model" and isinstance(value, dict):
        return f"{value.get('method')} on {value.get('backbone')}"
    if key == "dataset" and isinstance(value, dict):
        return f"{value.get('name')} ({value.get('videos')} videos)"
    if key == "classes" and isinstance(value, list):
        return f"{len(value)} classes ({', '.join(map(str, value[:3]))}{', ...' if len(value) > 3 else ''})"
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _identity_difference(recorded: dict, current: dict) -> str:
    parts = []
    for key in current:
        old, new = recorded.get(key), current[key]
        if old == new:
            continue
        if key == "model" and isinstance(old, dict):
            if old.get("method") != new["method"] or old.get("backbone") != new["backbone"]:
                parts.append(f"model: recorded {_describe(key, old)}, now {_describe(key, new)}")
            changed = sorted(k for k in set(old.get("hparams") or {}) | set(new["hparams"] or {})
                             if (old.get("hparams") or {}).get(k) != (new["hparams"] or {}).get(k))
            if changed:
                parts.append(f"model settings differ: {', '.join(changed)}")
            if old.get("trained_tensors") != new["trained_tensors"]:
                parts.append("trained weights differ")
        elif key == "dataset" and isinstance(old, dict) and old.get("videos") == new["videos"]:
            parts.append(f"dataset: same number of videos ({new['videos']}) but other files or labels")
        else:
            parts.append(f"{key}: recorded {_describe(key, old)}, now {_describe(key, new)}")
    extra = sorted(set(recorded) - set(current))
    if extra:
        parts.append(f"recorded fields this version does not know: {', '.join(extra)}")
    return "; ".join(parts)


# --- a run ------------------------------------------------------------------------------------------------------

class EvalRun:
    """One evaluation of ``classifier`` on ``dataset`` (scored against ``dataset.classes``).

    With ``out_dir`` it records itself there and resumes what is already recorded; a rerun whose model,
    views, precision, classes or video list differ is refused. ``config`` (the resolved settings, JSON) is
    stored in ``run.json`` and the report as information only.

        run = EvalRun(clf, dataset, "reports/k400")
        run.run(progress=advance)          # only run.pending is scored
        report = run.report()
        run.write_outputs(report)
    """

    def __init__(self, classifier: VideoClassifier, dataset: VideoDataset, out_dir: str | Path | None = None,
                 config: Mapping[str, Any] | None = None):
        from .runtime import precision_name

        if not dataset.samples:
            raise UsageError(f"{dataset.name}: no videos to evaluate")
        self.classifier = classifier
        self.dataset = dataset
        self.classes = list(dataset.classes)
        self.paths = [absolute_source(sample.path) for sample in dataset.samples]
        self.truth = [sample.index for sample in dataset.samples]
        self.config = _jsonable(dict(config or {}))
        self.identity = _jsonable({
            "model": model_identity(classifier.model),
            "view": classifier.view.to_dict(),
            "precision": precision_name(classifier.autocast_dtype),
            "classes": self.classes,
            "dataset": {"name": dataset.name, "videos": len(self.paths),
                        "digest": dataset_digest(self.paths, self.truth)},
            "stored_top_k": TOP_K,
        })
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.records: dict[int, dict] = {}
        self.resumed = 0
        if distributed.is_distributed():
            self._open_distributed()
        elif self.out_dir is not None:
            self._open_out_dir()

    # --- output folder ------------------------------------------------------------------------------------
    @property
    def predictions_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / PREDICTIONS_FILE

    def _open_out_dir(self) -> None:
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise OptionValueError("out_dir", f"out_dir {out}: exists and is not a folder")
        run_path, pred_path = out / RUN_FILE, out / PREDICTIONS_FILE
        if run_path.is_file():
            self._check_recorded_run(run_path)
        elif pred_path.is_file() and pred_path.stat().st_size:
            raise OptionValueError("out_dir", f"{pred_path} exists without {RUN_FILE}, so what produced it is "
                                              "unknown; use another out_dir folder or delete it")
        else:
            atomic_write_json(run_path, {"format": RUN_FORMAT, "vidprompt_version": __version__,
                                         "identity": self.identity, "config": self.config})
        if pred_path.is_file():
            self._load_records(pred_path)

    def _open_distributed(self) -> None:
        """All ranks: agree on what is evaluated; rank 0 opens the output folder and shares its records."""
        key = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()
        keys = distributed.all_gather_object(key)
        differ = [r for r, k in enumerate(keys) if k != keys[0]]
        if differ:  # every rank raises this
            raise UsageError(f"rank(s) {', '.join(map(str, differ))} would evaluate something else than rank 0 "
                             "(model, views, precision, classes or video list differ); every process must load "
                             "the same model and dataset")
        outcome: tuple[str, Any] | None = None
        if distributed.is_main():
            try:
                if self.out_dir is not None:
                    self._open_out_dir()
                outcome = ("ok", list(self.records.values()))
            except Exception as exc:  # the other ranks wait for the outcome: tell them, then raise
                shared = exc if isinstance(exc, VidpromptError) else VidpromptError(f"{type(exc).__name__}: {exc}")
                distributed.broadcast_object(("error", shared))
                distributed.barrier()  # the broadcast has landed everywhere before anyone leaves the group
                raise
        outcome = distributed.broadcast_object(outcome)
        if distributed.is_main():
            return
        state, value = outcome
        if state == "error":
            distributed.barrier()
            value.reported_on_main = True  # rank 0 prints it; the CLI keeps the other ranks quiet
            raise value
        for record in value:
            self.records[record["index"]] = record
        self.resumed = len(self.records)

    def _check_recorded_run(self, run_path: Path) -> None:
        try:
            recorded = json.loads(run_path.read_text("utf-8"))
            fmt, identity = recorded["format"], recorded["identity"]
        except (OSError, ValueError, KeyError, TypeError):
            raise OptionValueError("out_dir", f"out_dir {run_path.parent}: {run_path.name} is not a vidprompt eval "
                                              "record; use another folder") from None
        if fmt != RUN_FORMAT:
            raise OptionValueError("out_dir", f"out_dir {run_path.parent} was written by another vidprompt version "
                                              f"(run format {fmt}, this version reads {RUN_FORMAT}); use another "
                                              "folder")
        if identity != self.identity:
            raise OptionValueError("out_dir", f"out_dir {run_path.parent} holds an evaluation of something else, "
                                              "refusing to mix results "
                                              f"({_identity_difference(identity, self.identity)}); rerun with the "
                                              "same settings, or use another folder")

    def _load_records(self, pred_path: Path) -> None:
        records, good_bytes = read_predictions(pred_path)
        if good_bytes < pred_path.stat().st_size:
            log.warning("%s: dropped a partly written last line (the previous run was killed while "
                        "writing it); that video is evaluated again", pred_path)
            os.truncate(pred_path, good_bytes)
        for record in records:
            index = record.get("index")
            if not isinstance(index, int) or not 0 <= index < len(self.paths) \
                    or record.get("video") != self.paths[index]:
                raise VidpromptError(f"{pred_path}: record for {record.get('video')!r} does not belong to this "
                                     "dataset; the file is damaged (delete it to start over)")
            if not self._record_ok(record, index):
                raise VidpromptError(f"{pred_path}: the record of {record.get('video')!r} has missing or wrong "
                                     "fields; the file is damaged (delete it to start over)")
            self.records.setdefault(index, record)
        self.resumed = len(self.records)

    def _record_ok(self, record: dict, index: int) -> bool:
        """A stored record has the fields the metrics read, of the right types and within the class list."""
        classes = len(self.classes)
        if record.get("truth_index") != self.truth[index]:
            return False
        if record.get("error") is not None:
            return isinstance(record["error"], str)
        predictions = record.get("predictions")
        number = (int, float)
        return (isinstance(predictions, list) and bool(predictions)
                and all(isinstance(p, dict) and isinstance(p.get("index"), int) and 0 <= p["index"] < classes
                        and isinstance(p.get("score"), number) for p in predictions)
                and isinstance(record.get("truth_rank"), int) and 1 <= record["truth_rank"] <= classes
                and isinstance(record.get("truth_score"), number))

    # --- scoring ------------------------------------------------------------------------------------------
    @property
    def pending(self) -> list[int]:
        """Dataset positions not yet scored (nor failed), in dataset order."""
        return [i for i in range(len(self.paths)) if i not in self.records]

    def run(self, progress: Callable[[int], None] | None = None) -> None:
        """Score the pending videos; with an output folder each batch's records are appended and flushed
        before ``progress(n)`` is called, so what the bar shows as done is on disk.

        Under torchrun every rank must call it; ``progress(n)`` then counts the videos of all ranks."""
        if distributed.is_distributed():
            return self._run_distributed(progress)
        pending = self.pending
        if not pending:
            return
        handle = None
        if self.predictions_path is not None:
            handle = self.predictions_path.open("a", encoding="utf-8", newline="\n")
        buffer: list[str] = []

        def flush() -> None:
            if handle is not None and buffer:
                self._append(handle, "".join(buffer))
            buffer.clear()

        def batch_done(n: int) -> None:
            flush()
            if progress is not None:
                progress(n)

        try:
            paths = [self.paths[i] for i in pending]
            for position, _, probs, error in self.classifier.predict(paths, self.classes, progress=batch_done):
                index = pending[position]
                record = self._record(index, probs, error)
                self.records[index] = record
                buffer.append(json.dumps(record) + "\n")  # ASCII: names that are not UTF-8 survive
        finally:
            flush()  # whole records only: an interrupted batch keeps the videos it finished
            if handle is not None:
                handle.close()

    def _append(self, handle, text: str) -> None:
        try:
            handle.write(text)
            handle.flush()
        except OSError as exc:  # a full disk: one line naming the file; the records already there are kept
            raise VidpromptError(f"cannot write {self.predictions_path}: {exc.strerror or exc}") from None

    def _record(self, index: int, probs, error: str | None) -> dict:
        if probs is None:
            return failure_record(index, self.paths[index], self.truth[index], error or "failed", self.classes)
        return prediction_record(index, self.paths[index], self.truth[index], probs, self.classes)

    def _run_distributed(self, progress: Callable[[int], None] | None) -> None:
        """Rank r scores ``pending[r::world_size]``. After each of its batches a rank joins one gather of
        the new records (a rank that is through joins with nothing, until all are through), so every rank
        makes the same number of collective calls; rank 0 appends what each gather brings and flushes."""
        pending = self.pending  # the same on every rank: the records were shared when the run was opened
        if not pending:
            return
        me, world = distributed.rank(), distributed.world_size()
        shard = pending[me::world]
        handle = None
        if distributed.is_main() and self.predictions_path is not None:
            handle = self.predictions_path.open("a", encoding="utf-8", newline="\n")
        buffer: list[dict] = []

        def keep(parts: list) -> None:
            new = [record for records in parts for record in records]
            for record in new:
                self.records[record["index"]] = record
            if handle is not None and new:
                self._append(handle, "".join(json.dumps(r) + "\n" for r in new))
            if progress is not None and new:
                progress(len(new))

        def exchange(state: str, message: str = "") -> bool:
            """One gather step; True once every rank is through. Raises when another rank failed."""
            records = list(buffer)
            buffer.clear()
            return distributed.step_together(state, message, records, received=keep,
                                             then="the videos finished so far are kept, rerun to resume")

        try:
            try:
                if shard:
                    paths = [self.paths[i] for i in shard]
                    batches = self.classifier.predict(paths, self.classes, progress=lambda n: exchange("running"))
                    for position, _, probs, error in batches:
                        index = shard[position]
                        buffer.append(self._record(index, probs, error))
            except distributed.PeerFailed:
                raise
            except Exception as exc:  # tell the others (and hand over what this batch finished), then raise
                try:
                    exchange("failed", f"{type(exc).__name__}: {exc}".splitlines()[0])
                except distributed.PeerFailed:
                    pass
                raise
            while not exchange("done"):
                pass
        finally:
            if handle is not None:
                handle.close()

    # --- results ------------------------------------------------------------------------------------------
    def ordered_records(self) -> list[dict]:
        return [self.records[i] for i in sorted(self.records)]

    def report(self) -> dict:
        """Everything about the evaluation as one JSON-ready dict (what ``report.json`` holds)."""
        records = self.ordered_records()
        metrics = compute_metrics(records, self.classes)
        confusions = metrics.pop("top_confusions")
        failed = [{"video": r["video"], "error": r["error"]} for r in records if r.get("error") is not None]
        identity = self.identity
        return {
            "vidprompt_version": __version__,
            "dataset": {"name": self.dataset.name, "classes": len(self.classes), "videos": len(self.paths),
                        "digest": identity["dataset"]["digest"]},
            "model": identity["model"],
            "view": identity["view"],
            "precision": identity["precision"],
            "config": self.config,
            "counts": {"videos": len(self.paths), "evaluated": metrics["evaluated"], "failed": len(failed),
                       "missing": len(self.dataset.missing), "not_run": len(self.paths) - len(records)},
            "metrics": {key: metrics[key] for key in ("top1", f"top{TOP_K}", "top_k", "mean_class_accuracy")},
            "per_class": metrics["per_class"],
            "top_confusions": confusions[:TOP_CONFUSIONS_IN_REPORT],
            "confusion_matrix": metrics["confusion_matrix"],
            "classes": self.classes,
            "failed": failed,
            "missing": list(self.dataset.missing),
        }

    def write_outputs(self, report: dict) -> list[Path]:
        """``report.json``, ``per_class.csv``, ``top_confusions.csv`` and, for up to
        :data:`MAX_MATRIX_PLOT_CLASSES` classes, ``confusion_matrix.png`` (skipped with a warning when
        matplotlib is not installed). Returns the files written: none on the ranks other than 0 under
        torchrun."""
        if self.out_dir is None:
            raise UsageError("no output folder to write the report to")
        if not distributed.is_main():
            return []
        return write_report_files(self.out_dir, report, self.ordered_records())


def evaluate(classifier: VideoClassifier, dataset: VideoDataset, out_dir: str | Path | None = None,
             config: Mapping[str, Any] | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """Evaluate (resuming whatever ``out_dir`` already holds), write the report files there, return the
    report. Under torchrun every rank gets the report; rank 0 alone writes the files."""
    lock = claim_out_dir(out_dir)
    try:
        run = EvalRun(classifier, dataset, out_dir, config)
        run.run(progress)
        report = run.report()
        if out_dir is not None:
            run.write_outputs(report)
        return report
    finally:
        if lock is not None:
            lock.release()


def claim_out_dir(out_dir: str | Path | None) -> FileLock | None:
    """The output folder's lock, so a second eval cannot append to the same predictions (main process only).

    :func:`evaluate` and the CLI hold it for the whole run; :class:`EvalRun` alone does not take it.
    """
    if out_dir is None or not distributed.is_main():
        return None
    try:
        out = make_folder(out_dir, "out_dir")
    except UsageError as exc:  # an error on out_dir, which the command line shows as its flag
        raise OptionValueError("out_dir", str(exc)) from None
    return claim(out / LOCK_FILE, f"{out} is being written by another `vidprompt eval`")


# --- report files -----------------------------------------------------------------------------------------------

_NUMBER_ARRAY = re.compile(r"\[([-\d.eE+,\s]*)\]")


def report_json(report: Mapping[str, Any]) -> str:
    """Indented JSON with arrays of numbers (confusion-matrix rows) kept on one line each."""
    text = json.dumps(report, indent=2, ensure_ascii=False)

    def squeeze(match: re.Match) -> str:
        inner = match.group(1)
        if "\n" not in inner:  # raw newlines never occur inside JSON strings, so this is a real array
            return match.group(0)
        return "[" + ", ".join(part.strip() for part in inner.split(",")) + "]"

    return _NUMBER_ARRAY.sub(squeeze, text) + "\n"


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def write_report_files(out_dir: str | Path, report: Mapping[str, Any], records: Sequence[Record]) -> list[Path]:
    out = Path(out_dir)
    written = [atomic_write_text(out / REPORT_FILE, report_json(report))]
    k = TOP_K
    written.append(atomic_write_text(out / PER_CLASS_FILE, _csv_text(
        ["index", "class", "videos", "correct", "accuracy", f"top{k}_correct", f"top{k}_accuracy"],
        ([r["index"], r["class"], r["videos"], r["correct"], _fmt(r["accuracy"]), r[f"top{k}_correct"],
          _fmt(r[f"top{k}_accuracy"])] for r in report["per_class"]))))
    confusions = top_confusions(report["confusion_matrix"], report["classes"])
    written.append(atomic_write_text(out / CONFUSIONS_FILE, _csv_text(
        ["truth", "predicted", "count", "share_of_truth"],
        ([c["truth"], c["predicted"], c["count"], _fmt(c["share"])] for c in confusions))))
    if len(report["classes"]) <= MAX_MATRIX_PLOT_CLASSES:
        plot = plot_confusion_matrix(report["confusion_matrix"], report["classes"], out / MATRIX_PLOT_FILE,
                                     title=f"{report['dataset']['name']}: top-1 confusion matrix")
        if plot is not None:
            written.append(plot)
    return written


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path,
                          title: str = "confusion matrix") -> Path | None:
    """A PNG of the row-normalised matrix (colour = share of the true class, counts written in the cells
    when there are few classes). Returns ``None``, with a warning, when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("warning: matplotlib is not installed, so no %s was drawn "
                    "(pip install 'vidprompt[plot]')", Path(path).name)
        return None
    n = len(classes)
    shares = [[count / max(sum(row), 1) for count in row] for row in matrix]
    side = min(max(4.0, 0.28 * n + 2.5), 32.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    try:
        image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
        font = max(4.0, min(9.0, 300.0 / max(n, 1)))
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(classes, rotation=90, fontsize=font)
        ax.set_yticklabels(classes, fontsize=font)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        if n <= 30:
            for t, row in enumerate(matrix):
                for p, count in enumerate(row):
                    if count:
                        ax.text(p, t, str(count), ha="center", va="center", fontsize=font,
                                color="white" if shares[t][p] > 0.5 else "black")
        fig.tight_layout()
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)
