"""Benchmark: what `eval` costs on top of `classify` for the same videos, frames and model.

Both go through one VideoClassifier (same views, batch size, workers, cached text embeddings); eval adds
the run record, per-batch appends to predictions.jsonl, the metrics and the report files (report.json,
CSVs, confusion-matrix PNG). Real architecture with random weights (no downloads), real video files made
here, repeats interleaved so both see the same machine load.

    python benchmarks/eval_overhead.py                        # ViT-B-32, 32 videos, 8 frames
    python benchmarks/eval_overhead.py --device cuda --videos 128 --batch-size 16 --data /tmp/clips
                                       # --data: videos made once there, reused (and no PyAV needed) later

Prints a Markdown table; the issue's target is eval <= 1.10x classify.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from vidprompt.backbone import build_backbone  # noqa: E402
from vidprompt.classifier import VideoClassifier  # noqa: E402
from vidprompt.datasets import load_dataset  # noqa: E402
from vidprompt.evaluation import EvalRun  # noqa: E402
from vidprompt.methods.zeroshot import ZeroShotCLIP  # noqa: E402
from vidprompt.runtime import resolve_device  # noqa: E402
from vidprompt.video import ViewConfig  # noqa: E402

CLASSES = ["surfing", "cooking", "playing guitar", "riding a bike"]


def make_dataset(root: Path, videos: int, seconds: float, fps: int = 25, h: int = 240, w: int = 320) -> Path:
    """``videos`` clips spread over the class folders: a drifting blocky texture, different per clip (blocks
    rather than pixel noise keep the files small)."""
    from media import write_video

    for i in range(videos):
        rng = np.random.default_rng(i)
        blocks = rng.integers(0, 256, size=(h // 8, w // 8, 3), dtype=np.uint8)
        texture = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)
        frames = np.stack([np.roll(texture, 4 * t, axis=0) for t in range(int(seconds * fps))])
        write_video(root / CLASSES[i % len(CLASSES)] / f"clip{i:03d}.mp4", frames, fps=fps)
    return root


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_classify(clf: VideoClassifier, paths: list[str], labels: list[str]) -> float:
    start = time.perf_counter()
    results = clf.classify(paths, labels)
    sync(clf.device)
    assert all(r.ok for r in results)
    return time.perf_counter() - start


def time_eval(clf: VideoClassifier, dataset, out_dir: Path | None) -> tuple[float, float]:
    """(total seconds, of which writing the final report files)."""
    start = time.perf_counter()
    run = EvalRun(clf, dataset, out_dir)
    run.run()
    report = run.report()
    sync(clf.device)
    scored = time.perf_counter()
    if out_dir is not None:
        run.write_outputs(report)
    end = time.perf_counter()
    assert report["counts"]["evaluated"] == len(dataset)
    return end - start, end - scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--videos", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--repeats", type=int, default=6,
                        help="rounds in rotating order; medians are reported (run-to-run spread is ~10 %% on 2 cores)")
    parser.add_argument("--data", type=Path, help="class-folder dataset to use; made there first if absent")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{os.cpu_count()}"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data or tmp / "videos"
        if not data.exists():
            make_dataset(data, args.videos, args.seconds)
        dataset = load_dataset(data=data)
        args.videos = len(dataset)
        paths = [str(s.path) for s in dataset.samples]
        clf = VideoClassifier(ZeroShotCLIP(build_backbone(args.model, "none")), ViewConfig(frames=args.frames),
                              device=device, precision=args.precision, batch_size=args.batch_size,
                              num_workers=args.num_workers)
        time_classify(clf, paths[: args.batch_size], dataset.classes)  # warm-up: text embeddings, kernels
        time_eval(clf, dataset, tmp / "warm-up")  # and matplotlib's first import
        rows: dict[str, list[float]] = {"classify": [], "eval (no --out)": [], "eval --out": [], "report files": []}

        def measure(name: str, repeat: int) -> None:
            if name == "classify":
                rows[name].append(time_classify(clf, paths, dataset.classes))
            elif name == "eval (no --out)":
                rows[name].append(time_eval(clf, dataset, None)[0])
            else:
                total, files = time_eval(clf, dataset, tmp / f"out{repeat}")
                rows[name].append(total)
                rows["report files"].append(files)

        order = ["classify", "eval (no --out)", "eval --out"]
        for repeat in range(args.repeats):  # rotate the order so that no run always goes first
            for name in order[repeat % 3:] + order[: repeat % 3]:
                measure(name, repeat)

    base = statistics.median(rows["classify"])
    clips = f"{args.videos} videos from {args.data}" if args.data else \
        f"{args.videos} videos of {args.seconds:.0f} s 320x240"
    print(f"# eval overhead ({where}, {args.model} random weights, {clips}, {args.frames} frames, "
          f"batch {args.batch_size}, workers {clf.num_workers if clf.num_workers is not None else 'default'}, "
          f"median of {args.repeats})\n")
    print("| run | seconds | videos/s | vs classify |")
    print("|---|---|---|---|")
    figures = {"device": where, "model": args.model, "videos": args.videos, "frames": args.frames,
               "batch_size": args.batch_size, "rows": {}}
    for name, times in rows.items():
        median = statistics.median(times)
        figures["rows"][name] = {"seconds": median, "all": times}
        if name == "report files":
            print(f"| (of which report files) | {median:.3f} | | {median / base:+.1%} |")
            continue
        print(f"| {name} | {median:.3f} | {args.videos / median:.2f} | {median / base:.3f}x |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
