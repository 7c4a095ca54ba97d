"""Benchmark: the peak memory of each command is set by the model and the work, not by option values a user
might mistype or by how many labels they give.

Each row runs the real CLI (``python -m vidprompt ...``) in a child process and reads its peak RSS (itself
and its decoding workers) from ``os.wait4``; the rows of one table ran side by side in one run. Real
architectures with random weights (no downloads), videos generated here.

    python benchmarks/memory_bounds.py                       # ViT-B-16 text tower up to 2,048 labels (~10 min)
    python benchmarks/memory_bounds.py --labels 20000        # the 20,000-label target (hours on 2 CPU cores;
                                                             #   minutes on a GPU with --device cuda)

Prints Markdown tables. Targets: 20,000 labels within 2 GB over the model's own footprint (the 2-label
row); every other row equal to its sensible twin.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TINY = str(ROOT / "tests" / "data" / "vp-tiny.json")


def peak(args: list[str], device: str) -> tuple[float, float, int]:
    """(peak RSS in MB, seconds, exit code) of ``vidprompt ARGS``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vidprompt", *args, "--device", device],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"vidprompt {' '.join(args)} failed:\n{err}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start, proc.returncode


def labels_file(folder: Path, count: int) -> str:
    path = folder / f"labels-{count}.txt"
    path.write_text("".join(f"activity number {i}\n" for i in range(count)))
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-16", help="backbone for the label rows (random weights)")
    parser.add_argument("--labels", type=int, nargs="*", default=[2, 256, 2048],
                        help="label counts for the label rows")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from media import frame_index_video, solid_video, write_video

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["VIDPROMPT_CACHE_DIR"] = str(tmp / "cache")  # no text cache: every row encodes its labels
        clips = [str(write_video(tmp / f"clip{i}.mp4", solid_video((30 * i, 90, 150), n=24))) for i in range(8)]
        long = str(write_video(tmp / "long.mp4", frame_index_video(250, h=32, w=32), fps=25))  # 10 s

        print(f"### Labels: classify 1 clip with {args.model} (random weights), one template, on {args.device}\n")
        print("| labels | peak RSS (MB) | over the 2-label run (MB) | seconds |")
        print("|---:|---:|---:|---:|")
        base = None
        for count in sorted(set([2, *args.labels])):
            mb, seconds, _ = peak(["classify", clips[0], "--labels-file", labels_file(tmp, count), "-t",
                                   "a video of {}.", "--model", args.model, "--pretrained", "none", "-q", "-j", "0"],
                                  args.device)
            base = mb if base is None else base
            print(f"| {count:,} | {mb:.0f} | {mb - base:+.0f} | {seconds:.1f} |")

        tiny = ["--model", TINY, "--pretrained", "none", "-q"]
        rows = [
            ("classify --batch-size", "4", "100000",
             lambda v: ["classify", *clips, "--labels", "a,b", "--batch-size", v, "-j", "2", *tiny]),
            ("classify --num-workers", "2", "10000",
             lambda v: ["classify", *clips, "--labels", "a,b", "--num-workers", v, *tiny]),
            ("classify --top-k", "5", "1000000000",
             lambda v: ["classify", *clips, "--labels", "a,b", "--top-k", v, "-j", "0", *tiny]),
            ("localize --stride (s)", "1", "0.000001",
             lambda v: ["localize", long, "--labels", "a,b", "--stride", v, "--window", "1", "-j", "0", *tiny]),
            ("localize --window (s)", "2", "1e12",
             lambda v: ["localize", long, "--labels", "a,b", "--window", v, "--stride", v, "-j", "0", *tiny]),
            ("index --batch-size", "4", "100000",
             lambda v: ["index", *clips, "--out", str(tmp / f"index-{v}"), "--batch-size", v, "-j", "0", *tiny]),
        ]
        print("\n### Option values: a sensible value and a mistyped one, tiny model, peak RSS (MB)\n")
        print("| option | value | peak | mistyped | peak | ratio |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, sensible, mistyped, command in rows:
            a, _, _ = peak(command(sensible), args.device)
            b, _, _ = peak(command(mistyped), args.device)
            print(f"| `{name}` | {sensible} | {a:.0f} | {mistyped} | {b:.0f} | {b / a:.2f}x |")


if __name__ == "__main__":
    main()
