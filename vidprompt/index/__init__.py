"""A searchable index of a video library: one CLIP-space embedding per clip (and optionally per window), on
disk, memory-mapped, updated incrementally.

    clf = load_classifier(model="ViT-B-16", pretrained="openai")
    build_index("videos.vpindex", expand_inputs(["~/videos"]), clf, window=4.0)   # rerun: only what changed
    index = VideoIndex("videos.vpindex")
    clf = index.classifier()                     # the model the index was built with
    for hit in index.search(clf, "someone flipping a pancake", top_k=10):
        print(hit.path, hit.start, hit.end, hit.score)

| module | job |
|---|---|
| ``store`` | the folder's files (layout in its docstring), reading them back checked, pending chunks, the commit |
| ``segment`` | one immutable segment: its files, reading one entry alone, writing a new one |
| ``build`` | what changed since the last build, embedding it in resumable chunks (``IndexBuild``), compaction |
| ``scan`` | exact nearest rows over tables of any size, a bounded chunk at a time |
| ``ann`` | approximate nearest rows with FAISS (optional: ``vidprompt[ann]``): train, add, save, search |
| ``shortlist`` | the approximate index a folder keeps: when a build trains, extends or drops it; how search uses it |
| ``search`` | ranking by cosine (``VideoIndex``) and the classifier matching an index's model |

Commit: a build writes its work to ``pending/``, one atomic chunk file per few batches, so a killed build
resumes from its chunks. At the end it appends one segment (an immutable folder of the videos it embedded),
writes new lists of the entries it replaced or dropped, and replaces ``index.json``, which names the segments:
that one rename is the commit, so the folder is always one consistent index, and an update costs what it
embedded, not the size of the library. Too many segments or deletions are merged by a compaction (automatic,
or ``vidprompt index --compact``). Two builds of one folder at once are refused (``.build.lock``), and a build
deletes the files its commit replaced only while no search is opening the index (``.commit.lock``); both are
``flock`` locks, which the kernel drops when a process dies.

Large libraries: past 250,000 searched rows (with FAISS installed), a build also keeps an approximate index
that shortlists rows for search; what it shortlists is re-scored exactly, and rows it does not cover yet are
scanned exactly, so it changes how fast a search is, never what a score is (:mod:`.shortlist`).
"""

from .build import IndexBuild, IndexReport, build_index, compact_index, update_shortlist
from .search import Hit, StoredVideo, VideoIndex, classifier_for
from .store import (BUILD_LOCK, COMMIT_LOCK, FORMAT, FORMAT_VERSION, META, PENDING, SEGMENTS, DamagedIndex,
                    claim_index, describe_model, discard_index, model_difference, model_record, open_for_update,
                    read_meta)

__all__ = [
    "IndexBuild", "IndexReport", "build_index", "compact_index", "update_shortlist", "Hit", "StoredVideo", "VideoIndex",
    "classifier_for", "BUILD_LOCK", "COMMIT_LOCK", "FORMAT", "FORMAT_VERSION", "META", "PENDING", "SEGMENTS",
    "DamagedIndex", "claim_index", "describe_model", "discard_index", "model_difference", "model_record",
    "open_for_update", "read_meta",
]
