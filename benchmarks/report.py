"""The performance report: runs every benchmark in this folder (or those named with --only) and writes their
Markdown tables, with the machine they ran on, into one file.

    python benchmarks/report.py --out benchmarks/REPORT.md                 # everything, CPU (~40 min on 2 cores)
    python benchmarks/report.py --only eval_scaling index_scaling classify
    python benchmarks/report.py --device cuda --out REPORT-gpu.md          # on a GPU machine: fp16 autocast

Sections: classify vs encoder rate and memory vs clip length and `--help` time (classify_throughput.py),
decoding per backend on a generated 240p-1080p corpus (decode.py), classify vs the limit decoding and the
encoder set together on the CPU (pipeline.py),
PromptCLIP cached epoch vs encoder pass (promptclip_cost.py), AIM parameters (aim_params.py), AIM vs frozen
CLIP cost and training memory (aim_cost.py), search latency (search_latency.py), exact vs approximate search
at 100k and 1M rows (search_scale.py), eval vs classify (eval_overhead.py), peak memory vs label count and
mistyped option values (memory_bounds.py), a published checkpoint used directly vs converted
(official_checkpoints.py), and 1 vs 2 process eval and index builds (measured here with torchrun).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPTS = {  # section -> [script, arguments...]
    "classify": ["classify_throughput.py"],
    "decode": ["decode.py"],
    "pipeline": ["pipeline.py"],
    "promptclip": ["promptclip_cost.py"],
    "aim_params": ["aim_params.py"],
    "aim_cost": ["aim_cost.py"],
    "search": ["search_latency.py"],
    "search_scale": ["search_scale.py", "--sizes", "100000", "1000000", "--kinds", "ivf", "index"],
    "eval_overhead": ["eval_overhead.py"],
    "memory": ["memory_bounds.py"],
    "official": ["official_checkpoints.py"],
}
GPU_FLAGS = {"classify": ["--device", "cuda", "--precision", "fp16", "--skip-memory"],
             "promptclip": ["--device", "cuda"], "aim_cost": ["--device", "cuda", "--precision", "bf16"],
             "search": ["--device", "cuda"],
             "eval_overhead": ["--device", "cuda", "--videos", "128", "--batch-size", "16"],
             "memory": ["--device", "cuda", "--labels", "2", "2048", "20000"]}


def run_script(name: str, device: str) -> str:
    script, *extra = SCRIPTS[name]
    cmd = [sys.executable, str(HERE / script), *extra, *(GPU_FLAGS.get(name, []) if device == "cuda" else [])]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    took = time.perf_counter() - start
    body = out.stdout.strip() if out.returncode == 0 else f"failed (exit {out.returncode}):\n\n    " + \
        "\n    ".join(out.stderr.strip().splitlines()[-5:])
    return f"## {name}\n\n`{' '.join(['python', 'benchmarks/' + SCRIPTS[name][0], *cmd[2:]])}` ({took:.0f} s)\n\n{body}\n"


SCALING = ("eval_scaling", "index_scaling")  # sections measured here, with torchrun


def scaling(section: str, device: str, videos_per_class: int = 12) -> str:
    """Wall time of `vidprompt eval` (eval_scaling) or a first `vidprompt index` (index_scaling) of the same
    generated videos with 1 and 2 processes (torchrun)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from media import moving_square, write_video

    command = section.split("_")[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for c, direction in enumerate(("right", "left", "up", "down")):
            for i in range(videos_per_class):
                write_video(tmp / "data" / f"class {c}" / f"{i}.mp4", moving_square(direction, n=40, size=224,
                                                                                   square=64))
        (tmp / "labels.txt").write_text("".join(f"class {c}\n" for c in range(4)))
        env = {**os.environ, "VIDPROMPT_CACHE_DIR": str(tmp / "cache"), "HF_HUB_OFFLINE": "1"}
        model = ["--model", "ViT-B-32", "--pretrained", "none", "--device", device, "-q"]
        if command == "eval":
            common = ["-m", "vidprompt", "eval", "--data", str(tmp / "data"), "--labels-file",
                      str(tmp / "labels.txt"), *model]
        else:
            common = ["-m", "vidprompt", "index", str(tmp / "data"), *model]
        rows = []
        for procs in (1, 2):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            launcher = [sys.executable] if procs == 1 else [
                sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs),
                "--master-port", str(port)]
            threads = max((os.cpu_count() or 1) // procs, 1)
            start = time.perf_counter()
            out = subprocess.run([*launcher, *common, "--out", str(tmp / f"out{procs}")], capture_output=True,
                                 text=True, env={**env, "OMP_NUM_THREADS": str(threads)})
            took = time.perf_counter() - start
            status = "" if out.returncode == 0 else f" (exit {out.returncode})"
            rows.append((procs, took, status))
    videos = 4 * videos_per_class
    lines = [f"## {section}\n\n`vidprompt {command}`, {videos} videos (224x224), ViT-B-32 random weights, device "
             f"{device}, wall time including start-up\n", "| processes | seconds | videos/s | speed-up |",
             "|---|---|---|---|"]
    for procs, took, status in rows:
        lines.append(f"| {procs} | {took:.1f}{status} | {videos / took:.2f} | {rows[0][1] / took:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=[*SCRIPTS, *SCALING], help="run only these sections")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out", type=Path, help="write the report here (Markdown)")
    args = parser.parse_args()

    import torch

    card = torch.cuda.get_device_name() if args.device == "cuda" else f"{os.cpu_count()} CPU cores"
    parts = [f"# vidprompt performance report\n\nMachine: {platform.machine()}, {card}, Python "
             f"{platform.python_version()}, torch {torch.__version__}.\n"]
    for name in args.only or [*SCRIPTS, *SCALING]:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        parts.append(scaling(name, args.device) if name in SCALING else run_script(name, args.device))
    report = "\n".join(parts)
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
