"""Benchmark: how close end-to-end `classify` comes to the limit its two parts, decoding and the image
encoder, set on a CPU where they share the cores. Real architectures with random weights (no downloads),
videos from the generated corpus of ``decode.py`` (``corpus.py``, cached).

    python benchmarks/pipeline.py                      # ViT-B-32 (240p to 1080p) and ViT-B-16 (360p, 720p), H.264 GOP 60
    python benchmarks/pipeline.py --models ViT-B-32 --resolutions 360p 720p --repeats 5
    python benchmarks/pipeline.py --num-workers 2 --batch-size 4 --json pipeline.json
    python benchmarks/pipeline.py --device cuda --decoder torchcodec --models ViT-B-16 ViT-L-14 --resolutions 360p 720p 1080p --videos 256 --batch-size 32 --num-workers 8
    python benchmarks/pipeline.py --device cuda --decoder pyav ...       # the same with CPU decoding

The limit. With ``c`` cores, an encoder that embeds ``E`` videos/s using all of them spends ``c / E``
core-seconds on a video; a DataLoader worker that needs ``d`` seconds of one core to open, decode, sample
and resize a clip spends ``d`` more. With perfect overlap and no overhead the cores get through

    limit = c / (c / E + d) = 1 / (1 / E + d / c)   videos/s

(not ``1 / (1/E + 1/D)`` with D the rate of decoding alone on all cores, which counts the same cores
twice; nor ``min(E, D)``, which holds only when the two run on separate hardware, as on a GPU).
``classify / limit`` is the pipeline's efficiency; the target is 0.9 or more. On a GPU (``--device cuda``,
fp16 autocast by default) the encoder no longer shares the cores: the limit is the encoder alone with a GPU
decoder (torchcodec on CUDA; target 0.8 or more), ``min(encoder, cores / d)`` with a CPU decoder.

Measured for each model and corpus file, in ``--repeats`` interleaved rounds (medians reported):

- encoder: videos/s of ``encode_image`` alone on preprocessed frames in classify's batch layout, with
  every core (``classify_throughput.encoder_rate``), 2 batches a round; the table gives the median over all
  rounds of all files of the model, since the encoder's work does not depend on the file;
- worker cost ``d``: seconds for one DataLoader item (``VideoViews[i]``: open, decode, sample, resize to
  the model's input) in this process with one torch thread and one codec thread, as in a worker;
- decode alone: videos/s of the same DataLoader path (``VideoViews`` + ``iterate_views``) with the same
  workers and no model. It should come near ``c / d``;
- classify: videos/s of ``VideoClassifier.classify`` (8 frames, segment sampling), text embeddings cached
  (the pipeline's fill at the start and drain at the end count: they are part of any real run);
- other processes: cores that processes outside this benchmark kept busy during classify (from
  ``/proc/stat``). Every figure assumes an otherwise idle machine; rows where this is above ~0.1 are skewed.

Every video in a row is the same corpus file (decoding does not get cheaper for that: nothing is cached
between items but the file's pages, which any second run of a real dataset also has).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402
from classify_throughput import LABELS, encoder_rate  # noqa: E402

from vidprompt.backbone import build_backbone  # noqa: E402
from vidprompt.classifier import VideoClassifier  # noqa: E402
from vidprompt.loader import VideoViews, iterate_views  # noqa: E402
from vidprompt.methods.zeroshot import ZeroShotCLIP  # noqa: E402
from vidprompt.video import ViewConfig  # noqa: E402


# ViT-B-16 costs ~4x ViT-B-32 on a CPU: fewer rows keep the default run near 15 minutes on 2 cores.
DEFAULT_RESOLUTIONS = {"ViT-B-32": ("240p", "360p", "720p", "1080p")}
SLOW_MODEL_RESOLUTIONS = ("360p", "720p")


def worker_cost(clf: VideoClassifier, path: str, repeats: int = 3) -> tuple[float, str]:
    """Seconds of one thread for one DataLoader item of ``path``, and the backend that decoded it."""
    dataset = VideoViews([path], clf.view, clf.preprocessor, decoder=clf.decoder)
    dataset.threads = 1  # what iterate_views gives each worker when there are as many workers as cores
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # DataLoader workers run with one torch thread
    try:
        item = dataset[0]
        assert item.error is None, item.error
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            dataset[0]
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return float(np.median(times)), item.decoder


def decode_rate(clf: VideoClassifier, paths: list[str]) -> float:
    """Videos/s of the DataLoader path alone: classify's workers, batches and decoder, no model."""
    dataset = VideoViews(paths, clf.view, clf.preprocessor, decoder=clf.decoder)
    start = time.perf_counter()
    done = sum(len(batch) for batch in iterate_views(dataset, clf.batch_size, clf.num_workers))
    assert done == len(paths)
    return len(paths) / (time.perf_counter() - start)


def busy_seconds() -> float:
    """CPU seconds the machine has spent busy, all processes together (Linux /proc/stat; NaN elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return float("nan")
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def own_seconds() -> float:
    """CPU seconds of this process and of its finished children (the DataLoader workers, once joined)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def classify_rate(clf: VideoClassifier, paths: list[str]) -> tuple[float, float]:
    """Videos/s of classify, and how many cores other processes kept busy meanwhile (a shared machine's
    load skews every figure; this says how much)."""
    busy, own, start = busy_seconds(), own_seconds(), time.perf_counter()
    results = clf.classify(paths, LABELS)
    elapsed = time.perf_counter() - start
    others = (busy_seconds() - busy - (own_seconds() - own)) / elapsed
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:1]
    return len(paths) / elapsed, max(others, 0.0)


