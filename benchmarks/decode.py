"""Benchmark: decode-only clips/s of each installed backend (pyav, decord, torchcodec), used as a DataLoader
worker uses it: one clip at a time, one codec thread, open + index + seek + decode + RGB, then close.

    python benchmarks/decode.py                                # generated corpus (cached), every backend
    python benchmarks/decode.py --quick                        # 360p and 720p, GOP 60, H.264 only
    python benchmarks/decode.py --codecs h264 --resolutions 720p 1080p --repeats 9
    python benchmarks/decode.py --videos ~/my-clips --backends pyav decord
    python benchmarks/decode.py --cache /tmp/corpus --json decode.json

The corpus (``corpus.py``): 240p, 360p, 720p and 1080p, key frames every 12, 60 and 250 frames, 10 s at
30 fps, in H.264 (.mp4, x264 veryfast crf 23 with B-frames) and at fewer resolutions HEVC (.mp4), MPEG-4
part 2 (.avi), VP9 (.webm) and AV1 (.mp4), whichever of these PyAV can encode. It is encoded once into
``--cache`` (default ``~/.cache/vidprompt-bench/decode``, about 4 minutes on 2 cores) and reused.

Every file is read with two samplings: 8 frames segment-sampled (``ViewConfig(frames=8)``, one per eighth of
the video) and 16 frames dense (``ViewConfig(frames=16, sampling="dense", stride=4)``, a 61-frame window in
the middle). Each backend decodes each file once to warm up (and to check that the backends return the
same frames), then ``--repeats`` times, backends interleaved in a rotating order so that drift on a shared
machine hits them alike; the median time is reported as clips/s. Ratios above 1 mean faster than decord.
A backend that returns other frames than the first one (decord on open-GOP HEVC) is marked "wrong frames"
and left out of the ratios; one that cannot open a file shows "fails". Measuring takes ~7 minutes on 2
cores; on a machine busy with other work, rows move by 10-15% from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

from vidprompt.video import VIDEO_EXTENSIONS, ViewConfig, installed_backends, load_clip_frames  # noqa: E402
from vidprompt.video import resolve_decoder  # noqa: E402

SAMPLINGS = {"segment": ViewConfig(frames=8), "dense": ViewConfig(frames=16, sampling="dense", stride=4)}
SAMPLING_LABELS = {"segment": "8 segment", "dense": "16 dense /4"}
# Backends that read the same frame agree to the bit on every corpus file; a frame whose mean |difference|
# exceeds this many grey levels is another frame (or, on other footage, another colour conversion).
AGREE_LEVELS = 2.0


@dataclass
class Video:
    path: Path
    label: dict  # column -> text (resolution, codec, GOP, bitrate)


@dataclass
class Row:
    video: Video
    sampling: str
    seconds: dict = field(default_factory=dict)  # backend -> wall seconds per clip (median)
    cpu_seconds: dict = field(default_factory=dict)  # backend -> process CPU seconds per clip (median)
    errors: dict = field(default_factory=dict)  # backend -> why it could not decode this file
    disagree: dict = field(default_factory=dict)  # backend -> worst frame's mean |difference| from the first

    def wrong(self, backend: str) -> bool:
        """``backend`` returned other frames than the first backend: its time is not comparable."""
        return self.disagree.get(backend, 0.0) > AGREE_LEVELS

    def rate(self, backend: str) -> float | None:
        s = self.seconds.get(backend)
        return 1.0 / s if s else None


# --- the videos ------------------------------------------------------------------------------------------------
def probe(path: Path) -> dict:
    """Resolution, codec, mean key-frame interval and bitrate of a file (demuxed with PyAV)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keys, packets, size = [], 0, 0
        for packet in container.demux(stream):
            if packet.size:
                keys.append(packet.is_keyframe)
                packets += 1
                size += packet.size
        seconds = float(stream.duration * stream.time_base) if stream.duration else \
            (container.duration or 0) / 1e6
        width, height, codec = stream.codec_context.width, stream.codec_context.height, stream.codec_context.name
    gop = packets / max(sum(keys), 1)
    return {"resolution": f"{width}x{height}", "codec": codec, "GOP": f"{gop:.0f}",
            "Mbit/s": f"{size * 8 / seconds / 1e6:.1f}" if seconds > 0 else "?"}


