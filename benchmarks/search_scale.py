"""Benchmark: exact scan vs approximate search (FAISS, vidprompt.index.ann) as a library grows to millions of rows.

    python benchmarks/search_scale.py --sizes 100000 1000000          # ~5 min on 2 cores (HNSW at 1M: 3 of them)
    python benchmarks/search_scale.py --sizes 5000000 --kinds ivf      # ~4 min on 2 cores, 5 GB of disk
    python benchmarks/search_scale.py --sizes 1000000 --nprobe 8 16 32 --workdir /data/scale   # keep the tables

For each size: clustered unit embeddings (tests/clustered.py: topics, clusters of varied size and tightness),
written as a float16 memory-mapped .npy like an index's table, and held-out queries drawn from the same
clusters (not rows of the table). The truth is a batched float32 scan of every row for every query.

* exact: ``exact_top_k([Table(memmap)], q, 10)``, timed on ``--exact-queries`` of the queries (it reads every
  row: seconds a query at 5M) and checked against the truth.
* ivf / hnsw: an ``ApproximateIndex`` trained on a random sample, rows added in batches, saved, then loaded
  memory-mapped in a fresh process; a query is the index's ``--candidates`` best ids, their float16 rows read
  from the memmap (in file order) and re-ranked exactly; recall@10 of that against the truth.

Latency is per query, warm (3 queries first; the table is in the page cache, as it is just written), median and
95th percentile. Memory is anonymous RSS (``RssAnon`` in /proc/self/status, sampled every 1-10 ms): pages
of memory-mapped files (the table, a mapped index) are page cache, shared and evictable, and are not counted.
"held" is what opening the index added; "search" the peak over the query loop above what was held before it.
Each search runs in a fresh process. Prints Markdown; ``--json`` also writes the figures. Timings are those of
whatever else the machine runs at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from clustered import clustered_embeddings  # noqa: E402

K = 10


def rss_anon_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakAnon:
    """The highest RssAnon while the block runs (a thread samples it; numpy, torch and FAISS drop the GIL)."""

    def __init__(self, every: float = 0.001):
        self.every = every

    def __enter__(self):
        self.start = self.peak = rss_anon_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, rss_anon_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon_mb())


def make_table(workdir: Path, rows: int, dim: int, queries: int, seed: int) -> tuple[Path, Path, float]:
    """The table and queries of this size (reused when ``--workdir`` already holds them); generation seconds."""
    table = workdir / f"clustered-{rows}x{dim}-seed{seed}.npy"
    held_out = workdir / f"queries-{rows}x{dim}-seed{seed}-{queries}.npy"
    if table.exists() and held_out.exists():
        return table, held_out, 0.0
    start = time.perf_counter()
    _, q = clustered_embeddings(rows, dim, queries=queries, seed=seed, out=table)
    np.save(held_out, q)
    return table, held_out, time.perf_counter() - start


def truth_top_k(matrix: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65536) -> np.ndarray:
    """Exact top ``k`` row numbers for every query, by score then row: one float32 pass over the table."""
    best_ids = np.zeros((len(queries), 0), np.int64)
    best = np.zeros((len(queries), 0), np.float32)
    for start in range(0, len(matrix), chunk):
        scores = queries @ np.asarray(matrix[start:start + chunk], np.float32).T
        part = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        ids = np.concatenate([best_ids, part + start], axis=1)
        vals = np.concatenate([best, np.take_along_axis(scores, part, axis=1)], axis=1)
        order = np.lexsort((ids, -vals), axis=1)[:, :k]
        best_ids, best = np.take_along_axis(ids, order, axis=1), np.take_along_axis(vals, order, axis=1)
    return best_ids


def _latency(times: list[float]) -> dict:
    ms = np.array(times) * 1000
    return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95))}


# --- workers: each measurement in a fresh process, so RssAnon is its own ---------------------------------------
def work_exact(job: dict) -> dict:
    from vidprompt.index.ann import recall_at_k
    from vidprompt.index.scan import Table, exact_top_k

    matrix = np.load(job["table"], mmap_mode="r")
    queries = np.load(job["queries"])[:job["count"]]
    truth = np.load(job["truth"])[:job["count"]]
    for q in queries[:3]:
        exact_top_k([Table(matrix)], q, K)
    found, times = [], []
    with PeakAnon() as memory:
        for q in queries:
            start = time.perf_counter()
            ids, _ = exact_top_k([Table(matrix)], q, K)
            times.append(time.perf_counter() - start)
            found.append(ids)
    return {**_latency(times), "held_mb": 0.0, "search_mb": memory.peak - memory.start,
            "recall": recall_at_k(found, truth, K), "queries": len(queries)}


def work_build(job: dict) -> dict:
    from vidprompt.index import ann

    matrix = np.load(job["table"], mmap_mode="r")
    rows = len(matrix)
    rng = np.random.default_rng(0)
    take = np.sort(rng.choice(rows, ann.sample_size(job["kind"], rows), replace=False))
    with PeakAnon() as memory:
        start = time.perf_counter()
        index = ann.ApproximateIndex.train(matrix[take], job["kind"], rows_expected=rows)
        trained = time.perf_counter()
        for first in range(0, rows, 100_000):
            block = matrix[first:first + 100_000]
            index.add(np.arange(first, first + len(block)), block)
        added = time.perf_counter()
    index.save(job["index"])
    return {"train_s": trained - start, "add_s": added - trained, "build_s": added - start,
            "build_peak_mb": memory.peak - memory.start, "disk_mb": os.path.getsize(job["index"]) / 2 ** 20,
            "params": index.params, "sample_rows": len(take)}


def work_ann(job: dict) -> dict:
    from vidprompt.index import ann

    matrix = np.load(job["table"], mmap_mode="r")
    queries = np.load(job["queries"])
    truth = np.load(job["truth"])
    before = rss_anon_mb()
    index = ann.ApproximateIndex.load(job["index"])  # memory-mapped
    held = rss_anon_mb() - before
    for name, value in job["overrides"].items():  # index.nprobe = 32, index.ef_search = 256
        setattr(index, name, value)

    def query(q):
        start = time.perf_counter()
        ids, _ = index.search(q, job["candidates"])
        searched = time.perf_counter()
        order = np.argsort(ids)  # ids are row numbers here: read the memmap in file order
        top = ann.rerank(ids[order], matrix[ids[order]], q, K)[0]
        return top, searched - start, time.perf_counter() - start

    for q in queries[:3]:
        query(q)
    found, times, index_times = [], [], []
    with PeakAnon(every=0.01) as memory:  # queries take about a millisecond: sample less often
        for q in queries:
            top, searched, total = query(q)
            found.append(top)
            index_times.append(searched)
            times.append(total)
    return {**_latency(times), "index_median_ms": float(np.median(index_times)) * 1000, "held_mb": held,
            "search_mb": memory.peak - memory.start, "recall": ann.recall_at_k(found, truth, K),
            "params": index.params, "queries": len(queries)}


def work_index_build(job: dict) -> dict:
    """The table as an index folder (vidprompt's segment writer), then its approximate index as a build keeps
    it (``--ann`` setting ``job["setting"]``)."""
    from synthetic_index import write_index

    from vidprompt.index.build import update_shortlist

    matrix = np.load(job["table"], mmap_mode="r")
    start = time.perf_counter()
    meta = write_index(Path(job["index"]), matrix)
    written = time.perf_counter()
    with PeakAnon() as memory:
        meta = update_shortlist(Path(job["index"]), meta, job["setting"])
    record = meta["ann"]["index"]
    ann_file = Path(job["index"]) / "ann" / record["file"]
    return {"write_s": written - start, "build_s": time.perf_counter() - written, "build_peak_mb": memory.peak -
            memory.start, "disk_mb": os.path.getsize(ann_file) / 2 ** 20, "kind": record["kind"]}


def work_index_search(job: dict) -> dict:
    """``VideoIndex.search_embedding`` end to end (opening the folder, shortlist, exact re-scoring, hits)."""
    from vidprompt.index import VideoIndex
    from vidprompt.index.ann import recall_at_k

    queries = np.load(job["queries"])[:job["count"]]
    truth = np.load(job["truth"])[:job["count"]]
    before = rss_anon_mb()
    index = VideoIndex(job["index"])
    held = rss_anon_mb() - before
    for q in queries[:3]:
        index.search_embedding(q, K, exact=job["exact"])
    found, times = [], []
    with PeakAnon(every=0.01) as memory:
        for q in queries:
            start = time.perf_counter()
            hits = index.search_embedding(q, K, exact=job["exact"])
            times.append(time.perf_counter() - start)
            found.append([hit.row for hit in hits])  # one segment, number 0: the global id is the row
    return {**_latency(times), "held_mb": held, "search_mb": memory.peak - memory.start,
            "recall": recall_at_k(found, truth, K), "queries": len(queries), "how": index.last_search}


WORKERS = {"exact": work_exact, "build": work_build, "ann": work_ann, "index_build": work_index_build,
           "index_search": work_index_search}


def run_worker(job: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{job['job']} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def through_index(workdir: Path, table: Path, common: dict, rows: int, args, size: dict) -> list[str]:
    from vidprompt.index.shortlist import AUTO_KIND

    folder = workdir / f"index-{table.stem}"
    shutil.rmtree(folder, ignore_errors=True)
    build = run_worker({"job": "index_build", **common, "index": str(folder), "setting": AUTO_KIND})
    lines = []
    for exact in (True, False):
        run = run_worker({"job": "index_search", **common, "index": str(folder), "exact": exact,
                          "count": min(args.exact_queries, args.queries) if exact else args.queries})
        size["index_exact" if exact else "index_approximate"] = {"build": build, "run": run}
        built = "-" if exact else (f"{build['build_s']:.0f} (peak +{build['build_peak_mb']:,.0f} MB; writing the "
                                   f"segment {build['write_s']:.0f})")
        method = f"VideoIndex, {'exact (--exact)' if exact else run['how']} ({run['queries']} queries)"
        lines.append(row(rows, method, built, "-" if exact else f"{build['disk_mb']:,.0f}", run))
        print(lines[-1], flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    return lines


# --- the table ------------------------------------------------------------------------------------------------
def describe(params: dict, candidates: int) -> str:
    if "nlist" in params:
        return f"nlist {params['nlist']}, nprobe {params['nprobe']}, {params['codes']}, {candidates} cand."
    return f"M {params['m']}, efSearch {max(params['ef_search'], candidates)}, {params['codes']}, {candidates} cand."


def row(rows: int, method: str, build: str, disk: str, run: dict) -> str:
    return (f"| {rows:,} | {method} | {build} | {disk} | {run['median_ms']:.1f} | {run['p95_ms']:.1f} | "
            f"{run['held_mb']:.0f} | {run['search_mb']:.0f} | {run['recall']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200, help="held-out queries (approximate search, truth)")
    parser.add_argument("--exact-queries", type=int, default=20, help="of those, timed on the exact scan")
    parser.add_argument("--kinds", nargs="+", choices=("ivf", "hnsw", "index"), default=["ivf", "hnsw"],
                        help="index: through an index folder and VideoIndex.search_embedding, exact and with the "
                             "approximate index a build keeps (--ann auto's kind)")
    parser.add_argument("--candidates", type=int, default=None, help="re-ranked per query (default: ann's)")
    parser.add_argument("--nprobe", type=int, nargs="+", help="IVF lists scanned; default: the index's own")
    parser.add_argument("--ef-search", type=int, nargs="+", help="HNSW search breadth; default: the index's")
    parser.add_argument("--hnsw-max-rows", type=int, default=1_000_000,
                        help="skip HNSW above this size (building it runs at a few thousand rows/s on 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep (and reuse) tables and indexes here; default: a "
                        "temporary folder, deleted at the end")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(WORKERS[job["job"]](job)))
        return

    from vidprompt.index import ann

    candidates = args.candidates or ann.CANDIDATES
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="search-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    figures: dict = {"cpus": os.cpu_count(), "dim": args.dim, "queries": args.queries, "candidates": candidates,
                     "sizes": {}}
    lines = []
    hnsw_rate = None  # rows/s of the last HNSW build, to say how long a skipped one would take
    began = time.perf_counter()
    print(f"# exact vs approximate search ({args.dim}-d fp16 clustered rows, memory-mapped, top-{K}, "
          f"{os.cpu_count()} CPUs)\n", flush=True)
    try:
        for rows in args.sizes:
            size: dict = {}
            figures["sizes"][rows] = size
            table, queries, made = make_table(workdir, rows, args.dim, args.queries, args.seed)
            start = time.perf_counter()
            truth_path = workdir / f"truth-{table.stem}-{args.queries}.npy"
            np.save(truth_path, truth_top_k(np.load(table, mmap_mode="r"), np.load(queries), K))
            size["generate_s"], size["truth_s"] = made, time.perf_counter() - start
            print(f"{rows:,} rows: generated in {made:.0f} s, truth in {size['truth_s']:.0f} s "
                  f"({os.path.getsize(table) / 2 ** 20:,.0f} MB table)", flush=True)
            common = {"table": str(table), "queries": str(queries), "truth": str(truth_path)}
            exact = run_worker({"job": "exact", **common, "count": min(args.exact_queries, args.queries)})
            size["exact"] = exact
            lines.append(row(rows, f"exact scan ({exact['queries']} queries)", "-",
                             f"{os.path.getsize(table) / 2 ** 20:,.0f} (table)", exact))
            print(lines[-1], flush=True)
            for kind in args.kinds:
                if kind == "index":
                    lines.extend(through_index(workdir, table, common, rows, args, size))
                    continue
                if kind == "hnsw" and rows > args.hnsw_max_rows:
                    guess = (f"; ~{rows / hnsw_rate / 60:.0f} min to build at {hnsw_rate:,.0f} rows/s"
                             if hnsw_rate else "")
                    size["hnsw"] = {"skipped": f"above --hnsw-max-rows {args.hnsw_max_rows:,}{guess}"}
                    lines.append(f"| {rows:,} | hnsw | skipped: {size['hnsw']['skipped']} | | | | | | |")
                    print(lines[-1], flush=True)
                    continue
                index_path = workdir / f"{kind}-{table.stem}.faiss"
                build = run_worker({"job": "build", **common, "kind": kind, "index": str(index_path)})
                if kind == "hnsw":
                    hnsw_rate = rows / build["build_s"]
                sweep = (args.nprobe if kind == "ivf" else args.ef_search) or [None]
                runs = []
                for value in sweep:
                    overrides = {} if value is None else {"nprobe" if kind == "ivf" else "ef_search": value}
                    run = run_worker({"job": "ann", **common, "index": str(index_path), "candidates": candidates,
                                      "overrides": overrides})
                    runs.append(run)
                    built = (f"{build['build_s']:.0f} (train {build['train_s']:.0f}; peak +"
                             f"{build['build_peak_mb']:,.0f} MB)")
                    lines.append(row(rows, f"{kind}: {describe(run['params'], candidates)} (index "
                                     f"{run['index_median_ms']:.2f} ms)", built, f"{build['disk_mb']:,.0f}", run))
                    print(lines[-1], flush=True)
                size[kind] = {"build": build, "runs": runs}
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n| rows | method | build (s) | on disk (MB) | median (ms) | p95 (ms) | RssAnon held (MB) | "
          f"RssAnon search (MB) | recall@{K} |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    print(f"\n{args.queries} held-out queries ({args.exact_queries} for the exact scan); approximate = the "
          f"index's {candidates} candidates re-ranked exactly from the float16 rows; "
          f"total {time.perf_counter() - began:.0f} s.")
    figures["total_s"] = time.perf_counter() - began
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