def measure(clf: VideoClassifier, path: Path, videos: int, repeats: int) -> dict:
    """Every figure of one corpus file, ``repeats`` interleaved rounds of each (so drift on a shared
    machine hits them alike): medians, and the rounds themselves."""
    paths = [str(path)] * videos
    clf.classify(paths[:1], LABELS)  # warm-up: text embeddings (cached from then on), the first model pass
    rounds = []
    for _ in range(repeats):
        d, backend = worker_cost(clf, str(path))
        encoder = encoder_rate(clf, min(videos, 2 * clf.batch_size), clf.view.frames)  # 2 batches: steady
        decode = decode_rate(clf, paths)
        classify, others = classify_rate(clf, paths)
        rounds.append({"encoder": encoder, "worker_seconds": d, "decode": decode, "classify": classify,
                       "other_load": others})
    row = {key: float(np.median([r[key] for r in rounds])) for key in rounds[0]}
    return {**row, "decoder": backend, "rounds": rounds}


def add_limit(row: dict, encoder: float, cores: int, clf: VideoClassifier) -> dict:
    """The limit and classify's share of it, from the model's encoder rate (the same work on every file)."""
    row["encoder_all_files"] = encoder
    if clf.device.type != "cuda":  # the encoder and the decoders share the cores
        row["limit"] = 1.0 / (1.0 / encoder + row["worker_seconds"] / cores)
    elif clf.decoder.on_gpu:  # decoding on the GPU's own engine: the encoder alone
        row["limit"] = encoder
    else:  # CPU decoders feed a GPU encoder: the slower of the two
        row["limit"] = min(encoder, cores / row["worker_seconds"])
    row["efficiency"] = row["classify"] / row["limit"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["ViT-B-32", "ViT-B-16"])
    parser.add_argument("--resolutions", nargs="+", choices=tuple(corpus.RESOLUTIONS),
                        help="default: 240p to 1080p for ViT-B-32, 360p and 720p for the others (slower)")
    parser.add_argument("--gops", nargs="+", type=int, default=[60])
    parser.add_argument("--codecs", nargs="+", choices=tuple(corpus.ENCODERS), default=["h264"])
    parser.add_argument("--cache", type=Path, default=corpus.DEFAULT_CACHE, help="where the corpus is kept")
    parser.add_argument("--videos", type=int, default=12, help="videos per timed classify")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--decoder", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (then fp16 autocast unless --precision)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    start = time.perf_counter()
    specs = {model: corpus.default_specs(args.resolutions or DEFAULT_RESOLUTIONS.get(model, SLOW_MODEL_RESOLUTIONS),
                                         args.gops, args.codecs) for model in args.models}
    if not any(specs.values()):
        raise SystemExit("no corpus file matches these --codecs, --resolutions and --gops (see corpus.DEFAULT_ROWS)")
    files = corpus.ensure_corpus(sorted({s for model_specs in specs.values() for s in model_specs},
                                        key=lambda s: s.filename), args.cache,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
    cores = os.cpu_count() or 1
    print(f"# classify vs its limit on {args.device} (cpu x{cores}, torch threads {torch.get_num_threads()}, "
          f"{args.num_workers} workers, batch {args.batch_size}, {args.frames} frames segment-sampled, "
          f"{args.videos} videos a run, median of {args.repeats})\n")
    print("limit = 1 / (1/encoder + worker cost / cores); decode alone is the DataLoader path with no model, "
          "whose ideal is cores / worker cost\n")
    print("| model | video | decoder | encoder (videos/s) | worker cost (ms/clip, 1 thread) | decode alone "
          "(videos/s) | limit (videos/s) | classify (videos/s) | classify/limit | other processes (cores) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    figures = {"cores": cores, "torch_threads": torch.get_num_threads(), "num_workers": args.num_workers,
               "batch_size": args.batch_size, "frames": args.frames, "rows": []}
    for model in args.models:
        clf = VideoClassifier(ZeroShotCLIP(build_backbone(model, "none")), ViewConfig(frames=args.frames),
                              device=args.device, precision=args.precision, batch_size=args.batch_size,
                              num_workers=args.num_workers, decoder=args.decoder)
        rows = {spec: measure(clf, files[spec], args.videos, args.repeats) for spec in specs[model]}
        # The encoder does the same work whatever the file: the median of all its rounds on all files is
        # steadier than any one file's (a 2-batch measurement varies by ~10% on a VM).
        encoder = float(np.median([r["encoder"] for row in rows.values() for r in row["rounds"]]))
        for spec, row in rows.items():
            add_limit(row, encoder, cores, clf)
            name = f"{spec.resolution} {spec.codec} GOP {spec.gop}"
            figures["rows"].append({"model": model, "video": name, **row})
            mark = "" if row["efficiency"] >= 0.9 else " (below 0.9)"
            print(f"| {model} | {name} | {row['decoder']} | {encoder:.2f} | {row['worker_seconds'] * 1000:.0f} "
                  f"| {row['decode']:.2f} | {row['limit']:.2f} | {row['classify']:.2f} | "
                  f"{row['efficiency']:.2f}{mark} | {row['other_load']:.2f} |", flush=True)
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
