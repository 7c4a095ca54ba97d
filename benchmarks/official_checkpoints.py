"""Benchmark: what a published checkpoint costs, used directly (``--checkpoint official.pth``, converted in memory
on every run) and after ``vidprompt convert`` (a safetensors file of the trained tensors only).

Official-format files of the real sizes are written here with the published architectures and random weights
(ViT-B/16: an AIM Kinetics-400 model, 8 frames, 400-class head, with the optimizer state mmcv saves; a
PromptCLIP model with the whole CLIP inside, 16 frames, 1 temporal layer, as the official README trains it).
Each row runs the real CLI in a child process; peak RSS from ``os.wait4``; rows of one table ran side by side.

    python benchmarks/official_checkpoints.py            # about 3 minutes on 2 CPU cores

Prints a Markdown table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
MODEL = ["--model", "ViT-B-16", "--pretrained", "none"]


def run(args: list) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of ``vidprompt ARGS``; a failure stops the benchmark."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vidprompt", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"vidprompt {' '.join(map(str, args))} failed:\n{err}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    from media import frame_index_video, write_video
    from official_files import aim_state, promptclip_state, write_aim_file, write_promptclip_file

    from vidprompt.backbone import build_backbone

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backbone = build_backbone("ViT-B-16", "none", quick_gelu=True)
        aim = write_aim_file(tmp / "aim_k400_b16.pth", aim_state(backbone, frames=8, classes=400), frames=8,
                             classes=400)
        promptclip = write_promptclip_file(tmp / "pc" / "model_best.pth.tar",
                                           promptclip_state(backbone, frames=16, layers=1),
                                           command={"prefix": 16, "postfix": 16, "tfm_heads": 8})
        del backbone
        clip = write_video(tmp / "clip.mp4", frame_index_video(64, h=240, w=320))
        rows = []
        for name, source in (("AIM ViT-B/16 K400 8x3x1", aim), ("PromptCLIP ViT-B/16 16 frames", promptclip)):
            out = tmp / f"{source.stem}.safetensors"
            converted = run(["convert", source, "--out", out, *MODEL])
            labels = [] if name.startswith("AIM") else ["--labels", "surfing,cooking"]
            direct = run(["classify", clip, "--checkpoint", source, *MODEL, *labels, "--clips", "1", "-q",
                          "--device", "cpu"])
            after = run(["classify", clip, "--checkpoint", out, "--pretrained", "none", *labels, "--clips", "1",
                         "-q", "--device", "cpu"])
            rows.append((name, source.stat().st_size / 1e6, out.stat().st_size / 1e6, converted, direct, after))
    print("| model | official file | converted file | `convert` | classify with the official file | "
          "classify with the converted file |")
    print("|---|---|---|---|---|---|")
    for name, src_mb, out_mb, conv, direct, after in rows:
        print(f"| {name} | {src_mb:.0f} MB | {out_mb:.1f} MB | {conv[0]:.1f} s, {conv[1]:.0f} MB | "
              f"{direct[0]:.1f} s, {direct[1]:.0f} MB | {after[0]:.1f} s, {after[1]:.0f} MB |")


if __name__ == "__main__":
    main()
