"""Publish a trained run on the Hugging Face Hub: the checkpoint, its resolved config, a record of what was
published (``vidprompt.json``: the checkpoint's SHA-256, which :func:`vidprompt.hub.local_checkpoint` checks on
every pull) and a generated model card (``README.md`` with the Hub's YAML metadata).

:func:`prepare` writes exactly the folder that would be uploaded (``vidprompt push --dry-run --out DIR``);
:func:`push` uploads that folder with one ``huggingface_hub`` call.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from ._version import __version__
from .errors import UsageError
from .hub import CHECKPOINT_FILE, PREFIX, RECORD_FILE, sha256_of

RECORD_FORMAT = "vidprompt-hub"
CARD_FILE = "README.md"
CONFIG_FILE = "config.yaml"


def find_checkpoint(run: str | Path) -> Path:
    """A run folder's checkpoint to publish (``best.safetensors``, else ``last.safetensors``), or the file given."""
    run = Path(run)
    if run.is_file():
        return run
    for name in ("best.safetensors", "last.safetensors"):
        if (run / name).is_file():
            return run / name
    raise UsageError(f"{run}: no checkpoint to publish (best.safetensors or last.safetensors; train first)")


def find_report(run: Path) -> dict | None:
    """An eval report beside the run (``run/*/report.json`` or ``run/report.json``, newest first), or None."""
    if not run.is_dir():
        return None
    for path in sorted([*run.glob("report.json"), *run.glob("*/report.json")], key=lambda p: -p.stat().st_mtime):
        try:
            report = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and isinstance(report.get("metrics"), dict):
            return report
    return None


def prepare(run: str | Path, out: str | Path, repo_id: str) -> Path:
    """Write the folder ``push`` uploads for ``run`` (a run folder or a checkpoint file) into ``out`` (created;
    it must be empty or absent). Returns ``out``."""
    from .checkpoint import read_checkpoint_info

    _check_repo_id(repo_id)
    checkpoint = find_checkpoint(run)
    info = read_checkpoint_info(checkpoint)  # a damaged or foreign file is refused before anything is written
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"out {out} is not an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint, out / CHECKPOINT_FILE)
    run_dir = Path(run) if Path(run).is_dir() else checkpoint.parent
    config = _read_config(run_dir / CONFIG_FILE)
    if config is not None:
        shutil.copyfile(run_dir / CONFIG_FILE, out / CONFIG_FILE)
    report = find_report(run_dir)
    record = {"format": RECORD_FORMAT, "version": 1, "vidprompt_version": __version__,
              "checkpoint": {"file": CHECKPOINT_FILE, "sha256": sha256_of(out / CHECKPOINT_FILE),
                             "bytes": (out / CHECKPOINT_FILE).stat().st_size, "source": checkpoint.name},
              "method": info.method, "model": info.model, "pretrained": info.pretrained,
              "classes": info.classes, "view": info.view.to_dict()}
    (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    (out / CARD_FILE).write_text(model_card(repo_id, info, config, report, _history(run_dir)), "utf-8")
    return out


def push(run: str | Path, repo_id: str, *, private: bool = False, staging: str | Path) -> str:
    """Prepare ``run`` in ``staging`` and upload it to ``repo_id`` (created if needed, ``private`` on request)
    through ``huggingface_hub`` (its token: ``hf auth login`` or ``HF_TOKEN``). Returns the repository's URL."""
    from huggingface_hub import HfApi

    folder = prepare(run, staging, repo_id)
    api = HfApi()
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="vidprompt push")
    return str(url)


def model_card(repo_id: str, info, config: dict | None, report: dict | None, history: list[dict]) -> str:
    """The model card: the Hub's YAML metadata, then what the model is, how to use it and how it did."""
    metadata = {"library_name": "vidprompt", "pipeline_tag": "video-classification",
                "tags": ["video-classification", "zero-shot-classification", "open-vocabulary", "clip", "open_clip",
                         info.method], "base_model_name": f"{info.model} ({info.pretrained})"}
    if config and config.get("dataset"):
        metadata["datasets"] = [config["dataset"]]
    if report is not None:
        metadata["metrics"] = ["accuracy"]
    lines = ["---", yaml.safe_dump(metadata, sort_keys=False).strip(), "---", "", f"# {repo_id.split('/')[-1]}", "",
             f"A {_METHOD_NAMES.get(info.method, info.method)} checkpoint for "
             f"[vidprompt](https://pypi.org/project/vidprompt/) on the frozen CLIP backbone `{info.model}` "
             f"(`{info.pretrained}` weights). It scores videos against any class names, not only the ones it was "
             "trained on.", "", "## Use", "", "```",
             f'vidprompt classify clip.mp4 --checkpoint {PREFIX}{repo_id} --labels "{",".join(info.classes[:3])}"',
             "```", "", "## Model", "", "| | |", "|---|---|", f"| method | {info.method} |",
             f"| backbone | {info.model} ({info.pretrained}) |",
             f"| views | {info.view.frames} frames ({info.view.sampling}) x {info.view.clips} clips x "
             f"{info.view.crops} crops |", f"| trained classes | {len(info.classes)} |", ""]
    lines += _training_section(config, history, info)
    lines += _metrics_section(report)
    return "\n".join(lines).rstrip() + "\n"


_METHOD_NAMES = {"promptclip": "PromptCLIP (learned prompts and a temporal Transformer; Ju et al., ECCV 2022)",
                 "aim": "AIM (adapters in the frozen image encoder; Yang et al., ICLR 2023)"}


def _training_section(config: dict | None, history: list[dict], info) -> list[str]:
    lines = ["## Training", ""]
    if config is None:
        return lines + ["No training config was published with this checkpoint.", ""]
    source = next((f"{key} `{config[key]}`" for key in ("dataset", "data", "list_file") if config.get(key)),
                  "unknown data")
    last = history[-1] if history else {}
    lines.append(f"Trained on {source}: {len(info.classes)} classes, {config.get('epochs')} epochs, batch "
                 f"{config.get('batch_size')} x {config.get('accumulate', 1)} accumulation, lr {config.get('lr')}"
                 + (f", {config['shots']} videos per class" if config.get("shots") else "") + ".")
    if last.get("val_accuracy") is not None:
        lines.append(f"Validation accuracy after the last epoch: {100 * last['val_accuracy']:.2f}%.")
    classes = ", ".join(info.classes[:20]) + (f", ... ({len(info.classes)} in all)" if len(info.classes) > 20 else "")
    return lines + ["", f"Classes: {classes}.", "", f"The resolved training config is `{CONFIG_FILE}`.", ""]


def _metrics_section(report: dict | None) -> list[str]:
    if report is None:
        return []
    metrics, counts = report["metrics"], report.get("counts", {})
    dataset = report.get("dataset", {}).get("name", "the evaluation set")

    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    return ["## Evaluation", "", f"`vidprompt eval` on {dataset} ({counts.get('evaluated')} videos):", "",
            "| metric | value |", "|---|---|", f"| top-1 | {pct(metrics.get('top1'))} |",
            f"| top-{metrics.get('top_k', 5)} | {pct(metrics.get('top5'))} |",
            f"| mean class accuracy | {pct(metrics.get('mean_class_accuracy'))} |", ""]


def _read_config(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        config = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None
    return config if isinstance(config, dict) else None


def _history(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text("utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or repo_id.startswith(PREFIX):
        raise UsageError(f"repo {repo_id!r}: expected ORG/NAME (e.g. my-lab/promptclip-kitchen)")