def corpus_videos(args) -> list[Video]:
    codecs = [c for c in args.codecs if c in corpus.available_codecs()]
    skipped = sorted(set(args.codecs) - set(codecs))
    if skipped:
        print(f"(PyAV cannot encode {', '.join(skipped)} here: left out)", file=sys.stderr)
    specs = corpus.default_specs(args.resolutions, args.gops, codecs, args.seconds)
    if not specs:
        raise SystemExit("no corpus file matches these --codecs, --resolutions and --gops (see corpus.DEFAULT_ROWS)")
    paths = corpus.ensure_corpus(specs, args.cache, log=lambda line: print(line, file=sys.stderr, flush=True))
    videos = []
    for spec in specs:
        info = probe(paths[spec])
        videos.append(Video(paths[spec], {"resolution": spec.resolution, "codec": spec.codec, "GOP": str(spec.gop),
                                          "Mbit/s": info["Mbit/s"]}))
    return videos


def folder_videos(folder: Path) -> list[Video]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not files:
        raise SystemExit(f"no video files under {folder}")
    videos = []
    for path in files:
        try:
            label = probe(path)
        except Exception as exc:  # listed with the backends' own errors below
            label = {"resolution": "?", "codec": f"unreadable ({type(exc).__name__})", "GOP": "?", "Mbit/s": "?"}
        videos.append(Video(path, {"file": str(path.relative_to(folder)), **label}))
    return videos


# --- timing ----------------------------------------------------------------------------------------------------
def decode_once(path: Path, view: ViewConfig, decoder, threads: int) -> tuple[float, float, torch.Tensor]:
    """Wall and process-CPU seconds to open ``path`` and decode ``view`` (as a DataLoader worker does)."""
    wall, cpu = time.perf_counter(), time.process_time()
    clip = load_clip_frames(str(path), view, decoder=decoder, threads=threads)
    return time.perf_counter() - wall, time.process_time() - cpu, clip.frames


def measure(video: Video, sampling: str, backends: list[str], repeats: int, threads: int) -> Row:
    view = SAMPLINGS[sampling]
    row = Row(video, sampling)
    decoders = {b: resolve_decoder(b) for b in backends}
    reference = None
    for backend in backends:  # warm-up (page cache, lazy imports), and do the backends agree?
        try:
            frames = decode_once(video.path, view, decoders[backend], threads)[2]
        except Exception as exc:
            text = str(exc).split("(tried ", 1)[-1]
            row.errors[backend] = (text[:-1] if text.endswith(")") else text)[:100]
            continue
        if reference is None:
            reference = frames
        elif frames.shape != reference.shape:
            row.disagree[backend] = float("inf")
        else:
            per_frame = (frames.float() - reference.float()).abs().flatten(2).mean(dim=2)  # [clips, T]
            row.disagree[backend] = float(per_frame.max())
    working = [b for b in backends if b not in row.errors]
    wall: dict[str, list[float]] = {b: [] for b in working}
    cpu: dict[str, list[float]] = {b: [] for b in working}
    for r in range(repeats):
        for k in range(len(working)):  # a rotating order: each backend goes first as often as the others
            backend = working[(r + k) % len(working)]
            w, c, _ = decode_once(video.path, view, decoders[backend], threads)
            wall[backend].append(w)
            cpu[backend].append(c)
    row.seconds = {b: float(np.median(wall[b])) for b in working}
    row.cpu_seconds = {b: float(np.median(cpu[b])) for b in working}
    return row


# --- the report ------------------------------------------------------------------------------------------------
def ratio(row: Row, a: str, b: str) -> str:
    """``a``'s rate over ``b``'s, or a dash when either failed or returned other frames than the first backend."""
    ra, rb = row.rate(a), row.rate(b)
    return f"{ra / rb:.2f}" if ra and rb and not (row.wrong(a) or row.wrong(b)) else "–"


def ratio_pairs(backends: list[str]) -> list[tuple[str, str]]:
    return [(b, "decord") for b in backends if b != "decord"] if "decord" in backends else []


def print_header(columns: list[str], backends: list[str]) -> None:
    head = [*columns, "sampling", *(f"{b} clips/s" for b in backends),
            *(f"{a}/{b}" for a, b in ratio_pairs(backends))]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))


def print_row(row: Row, backends: list[str]) -> None:
    """One table line: a rate marked "wrong frames" is not comparable; a ratio below 1 is in bold."""
    cells = [*row.video.label.values(), SAMPLING_LABELS[row.sampling]]
    for b in backends:
        rate = row.rate(b)
        cells.append("fails" if not rate else f"{rate:.1f} (wrong frames)" if row.wrong(b) else f"{rate:.1f}")
    for a, b in ratio_pairs(backends):
        text = ratio(row, a, b)
        cells.append(f"**{text}**" if text != "–" and float(text) < 1 else text)
    print("| " + " | ".join(cells) + " |", flush=True)


