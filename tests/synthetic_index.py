"""Index folders of given embeddings in the real format (segments written and committed by vidprompt's own
writer), for tests and benchmarks that need more rows than videos can be made for."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidprompt.index.segment import segment_name, write_segment
from vidprompt.index.store import SEGMENTS, commit_segments, read_meta

WINDOW_SECONDS = 2.0


def model_record(dim: int) -> dict:
    return {"method": "zeroshot", "model": "synthetic", "model_source": "synthetic", "pretrained": "none",
            "backbone": "synthetic", "hparams": {}, "trained_tensors": None, "templates": None, "checkpoint": None,
            "embed_dim": dim}


def write_index(root: Path, clips: np.ndarray, windows: np.ndarray | None = None, windows_per_video: int = 0,
                segments: int = 1, first_video: int = 0) -> dict:
    """Commit an index at ``root`` holding ``clips`` [n, D] (one row a video, named ``clipNNNNNNN.mp4`` from
    ``first_video``) and, with ``windows_per_video``, ``windows`` [n * windows_per_video, D], in ``segments``
    segments of about equal size; appended to the index already there, if any. Arrays may be memory maps."""
    root.mkdir(parents=True, exist_ok=True)
    meta = read_meta(root)
    records = list(meta["segments"]) if meta else []
    generation = meta["generation"] + 1 if meta else 0
    dim = clips.shape[1]
    times = None
    if windows_per_video:
        starts = np.tile(np.arange(windows_per_video, dtype=np.float64) * WINDOW_SECONDS, len(clips))
        times = np.stack([starts, starts + WINDOW_SECONDS], axis=1)
    bounds = [int(b) for b in np.linspace(0, len(clips), segments + 1)]
    for first, last in zip(bounds[:-1], bounds[1:]):
        entries, sources = [], []
        for row in range(first, last):
            entry = {"path": f"/videos/clip{first_video + row:07d}.mp4", "size": 1, "mtime": 0.0, "frames": 250,
                     "fps": 25.0, "duration": 10.0, "row": row - first}
            span = None
            if windows_per_video:
                entry["windows"] = [(row - first) * windows_per_video, windows_per_video]
                span = [row * windows_per_video, windows_per_video]
            entries.append(entry)
            sources.append(((clips, windows, times), row, span))
        write_segment(root / SEGMENTS / segment_name(generation), entries, sources, dim, bool(windows_per_video))
        records.append({"number": generation, "dead": None})
        generation += 1
    summary = {"model": model_record(dim),
               "view": {"frames": 8, "sampling": "segment", "stride": 8, "clips": 1, "crops": 1},
               "windows": {"window": WINDOW_SECONDS, "stride": WINDOW_SECONDS} if windows_per_video else None,
               "inputs": None, "segments": records, "generation": generation - 1,
               "ann": (meta or {}).get("ann")}
    meta, opened = commit_segments(root, summary)
    for segment in opened:
        segment.close()
    return meta
