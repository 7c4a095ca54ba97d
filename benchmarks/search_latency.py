"""Benchmark: search latency over a large memory-mapped index, index build rate vs classify, and
localisation of a long video (windows/s, peak memory of a short vs a long video).

    python benchmarks/search_latency.py                          # 100,000 x 512 fp16, tiny model parts
    python benchmarks/search_latency.py --skip-build --skip-localize
    python benchmarks/search_latency.py --model ViT-B-16 --device cuda --videos 64

Search: a synthetic index folder in the real format (random unit vectors stored as fp16, memory-mapped);
latency is per query after the text is encoded (the query is a unit vector), measured warm, median and
95th percentile. Build and localisation use real video files made here and a real architecture with random
weights (no downloads). Prints Markdown; ``--json`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from media import panning_texture, write_video  # noqa: E402
from synthetic_index import write_index  # noqa: E402

from vidprompt import index as vpindex  # noqa: E402

TINY = str(Path(__file__).resolve().parents[1] / "tests" / "data" / "vp-tiny.json")
LABELS = ["surfing", "cooking", "playing guitar", "riding a bike", "dancing"]


def synthetic_index(root: Path, rows: int, dim: int, windows_per_video: int = 0, seed: int = 0,
                    segments: int = 1, block: int = 50_000) -> None:
    """An index folder in the real format of random normalised embeddings; the rows are generated a block at a
    time into memory-mapped files, then written by vidprompt's own segment writer."""
    rng = np.random.default_rng(seed)
    scratch = root.parent / f"{root.name}.rows"
    scratch.mkdir(parents=True, exist_ok=True)

    def filled(name: str, count: int) -> np.ndarray:
        out = np.lib.format.open_memmap(scratch / name, mode="w+", dtype=np.float16, shape=(count, dim))
        for start in range(0, count, block):
            part = rng.standard_normal((min(block, count - start), dim), dtype=np.float32)
            out[start:start + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
        out.flush()
        return out

    clips = filled("clips.npy", rows)
    windows = filled("windows.npy", rows * windows_per_video) if windows_per_video else None
    write_index(root, clips, windows, windows_per_video, segments)
    del clips, windows
    shutil.rmtree(scratch)


def search_latency(root: Path, dim: int, queries: int, top_k: int, whole_clips: bool = True) -> dict:
    start = time.perf_counter()
    index = vpindex.VideoIndex(root)
    opened = time.perf_counter() - start
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((queries + 3, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for q in vectors[:3]:  # warm: pages in the memory map, torch kernels
        index.search_embedding(q, top_k, whole_clips=whole_clips)
    times = []
    for q in vectors[3:]:
        start = time.perf_counter()
        hits = index.search_embedding(q, top_k, whole_clips=whole_clips)
        times.append(time.perf_counter() - start)
        assert len(hits) == top_k
    times_ms = np.array(times) * 1000
    return {"open_ms": opened * 1000, "median_ms": float(np.median(times_ms)),
            "p95_ms": float(np.percentile(times_ms, 95)), "queries": queries}


def make_clip(path: Path, seconds: float, fps: int = 25, h: int = 240, w: int = 320, seed: int = 0) -> Path:
    return write_video(path, panning_texture(int(seconds * fps), h, w, seed), fps=fps)


def make_long_clip(path: Path, seconds: float, fps: int = 25, h: int = 120, w: int = 160) -> Path:
    """A long clip written a block at a time (never the whole video in memory)."""
    import av

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 2 * i, axis=1), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def build_vs_classify(model: str, pretrained: str, device: str, videos: int, seconds: float, batch_size: int,
                      num_workers: int | None, tmp: Path) -> dict:
    from vidprompt.classifier import load_classifier
    from vidprompt.index import build_index

    paths = [str(make_clip(tmp / f"clip{i}.mp4", seconds, seed=i)) for i in range(videos)]
    clf = load_classifier(model, pretrained, device=device, batch_size=batch_size, num_workers=num_workers)
    clf.classify(paths[:batch_size], LABELS)  # warm-up
    build_index(tmp / "warm.vpindex", paths[:batch_size], clf)

    def sync():
        if clf.device.type == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    clf.classify(paths, LABELS)
    sync()
    classify_rate = videos / (time.perf_counter() - start)
    start = time.perf_counter()
    report = build_index(tmp / "lib.vpindex", paths, clf)
    sync()
    build_rate = videos / (time.perf_counter() - start)
    assert report.videos == videos
    return {"classify_clips_per_s": classify_rate, "index_clips_per_s": build_rate,
            "ratio": build_rate / classify_rate, "device": str(clf.device)}


def localize_run(video: Path, model: str, pretrained: str, device: str, num_workers: int | None) -> dict:
    """Localise one video in a fresh process: windows/s, peak RSS of the process and of its largest decoding
    worker."""
    code = (
        "import json, resource, time\n"
        "from vidprompt.classifier import load_classifier\n"
        "from vidprompt.localization import localize\n"
        f"clf = load_classifier({model!r}, {pretrained!r}, device={device!r}, batch_size=16, "
        f"num_workers={num_workers!r})\n"
        "start = time.perf_counter()\n"
        f"result = localize(clf, {str(video)!r}, {LABELS!r}, window=2.0, stride=1.0)\n"
        "elapsed = time.perf_counter() - start\n"
        "print(json.dumps({'windows': len(result.windows), 'seconds': elapsed, "
        "'windows_per_s': len(result.windows) / elapsed, "
        "'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
        "'peak_worker_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
        "'duration': result.duration}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="Indexed videos (search).")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--windows-per-video", type=int, default=0,
                        help="Also time window-level search over rows x this many windows.")
    parser.add_argument("--model", default=TINY, help="Backbone for build and localisation (random weights).")
    parser.add_argument("--pretrained", default="none")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=10.0, help="Length of the long video to localise.")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--skip-localize", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    figures: dict = {"torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("VIDPROMPT_CACHE_DIR", str(tmp / "cache"))
        synthetic_index(tmp / "synthetic.vpindex", args.rows, args.dim, args.windows_per_video)
        clips = search_latency(tmp / "synthetic.vpindex", args.dim, args.queries, args.top_k)
        figures["search_clips"] = clips
        print(f"# search latency ({args.rows:,} x {args.dim} fp16, memory-mapped, top-{args.top_k}, "
              f"{torch.get_num_threads()} torch threads)\n")
        print("| level | rows | open (ms) | median per query (ms) | p95 (ms) |")
        print("|---|---|---|---|---|")
        print(f"| clips | {args.rows:,} | {clips['open_ms']:.0f} | {clips['median_ms']:.1f} | "
              f"{clips['p95_ms']:.1f} |", flush=True)
        if args.windows_per_video:
            wins = search_latency(tmp / "synthetic.vpindex", args.dim, args.queries, args.top_k, whole_clips=False)
            figures["search_windows"] = wins
            print(f"| windows | {args.rows * args.windows_per_video:,} | {wins['open_ms']:.0f} | "
                  f"{wins['median_ms']:.1f} | {wins['p95_ms']:.1f} |", flush=True)

        name = Path(args.model).stem
        if not args.skip_build:
            build = build_vs_classify(args.model, args.pretrained, args.device, args.videos, args.seconds,
                                      args.batch_size, args.num_workers, tmp)
            figures["build"] = build
            print(f"\n# index build vs classify ({name}, {args.videos} clips of {args.seconds:g} s 320x240, "
                  f"8 frames, batch {args.batch_size}, {build['device']})\n")
            print("| classify (clips/s) | index (clips/s) | ratio |")
            print("|---|---|---|")
            print(f"| {build['classify_clips_per_s']:.2f} | {build['index_clips_per_s']:.2f} | "
                  f"{build['ratio']:.2f} |", flush=True)

        if not args.skip_localize:
            device = args.device
            short = make_long_clip(tmp / "short.mp4", 60)
            long = make_long_clip(tmp / "long.mp4", args.minutes * 60)
            runs = {"1 min": localize_run(short, args.model, args.pretrained, device, args.num_workers),
                    f"{args.minutes:g} min": localize_run(long, args.model, args.pretrained, device,
                                                          args.num_workers)}
            figures["localize"] = runs
            print(f"\n# localize ({name}, 2 s windows every 1 s, 8 frames each, 160x120 H.264)\n")
            print("| video | windows | seconds | windows/s | peak RSS (MB) | peak worker RSS (MB) |")
            print("|---|---|---|---|---|---|")
            for label, run in runs.items():
                print(f"| {label} | {run['windows']} | {run['seconds']:.1f} | {run['windows_per_s']:.1f} | "
                      f"{run['peak_rss_mb']:.0f} | {run['peak_worker_rss_mb']:.0f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
