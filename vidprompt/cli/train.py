"""``vidprompt train-prompts``: train PromptCLIP or AIM on the user's labelled videos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from .options import (ModelOpt, PretrainedOpt, QuietOpt, WorkersOpt, warn_random_weights)


def train_prompts(
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with any training options."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override one option: --set epochs=20 "
                                             "(repeatable; every key of the YAML config works)."),
    method: Optional[str] = typer.Option(None, "--method", show_default="promptclip", help="promptclip or aim."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder with one sub-folder of videos per class."),
    list_file: Optional[Path] = typer.Option(None, "--list-file", help="List file: CSV 'path,label' lines, or "
                                             "'path label_index' lines with --labels-file or --label-set."),
    labels_file: Optional[Path] = typer.Option(None, "--labels-file", help="The class list that a list file's "
                                               "label indices point into, one class per line."),
    label_set: Optional[str] = typer.Option(None, "--label-set", help="The built-in class list that a list "
                                            "file's label indices point into (k400, ucf101, ...)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Preset: k400, k600, k700, ucf101, hmdb51, ssv2."),
    root: Optional[Path] = typer.Option(None, "--root", help="Video root for list files and presets."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Kinetics CSV / SSv2 JSON."),
    split: Optional[int] = typer.Option(None, "--split", help="UCF101/HMDB51 split (1-3)."),
    splits_dir: Optional[Path] = typer.Option(None, "--splits-dir", help="UCF101/HMDB51 split files."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation videos (folder or list file)."),
    classes: Optional[Path] = typer.Option(None, "--classes", help="Train on the classes listed in this file."),
    shots: Optional[int] = typer.Option(None, "--shots", help="K videos per class (few-shot)."),
    model: Optional[str] = ModelOpt,
    pretrained: Optional[str] = PretrainedOpt,
    frames: Optional[int] = typer.Option(None, "--frames", "-f", show_default="8", help="Frames per video."),
    sampling: Optional[str] = typer.Option(None, "--sampling", show_default="segment", help="segment or dense."),
    stride: Optional[int] = typer.Option(None, "--stride", show_default="8", help="Dense sampling interval."),
    cache_views: Optional[int] = typer.Option(None, "--cache-views", show_default="1",
                                              help="PromptCLIP: random samplings cached per video."),
    adapter_positions: Optional[str] = typer.Option(None, "--adapter-positions", show_default="all",
                                                    help="AIM: all, bottom, top or skip."),
    grad_checkpointing: Optional[bool] = typer.Option(None, "--grad-checkpointing/--no-grad-checkpointing",
                                                      help="AIM: trade compute for memory."),
    accumulate: Optional[int] = typer.Option(None, "--accumulate", show_default="1",
                                             help="Gradient accumulation steps."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default: the method's recipe)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Videos per step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default: the method's recipe)."),
    device: Optional[str] = typer.Option(None, "--device", show_default="auto", help="auto, cpu, cuda, mps."),
    precision: Optional[str] = typer.Option(None, "--precision", show_default="auto",
                                            help="auto, fp32, fp16, bf16."),
    num_workers: Optional[int] = WorkersOpt,
    decoder: Optional[str] = typer.Option(None, "--decoder", show_default="auto",
                                          help="Video decoder: auto, pyav, decord or torchcodec."),
    seed: Optional[int] = typer.Option(None, "--seed", show_default="0", help="Seed for every random choice."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", show_default="runs/vidprompt", help="Run folder."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder."),
    quiet: bool = QuietOpt,
) -> None:
    """Train PromptCLIP prompts (or AIM adapters) on your labelled videos; checkpoints work with any labels."""
    flags = dict(method=method, data=data, list_file=list_file, labels_file=labels_file, label_set=label_set,
                 dataset=dataset, root=root,
                 annotations=annotations, split=split, splits_dir=splits_dir, val=val, classes=classes,
                 shots=shots, model=model, pretrained=pretrained, frames=frames, sampling=sampling,
                 stride=stride, cache_views=cache_views, adapter_positions=adapter_positions,
                 grad_checkpointing=grad_checkpointing, accumulate=accumulate, epochs=epochs,
                 batch_size=batch_size, lr=lr, device=device, precision=precision, num_workers=num_workers,
                 decoder=decoder, seed=seed, out=out)
    from ..config import load_config
    from ..train import train

    if resume is not None:
        from ..train import RESUME_OVERRIDES

        runtime = {name: flags.pop(name) for name in RESUME_OVERRIDES if flags[name] is not None}
        given = [f"--{name.replace('_', '-')}" for name, value in flags.items() if value is not None]
        given += ["--config"] * (config is not None) + ["--set"] * bool(set_)
        if given:
            raise UsageError(f"--resume continues a run with its saved config; drop {', '.join(given)}")
        if not (resume / "config.yaml").is_file():
            raise UsageError(f"--resume {resume}: no run here (config.yaml missing)")
        cfg = load_config(resume / "config.yaml", out=str(resume))
    else:
        runtime = {}
        cfg = load_config(config, set_, **{k: (str(v) if isinstance(v, Path) else v) for k, v in flags.items()})
    warn_random_weights(cfg.pretrained)
    from ..interrupts import doing

    doing(f"training {cfg.out}; every finished epoch is saved: resume with "
          f"`vidprompt train-prompts --resume {cfg.out}`")
    summary = train(cfg, resume=resume is not None, progress=not quiet, overrides=runtime)
    from .. import distributed

    if not distributed.is_main():  # under torchrun, rank 0 reports
        return
    last = summary["history"][-1] if summary["history"] else {}
    typer.echo(json.dumps({"out": summary["out"], "epochs": summary["epochs"],
                           "val_accuracy": last.get("val_accuracy"), "train_loss": last.get("train_loss")}))
