"""Benchmark: PromptCLIP training epoch on cached frame features vs one image-encoder pass over the same
videos; trainable parameters and checkpoint size. Real architecture, random weights, generated videos.

    python benchmarks/promptclip_cost.py                       # ViT-B-16, 4 classes x 8 videos, 8 frames
    python benchmarks/promptclip_cost.py --model ViT-B-32 --videos-per-class 16 --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from media import moving_square, write_video  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--videos-per-class", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["VIDPROMPT_CACHE_DIR"] = str(tmp / "cache")
        rng = np.random.default_rng(0)
        directions = ["right", "left", "up", "down"]
        for c in range(args.classes):
            for i in range(args.videos_per_class):
                frames = moving_square(directions[c % 4], n=40, size=128, square=32, rng=rng)
                write_video(tmp / "data" / f"class {c}" / f"{i}.mp4", frames)

        from vidprompt.config import load_config
        from vidprompt.training import Trainer

        cfg = load_config(None, None, data=str(tmp / "data"), val_fraction=0.0, model=args.model,
                          pretrained="none", frames=args.frames, epochs=args.epochs, device=args.device,
                          out=str(tmp / "run"))
        trainer = Trainer(cfg, progress=False)
        videos = len(trainer.data.train_paths)
        start = time.perf_counter()
        trainer._features = trainer._cached_features()
        encode_seconds = time.perf_counter() - start
        trainer.fit()
        epoch_seconds = statistics.median(h["seconds"] for h in trainer.history)
        params = sum(t.numel() for t in trainer.model.trainable_state().values())
        size = (tmp / "run" / "best.safetensors").stat().st_size

    print(f"# PromptCLIP cost ({args.model}, random weights, {videos} videos, {args.frames} frames, "
          f"device {trainer.device})\n")
    print("| figure | value |")
    print("|---|---|")
    print(f"| image-encoder pass over the videos (decode + encode, once) | {encode_seconds:.2f} s |")
    print(f"| one training epoch on cached features (median of {args.epochs}) | {epoch_seconds:.3f} s |")
    print(f"| epoch / encoder pass | {epoch_seconds / encode_seconds:.1%} (target <= 5%) |")
    print(f"| trainable parameters | {params / 1e6:.2f} M (paper: about 5M) |")
    print(f"| checkpoint size | {size / 1e6:.2f} MB |")


if __name__ == "__main__":
    main()
