"""Check our AIM against the paper's model sizes: total and tunable parameters, no weights needed.

Counts follow the paper (vision side, 400-class linear head, CLIP's projection left out), see
:func:`vidprompt.methods.aim.aim_parameter_counts`. Prints Markdown tables on stdout.

    python benchmarks/aim_params.py
    python benchmarks/aim_params.py --models ViT-B-16 --num-frames 16
"""

from __future__ import annotations

import argparse
import sys
import time

from vidprompt.backbone import build_backbone
from vidprompt.methods.aim import ADAPTER_POSITIONS, AIM, aim_parameter_counts

# Yang et al., AIM (ICLR 2023), Kinetics-400 results: params and tunable params, in millions.
PAPER = {"ViT-B-16": (97, 11), "ViT-L-14": (341, 38)}


def millions(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(PAPER), help="open_clip model names")
    parser.add_argument("--pretrained", default="none", help="weights tag or file ('none': random weights)")
    parser.add_argument("--num-frames", type=int, default=8, help="frames per clip (temporal embedding size)")
    parser.add_argument("--num-classes", type=int, default=400, help="width of the hypothetical linear head")
    parser.add_argument("--positions-model", default="ViT-B-16",
                        help="model for the adapter-position table ('' to skip it)")
    args = parser.parse_args(argv)

    rows, backbones = [], {}
    for name in args.models:
        start = time.perf_counter()
        backbone = backbones[name] = build_backbone(name, args.pretrained)
        counts = aim_parameter_counts(AIM(backbone, num_frames=args.num_frames), args.num_classes)
        print(f"{name}: built in {time.perf_counter() - start:.1f}s", file=sys.stderr)
        paper_total, paper_tunable = (f"{v}M" for v in PAPER[name]) if name in PAPER else ("-", "-")
        rows.append(f"| {name} | {millions(counts['total'])} | {paper_total} | {millions(counts['tunable'])} "
                    f"| {paper_tunable} | {millions(counts['adapters'])} | {millions(counts['head'])} |")
    print(f"AIM parameters ({args.num_frames} frames, {args.num_classes}-class head, without CLIP's projection)\n")
    print("| model | total | paper total | tunable | paper tunable | adapters | head |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))

    if args.positions_model:
        name = args.positions_model
        backbone = backbones.get(name) or build_backbone(name, args.pretrained)
        print(f"\nAdapter positions on {name}\n")
        print("| positions | adapted blocks | adapters | tunable |")
        print("|---|---|---|---|")
        for positions in ADAPTER_POSITIONS:
            model = AIM(backbone, num_frames=args.num_frames, adapter_positions=positions)
            counts = aim_parameter_counts(model, args.num_classes)
            adapted = sum(block.adapted for block in model.blocks)
            print(f"| {positions} | {adapted}/{len(model.blocks)} | {millions(counts['adapters'])} "
                  f"| {millions(counts['tunable'])} |")


if __name__ == "__main__":
    main()
