"""HMDB51 with its official split files, ``<class>_test_split<N>.txt``.

Each split file lists every video of one class with a tag: 1 = train, 2 = test, 0 = in neither subset of
that split (each split trains on 70 and tests on 30 videos per class and leaves the rest out). The class
comes from the split file's name; videos live at ``root/<class>/<file>``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..fileio import read_text_file
from ..labels import load_label_set
from .base import VideoDataset, as_path, check_choice, located_samples, make_dataset
from .files import FileIndex
from .matching import LabelMatcher

SPLITS = (1, 2, 3)
SUBSETS = ("train", "test")
SPLITS_FOLDER = "testTrainMulti_7030_splits"
TAGS = {"train": "1", "test": "2"}  # "0": not used in this split
_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d+)\.txt$")


def split_files(folder: Path, split: int) -> dict[str, Path]:
    """{class name: split file} for one split in ``folder``."""
    found = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = _SPLIT_FILE.match(path.name)
        if match and int(match["split"]) == split:
            found[match["cls"]] = path
    return found


def load_hmdb51(root: str | Path, splits_dir: str | Path | None = None, split: int = 1,
                subset: str = "test", label_list: Sequence[str] | None = None,
                name: str | None = None) -> VideoDataset:
    """The videos tagged for ``subset`` in official split ``split`` (1-3).

    ``splits_dir`` defaults to ``root/testTrainMulti_7030_splits``, ``root`` or the splits folder beside
    ``root``; ``label_list`` to the built-in ``hmdb51`` set (readable names in the usual sorted order).
    """
    split = check_choice("HMDB51 split", split, SPLITS)
    subset = check_choice("HMDB51 subset", subset, SUBSETS)
    root = as_path(root, "HMDB51 video root", folder=True)
    if splits_dir is not None:
        candidates = [Path(splits_dir).expanduser()]
    else:
        candidates = [root / SPLITS_FOLDER, root, root.parent / SPLITS_FOLDER]
    per_class: dict[str, Path] = {}
    for folder in candidates:
        per_class = split_files(folder, split)
        if per_class:
            break
    if not per_class:
        raise UsageError(f"HMDB51: no '<class>_test_split{split}.txt' files in "
                         f"{', '.join(str(c) for c in candidates)}; give the folder of the official split "
                         f"files ({SPLITS_FOLDER}) as splits_dir")

    matcher = LabelMatcher(load_label_set("hmdb51") if label_list is None else label_list)
    index_of = matcher.require(per_class, where=f"HMDB51 split files in {folder}")
    entries = []  # (path under the root, class)
    for cls, split_file in per_class.items():
        for line_no, line in enumerate(read_text_file(split_file, "HMDB51 split file").splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise UsageError(f"{split_file}:{line_no}: expected '<video> <tag 0/1/2>', got {line!r}")
            if parts[1] == TAGS[subset]:
                entries.append((f"{cls}/{parts[0]}", cls))
    files = FileIndex(root)
    samples, missing = located_samples(entries, lambda written, _: files.find(written), index_of,
                                       matcher.labels)
    samples.sort(key=lambda s: (s.index, str(s.path)))
    return make_dataset(name or f"hmdb51 split {split} {subset}", matcher.labels, samples, missing,
                        source=f"split {split} files in {folder}")
