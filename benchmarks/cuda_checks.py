"""CUDA path checks (run where a GPU is available): the same results on GPU as on CPU, AMP training steps.

    python benchmarks/cuda_checks.py

Prints one line per check with the measured difference; exits 1 if a check fails.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from media import moving_square, write_video  # noqa: E402

TINY = str(ROOT / "tests" / "data" / "vp-tiny.json")


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 1
    import vidprompt
    from vidprompt.config import load_config
    from vidprompt.training import train

    print("device:", torch.cuda.get_device_name())
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = [str(write_video(tmp / "data" / name / f"{i}.mp4", moving_square(d, n=40, size=64, square=24)))
                 for name, d in (("moving right", "right"), ("moving left", "left")) for i in range(6)]
        labels = ["moving right", "moving left", "a red ball"]
        for model in (TINY, "ViT-B-32"):
            cpu = vidprompt.load_classifier(model, "none", device="cpu", num_workers=0).classify(clips, labels)
            for precision, tol in (("fp32", 1e-3), ("fp16", 2e-2), ("bf16", 5e-2)):
                gpu = vidprompt.load_classifier(model, "none", device="cuda", precision=precision,
                                                num_workers=2).classify(clips, labels)
                diff = max(float((a.probabilities - b.probabilities).abs().max()) for a, b in zip(cpu, gpu))
                ok = diff <= tol
                failures += not ok
                print(f"classify {Path(model).stem} cuda {precision}: max |p_gpu - p_cpu| = {diff:.2e} "
                      f"({'ok' if ok else 'FAIL'}, tol {tol})")
        for method, extra in (("promptclip", {"temporal_heads": 4}), ("aim", {"grad_checkpointing": True})):
            for precision in ("fp16", "bf16"):
                cfg = load_config(None, None, method=method, data=str(tmp / "data"), val_fraction=0.0,
                                  model=TINY, pretrained="none", epochs=2, batch_size=4, device="cuda",
                                  precision=precision, out=str(tmp / f"run_{method}_{precision}"), **extra)
                torch.cuda.reset_peak_memory_stats()
                summary = train(cfg, progress=False)
                loss = summary["history"][-1]["train_loss"]
                ok = loss == loss  # not NaN
                failures += not ok
                print(f"train {method} cuda {precision}: 2 epochs, final loss {loss:.4f}, peak GPU memory "
                      f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB ({'ok' if ok else 'FAIL'})")
                clf = vidprompt.load_classifier(checkpoint=str(tmp / f"run_{method}_{precision}" /
                                                               "last.safetensors"), device="cuda")
                result = clf.classify(clips[:2], ["sliding right", "sliding left"])
                print(f"  classify --checkpoint on cuda: {[r.predictions[0].label for r in result]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
