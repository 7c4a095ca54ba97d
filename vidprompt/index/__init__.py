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
| ``build`` | what changed since the last build, embedding it in resumable chunks (``IndexBuild``) |
| ``search`` | ranking by cosine (``VideoIndex``) and the classifier matching an index's model |

Commit: a build writes its work to ``pending/``, one atomic chunk file per few batches, so a killed build
resumes from its chunks. At the end the new arrays and manifest are written beside the old ones and swapped
in by a small journal (``commit.json``) that a later open finishes if the swap itself was interrupted, so
the folder is always one consistent index. Two builds of one folder at once are refused (``.build.lock``),
and a search opening the index waits out a swap in progress (``.commit.lock``); both are ``flock`` locks,
which the kernel drops when a process dies.
"""

from .build import IndexBuild, IndexReport, build_index
from .search import Hit, VideoIndex, classifier_for
from .store import (BUILD_LOCK, COMMIT_LOCK, EMBEDDINGS, FORMAT, FORMAT_VERSION, JOURNAL, MANIFEST, META, PENDING,
                    WINDOW_TIMES, WINDOWS, DamagedIndex, claim_index, describe_model, discard_index, model_difference,
                    model_record, open_for_update, read_meta)

__all__ = [
    "IndexBuild", "IndexReport", "build_index", "Hit", "VideoIndex", "classifier_for", "BUILD_LOCK", "COMMIT_LOCK",
    "EMBEDDINGS", "FORMAT", "FORMAT_VERSION", "JOURNAL", "MANIFEST", "META", "PENDING", "WINDOW_TIMES", "WINDOWS",
    "DamagedIndex", "claim_index", "describe_model", "discard_index", "model_difference", "model_record",
    "open_for_update", "read_meta",
]
