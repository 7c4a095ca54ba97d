"""Benchmark: end-to-end `classify` vs the backbone's pure image-encoding rate, memory vs video length, and
CLI start time. Real architectures with random weights (no downloads), real video files made here.

    python benchmarks/classify_throughput.py                     # ViT-B-32 and ViT-B-16, 8 frames
    python benchmarks/classify_throughput.py --models ViT-B-32 --videos 8 --device cuda

Prints a Markdown table. Ratios are measured side by side in one run, on the same frames. How close
classify comes to the limit decoding and the encoder set together, on 240p to 1080p files, is
``pipeline.py``; decoding alone per backend is ``decode.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from media import panning_texture, write_video  # noqa: E402

from vidprompt.backbone import build_backbone  # noqa: E402
from vidprompt.classifier import VideoClassifier  # noqa: E402
from vidprompt.loader import default_num_workers  # noqa: E402
from vidprompt.methods.zeroshot import ZeroShotCLIP  # noqa: E402
from vidprompt.runtime import autocast, resolve_device  # noqa: E402
from vidprompt.video import ViewConfig, load_clip_frames, resolve_decoder  # noqa: E402

LABELS = ["surfing", "cooking", "playing guitar", "riding a bike", "dancing"]


def make_clip(path: Path, seconds: float, fps: int = 25, h: int = 240, w: int = 320, seed: int = 0) -> Path:
    return write_video(path, panning_texture(int(seconds * fps), h, w, seed), fps=fps)


def encoder_rate(clf: VideoClassifier, num_videos: int, frames: int) -> float:
    """Videos/s of encode_image alone on already-preprocessed frames (same batch layout as classify)."""
    size = clf.preprocessor.height
    batch = torch.randint(0, 256, (clf.batch_size * frames, 3, size, size), dtype=torch.uint8,
                          device=clf.device)
    batches = -(-num_videos // clf.batch_size)
    with torch.inference_mode(), autocast(clf.device, clf.autocast_dtype):
        clf.model.clip.encode_image(clf.preprocessor.normalize(batch[:frames]))  # warm-up
        if clf.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(batches):
            clf.model.clip.encode_image(clf.preprocessor.normalize(batch))
        if clf.device.type == "cuda":
            torch.cuda.synchronize()
    return batches * clf.batch_size / (time.perf_counter() - start)


def end_to_end_rate(clf: VideoClassifier, paths: list[str]) -> float:
    clf.classify(paths[: clf.batch_size], LABELS)  # warm-up: text embeddings, worker start-up paths
    start = time.perf_counter()
    results = clf.classify(paths, LABELS)
    elapsed = time.perf_counter() - start
    assert all(r.ok for r in results)
    return len(paths) / elapsed


def peak_memory_mb(video: Path, model: str) -> float:
    """Peak RSS of a fresh process that classifies one video (decoding in-process, no workers)."""
    code = (
        "import resource, vidprompt\n"
        f"clf = vidprompt.load_classifier({model!r}, 'none', device='cpu', num_workers=0)\n"
        f"clf.classify([{str(video)!r}], {LABELS!r})\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def decode_time(path: str, frames: int, repeats: int = 5) -> tuple[float, str]:
    """Seconds of one core to open, decode and sample one clip with the default (``auto``) decoder and one
    codec thread, as a decoding worker does; and the backend that read it."""
    decoder = resolve_decoder("auto")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    try:
        backend = load_clip_frames(path, ViewConfig(frames=frames), decoder=decoder, threads=1).decoder
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            load_clip_frames(path, ViewConfig(frames=frames), decoder=decoder, threads=1)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return float(np.median(times)), backend


def help_start_time(repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vidprompt", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["ViT-B-32", "ViT-B-16"])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    figures: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{os.cpu_count()}",
                     "precision": args.precision, "torch_threads": torch.get_num_threads(), "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = [str(make_clip(tmp / f"clip{i}.mp4", args.seconds, seed=i)) for i in range(args.videos)]
        print(f"# classify throughput ({figures['device']}, {args.videos} videos of {args.seconds:.0f} s "
              f"320x240, {args.frames} frames, batch {args.batch_size}, workers "
              f"{default_num_workers() if args.num_workers is None else args.num_workers}, "
              f"median of {args.repeats})\n")
        print("| model | encoder only (videos/s) | end-to-end classify (videos/s) | ratio |")
        print("|---|---|---|---|")
        for model in args.models:
            backbone = build_backbone(model, "none")
            clf = VideoClassifier(ZeroShotCLIP(backbone), ViewConfig(frames=args.frames), device=device,
                                  precision=args.precision, batch_size=args.batch_size,
                                  num_workers=args.num_workers)
            rounds = [(encoder_rate(clf, args.videos, args.frames), end_to_end_rate(clf, paths))
                      for _ in range(args.repeats)]  # interleaved, so drift hits both alike
            enc = float(np.median([r[0] for r in rounds]))
            e2e = float(np.median([r[1] for r in rounds]))
            figures["rows"].append({"model": model, "encoder_videos_per_s": enc, "classify_videos_per_s": e2e,
                                    "ratio": e2e / enc})
            print(f"| {model} | {enc:.2f} | {e2e:.2f} | {e2e / enc:.2f} |", flush=True)

        decode, backend = decode_time(paths[0], args.frames)
        figures["decode_seconds_per_clip"] = decode
        figures["decoder"] = backend
        print(f"\ndecoding one clip ({args.frames} frames, decoder auto -> {backend}, 1 thread): "
              f"{decode * 1000:.0f} ms")

        if not args.skip_memory:
            short = make_clip(tmp / "short.mp4", 10, h=120, w=160)
            long = make_clip(tmp / "long.mp4", 600, h=120, w=160)
            mem_short = peak_memory_mb(short, args.models[0])
            mem_long = peak_memory_mb(long, args.models[0])
            figures["memory_mb"] = {"10s": mem_short, "10min": mem_long}
            print(f"\npeak RSS classifying one clip with {args.models[0]}: 10 s -> {mem_short:.0f} MB, "
                  f"10 min -> {mem_long:.0f} MB (ratio {mem_long / mem_short:.2f})")
    start = help_start_time()
    figures["help_seconds"] = start
    print(f"`vidprompt --help`: {start * 1000:.0f} ms (median of 5, including Python start-up)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
