"""What AIM costs over the frozen CLIP it adapts: FLOPs, forward time and training memory per view.

Real architecture (ViT-B-16 by default) with random weights (``--pretrained none``): cost does not depend
on the weights. Prints Markdown tables on stdout, progress on stderr.

- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on one forward of ``[1, T, 3, H, W]``. It counts a
  multiply-add as 2 FLOPs; the AIM paper's "606 GFLOPs for 8x3x1 views" is in multiply-adds (MACs), the
  usual convention of vision papers, so both are printed. PyTorch's fused multi-head-attention fast path
  and CPU flash attention are invisible to the counter, so the fast path is switched off while counting
  and CPU ``scaled_dot_product_attention`` gets its formula.
- Forward time: the same frames through AIM and through the frozen CLIP (``encode_frames``), inference
  mode, median of ``--repeats`` after a warm-up, the two models interleaved.
- Training memory: one forward + backward at ``--train-batch`` x T frames, with and without gradient
  checkpointing, each in a fresh subprocess. CPU: peak RSS (``ru_maxrss``) minus the RSS after the model
  is built; CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation after the build.

    python benchmarks/aim_cost.py                      # CPU, ViT-B-16, 8 frames, 3 views
    python benchmarks/aim_cost.py --device cuda --repeats 20
    python benchmarks/aim_cost.py --skip-memory --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from vidprompt.backbone import build_backbone
from vidprompt.methods.aim import AIM
from vidprompt.methods.zeroshot import ZeroShotCLIP

# Yang et al., AIM (ICLR 2023), Table 1: ViT-B/16, 8 frames, 8x3x1 views on Kinetics-400.
PAPER_GFLOPS = {"ViT-B-16": 606, "ViT-L-14": None}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def image_size(backbone) -> tuple[int, int]:
    size = backbone.preprocess_cfg.get("size", 224)
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def build(args, device: torch.device):
    backbone = build_backbone(args.model, args.pretrained).to(device)
    aim = AIM(backbone, num_frames=args.frames, adapter_positions=args.positions).to(device).eval()
    clip = ZeroShotCLIP(backbone).to(device).eval()
    h, w = image_size(backbone)
    frames = torch.randn(1, args.frames, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    return backbone, aim, clip, frames


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- FLOPs -----------------------------------------------------------------------------------------------
def _sdpa_cpu_formula():
    """FlopCounterMode has no formula for CPU flash attention (what SDPA runs on CPU); give it one."""
    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or not hasattr(flop_counter, "sdpa_flop_count"):
        return {}

    def formula(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    return {op: formula}


def count_flops(fn) -> tuple[int, dict[str, int]]:
    from torch.utils.flop_counter import FlopCounterMode

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused MHA kernel hides its matmuls from the counter
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_sdpa_cpu_formula()) as counter:
            fn()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    by_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_op


# --- time --------------------------------------------------------------------------------------------------
def time_forwards(models: dict, frames: torch.Tensor, repeats: int, device: torch.device,
                  precision: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode(), autocast(device, precision):
        for name, model in models.items():  # warm-up (allocator, kernels, thread pools)
            model.encode_frames(frames)
        sync(device)
        for _ in range(repeats):
            for name, model in models.items():
                sync(device)
                start = time.perf_counter()
                model.encode_frames(frames)
                sync(device)
                times[name].append(time.perf_counter() - start)
    return times


# --- memory (subprocess worker) ----------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def memory_worker(args) -> None:
    """One forward + backward in this fresh process; prints one JSON line."""
    device = torch.device(args.device)
    backbone = build_backbone(args.model, args.pretrained).to(device)
    aim = AIM(backbone, num_frames=args.frames, adapter_positions=args.positions,
              grad_checkpointing=bool(args.memory_worker_ckpt)).to(device)
    text = aim.encode_labels(["class one", "class two"])  # no_grad inside; the text side is frozen
    h, w = image_size(backbone)
    frames = torch.randn(args.train_batch, args.frames, 3, h, w,
                         generator=torch.Generator().manual_seed(0)).to(device)
    target = torch.arange(args.train_batch, device=device) % 2
    aim.train()

    def step() -> None:
        with autocast(device, args.precision):
            logits = aim.logits(aim.encode_video(frames), text).float()
            loss = torch.nn.functional.cross_entropy(logits, target)
        loss.backward()

    if device.type == "cuda":  # a warm-up step first: library workspaces and kernel choices are not training
        step()                 # memory (on CPU ru_maxrss cannot be reset, so the one step is a cold one)
        aim.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _rss_bytes()
        base_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    weights = {p.untyped_storage().data_ptr() for p in aim.parameters()}
    saved: dict[int, int] = {}  # activations autograd keeps for backward (weights it saves are not counted)

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    sync(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
        note = ""
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        note = "build peak above training peak" if base_max >= base + peak else ""
    grads = sum(p.grad is not None for p in aim.parameters() if p.requires_grad)
    print(json.dumps({"peak_bytes": peak, "base_bytes": base, "saved_bytes": sum(saved.values()),
                      "seconds": seconds, "grads": grads, "note": note}))


def measure_memory(args, checkpointing: bool) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--model", args.model, "--pretrained", args.pretrained,
           "--frames", str(args.frames), "--positions", args.positions, "--device", args.device,
           "--precision", args.precision, "--train-batch", str(args.train_batch),
           "--memory-worker-ckpt", str(int(checkpointing)), "--memory-worker"]
    # glibc's default, self-raising mmap threshold keeps freed activation buffers in the heap, so peak RSS
    # would track heap fragmentation; a fixed 1 MiB threshold returns big buffers to the OS when freed.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "1048576")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"memory worker failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- main --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-16", help="open_clip model name or config JSON")
    parser.add_argument("--pretrained", default="none", help="weights tag or file ('none': random weights)")
    parser.add_argument("--frames", type=int, default=8, help="frames per view")
    parser.add_argument("--views", type=int, default=3, help="views per video for the per-video figure (8x3x1)")
    parser.add_argument("--positions", default="all", help="AIM adapter positions: all, bottom, top, skip")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                        help="autocast dtype for timing and memory (FLOPs do not depend on it)")
    parser.add_argument("--repeats", type=int, default=None, help="timed forwards per model (default 3 CPU, 20 GPU)")
    parser.add_argument("--train-batch", type=int, default=2, help="videos in the memory measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--skip-time", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker-ckpt", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_worker:
        memory_worker(args)
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU here")
    repeats = args.repeats or (20 if device.type == "cuda" else 3)
    t0 = time.perf_counter()

    log(f"building {args.model} ({args.pretrained}) on {device} ...")
    backbone, aim, clip, frames = build(args, device)
    h, w = image_size(backbone)
    shape = f"[1, {args.frames}, 3, {h}, {w}]"

    log("counting FLOPs ...")
    flops = {"clip": count_flops(lambda: clip.encode_frames(frames)),
             "aim": count_flops(lambda: aim.encode_frames(frames))}
    times = None
    if not args.skip_time:
        log(f"timing {repeats} forwards of each model ...")
        times = time_forwards({"clip": clip, "aim": aim}, frames, repeats, device, args.precision)
    memory = {}
    if not args.skip_memory:
        for ckpt in (False, True):
            log(f"training memory, gradient checkpointing {'on' if ckpt else 'off'} (fresh process) ...")
            memory[ckpt] = measure_memory(args, ckpt)

    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU, {torch.get_num_threads()} threads")
    print(f"## AIM vs frozen CLIP: {args.model} ({args.pretrained} weights), {args.frames} frames x {h}x{w}, "
          f"adapters: {args.positions}\n")
    print(f"Device: {where}; torch {torch.__version__}; precision {args.precision} (timing, memory).\n")

    g = 1e9
    clip_f, aim_f = flops["clip"][0], flops["aim"][0]
    print(f"### FLOPs per view (one forward of {shape}; FlopCounterMode counts 1 multiply-add = 2 FLOPs)\n")
    print("| | frozen CLIP | AIM | AIM / CLIP |")
    print("|---|---|---|---|")
    print(f"| GFLOPs per view (FlopCounterMode, raw) | {clip_f / g:.1f} | {aim_f / g:.1f} | {aim_f / clip_f:.2f} |")
    print(f"| GMACs per view (raw / 2) | {clip_f / 2 / g:.1f} | {aim_f / 2 / g:.1f} | |")
    print(f"| x{args.views} views, raw GFLOPs | {clip_f * args.views / g:.0f} | {aim_f * args.views / g:.0f} | |")
    print(f"| x{args.views} views, GMACs (raw / 2) | {clip_f * args.views / 2 / g:.0f} "
          f"| {aim_f * args.views / 2 / g:.0f} | |")
    paper = PAPER_GFLOPS.get(args.model)
    if paper and args.frames == 8 and args.views == 3 and args.positions == "all":
        raw, macs = aim_f * 3 / g, aim_f * 3 / 2 / g
        match = "raw / 2 (multiply-adds)" if abs(macs - paper) < abs(raw - paper) else "raw FLOPs"
        print(f"| paper, AIM {args.model} 8x3x1 | | {paper} | |")
        print(f"\nThe paper's {paper} GFLOPs matches {match}: ours {macs:.0f} GMACs, "
              f"{100 * (macs - paper) / paper:+.1f} %.")
    ops = ", ".join(f"{k.replace('aten.', '')} {v / g:.1f}" for k, v in sorted(flops["aim"][1].items(),
                                                                             key=lambda kv: -kv[1]))
    print(f"AIM's raw GFLOPs by op: {ops}. Norms, softmax and activations are not counted (as in the paper).\n")

    if times is not None:
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"### Forward time per view ({shape}, inference mode, median of {repeats})\n")
        print("| | frozen CLIP | AIM | AIM / CLIP |")
        print("|---|---|---|---|")
        print(f"| ms per view | {med['clip'] * 1e3:.1f} | {med['aim'] * 1e3:.1f} | {med['aim'] / med['clip']:.2f} |")
        print(f"| min .. max ms | {min(times['clip']) * 1e3:.1f} .. {max(times['clip']) * 1e3:.1f} "
              f"| {min(times['aim']) * 1e3:.1f} .. {max(times['aim']) * 1e3:.1f} | |")
        print(f"| effective GFLOP/s (raw) | {clip_f / med['clip'] / g:.0f} | {aim_f / med['aim'] / g:.0f} | |")
        print(f"\nFLOP ratio {aim_f / clip_f:.2f} vs time ratio {med['aim'] / med['clip']:.2f}.\n")

    if memory:
        what = "peak RSS - RSS after build" if device.type == "cpu" else "max_memory_allocated - allocated after build"
        print(f"### Training memory: one forward + backward, batch {args.train_batch} x {args.frames} frames "
              f"({what})\n")
        print("| gradient checkpointing | peak extra memory | activations saved for backward | step time "
              "| trained tensors with grads |")
        print("|---|---|---|---|---|")
        for ckpt, m in memory.items():
            note = f" ({m['note']})" if m.get("note") else ""
            print(f"| {'on' if ckpt else 'off'} | {m['peak_bytes'] / 2**20:,.0f} MiB{note} "
                  f"| {m['saved_bytes'] / 2**20:,.0f} MiB | {m['seconds']:.1f} s | {m['grads']} |")
        off, on = memory[False]["peak_bytes"], memory[True]["peak_bytes"]
        if on > 0:
            print(f"\nPeak memory without / with checkpointing: {off / on:.1f}x; step time with / without: "
                  f"{memory[True]['seconds'] / memory[False]['seconds']:.2f}x "
                  f"({'after a warm-up step' if device.type == 'cuda' else 'one cold step each'}).")
        print(f"Model resident before the step: {memory[False]['base_bytes'] / 2**20:,.0f} MiB. 'Activations saved "
              "for backward': storages packed by torch.autograd.graph.saved_tensors_hooks, frozen weights excluded "
              "(with checkpointing: the blocks' inputs).")
        if device.type == "cpu":
            print("CPU runs use MALLOC_MMAP_THRESHOLD_=1048576 so freed buffers leave the RSS; page faults on "
                  "fresh mappings make these step times slower than normal training steps.")
    log(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