def print_summary(rows: list[Row], backends: list[str]) -> None:
    print()
    for a, b in ratio_pairs(backends):
        ratios = np.array([float(text) for text in (ratio(r, a, b) for r in rows) if text != "–"])
        if len(ratios):
            print(f"- {a}/{b}: geometric mean {np.exp(np.log(ratios).mean()):.2f}, range {ratios.min():.2f}-"
                  f"{ratios.max():.2f}; {a} slower in {int((ratios < 1).sum())} of {len(ratios)} comparable rows")
    for b in backends:
        # Wall vs CPU: a backend that decodes on extra threads would look faster than its cost to a busy machine.
        spread = [r.cpu_seconds[b] / r.seconds[b] for r in rows if b in r.seconds and r.seconds[b] > 0]
        if spread and np.median(spread) > 1.1:
            print(f"- {b} uses {np.median(spread):.2f}x its wall time in CPU time (more than one thread busy)")
    failed = {(r.video.path.name, b): e for r in rows for b, e in r.errors.items()}
    for (name, b), e in failed.items():
        print(f"- {b} cannot read {name}: {e}")
    wrong = [(r, b, d) for r in rows for b, d in r.disagree.items() if r.wrong(b)]
    for r, b, d in wrong:
        print(f"- {b} returns other frames than {backends[0]} for {r.video.path.name} ({r.sampling}): up to {d:.1f} "
              "grey levels of mean |difference| in a frame; its rate there is left out of the ratios")
    if not wrong:
        print(f"- every backend returned the same frames as {backends[0]} (no frame's mean |difference| above "
              f"{AGREE_LEVELS:g} grey levels)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", choices=("pyav", "decord", "torchcodec"),
                        help="default: every installed one")
    parser.add_argument("--videos", type=Path, help="benchmark the video files under this folder instead")
    parser.add_argument("--cache", type=Path, default=corpus.DEFAULT_CACHE, help="where the corpus is kept")
    parser.add_argument("--resolutions", nargs="+", choices=tuple(corpus.RESOLUTIONS))
    parser.add_argument("--gops", nargs="+", type=int, default=list(corpus.GOPS))
    parser.add_argument("--codecs", nargs="+", choices=tuple(corpus.ENCODERS), default=list(corpus.DEFAULT_ROWS))
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each generated clip")
    parser.add_argument("--sampling", nargs="+", choices=tuple(SAMPLINGS), default=list(SAMPLINGS))
    parser.add_argument("--repeats", type=int, default=5, help="timed decodes per backend and row (median)")
    parser.add_argument("--threads", type=int, default=1, help="codec threads (1 = a DataLoader worker's)")
    parser.add_argument("--quick", action="store_true", help="360p and 720p, GOP 60, H.264 only")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.resolutions, args.gops, args.codecs = ["360p", "720p"], [60], ["h264"]

    backends = args.backends or list(installed_backends())
    missing = [b for b in backends if b not in installed_backends()]
    if missing:
        raise SystemExit(f"not installed here: {', '.join(missing)}")
    torch.set_num_threads(1)  # as in a DataLoader worker
    start = time.perf_counter()
    videos = folder_videos(args.videos) if args.videos else corpus_videos(args)
    made = time.perf_counter() - start

    source = f"{len(videos)} files under {args.videos}" if args.videos else \
        f"{len(videos)} generated {args.seconds:g} s clips at 30 fps"
    print(f"# decode-only throughput (cpu x{os.cpu_count()}, {source}, {args.threads} codec thread(s), "
          f"one clip at a time, median of {args.repeats})\n")
    print_header(list(videos[0].label), backends)
    rows = []
    for video in videos:  # per file, both samplings, before the next file
        for sampling in args.sampling:
            rows.append(measure(video, sampling, backends, args.repeats, args.threads))
            print_row(rows[-1], backends)
    print_summary(rows, backends)
    took = time.perf_counter() - start
    print(f"\n({took - made:.0f} s measuring, {made:.0f} s preparing the videos; load average at the end "
          f"{os.getloadavg()[1]:.1f} over 5 min on {os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps({
            "backends": backends, "threads": args.threads, "repeats": args.repeats,
            "rows": [{"file": str(r.video.path), **r.video.label, "sampling": r.sampling,
                      "seconds_per_clip": r.seconds, "cpu_seconds_per_clip": r.cpu_seconds, "errors": r.errors,
                      "worst_frame_mean_abs_difference": r.disagree} for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
