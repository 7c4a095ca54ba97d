"""UCF101 with its official split files (``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt``).

Train lines carry a 1-based ``classInd`` id, test lines only a path, so the class of a test video comes
from its folder. One class is spelled ``HandstandPushups`` in folders and ``HandStandPushups`` in file
names (and some copies rename the folder too): names are matched by normalised name and paths are
resolved case-insensitively when the exact path is absent.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Sequence

from ..errors import UsageError
from ..fileio import read_text_file
from ..labels import load_label_set
from .base import VideoDataset, as_path, check_choice, located_samples, make_dataset
from .files import FileIndex
from .matching import LabelMatcher

SPLITS = (1, 2, 3)
SUBSETS = ("train", "test")
SPLITS_FOLDER = "ucfTrainTestlist"
_FILE_CLASS = re.compile(r"^v_(?P<cls>.+?)_g\d+_c\d+$")


def find_splits_dir(root: Path, splits_dir: str | Path | None, list_name: str) -> Path:
    """The folder holding ``list_name``: ``splits_dir`` if given, else the usual places near ``root``."""
    if splits_dir is not None:
        candidates = [Path(splits_dir).expanduser()]
    else:
        candidates = [root / SPLITS_FOLDER, root, root.parent / SPLITS_FOLDER]
    for folder in candidates:
        if (folder / list_name).is_file():
            return folder
    raise UsageError(f"UCF101: {list_name} not found in {', '.join(str(c) for c in candidates)}; give the "
                     f"folder of the official split files ({SPLITS_FOLDER}) as splits_dir")


def load_ucf101(root: str | Path, splits_dir: str | Path | None = None, split: int = 1,
                subset: str = "test", label_list: Sequence[str] | None = None,
                name: str | None = None) -> VideoDataset:
    """One official split (1-3) and subset (train/test) of UCF101, labelled with ``label_list``.

    ``label_list`` defaults to the built-in ``ucf101`` set (official ``classInd`` order, readable names).
    """
    split = check_choice("UCF101 split", split, SPLITS)
    subset = check_choice("UCF101 subset", subset, SUBSETS)
    root = as_path(root, "UCF101 video root", folder=True)
    list_name = f"{subset}list{split:02d}.txt"
    folder = find_splits_dir(root, splits_dir, list_name)
    class_ind = _read_class_ind(folder / "classInd.txt")
    matcher = LabelMatcher(load_label_set("ucf101") if label_list is None else label_list)

    entries = []  # (path as written, class name as annotated)
    list_path = folder / list_name
    for line_no, line in enumerate(read_text_file(list_path, "UCF101 list file").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split()
        path_text = parts[0]
        if len(parts) > 1 and class_ind:
            class_id = _int(parts[1], list_path, line_no)
            if class_id not in class_ind:
                raise UsageError(f"{list_path}:{line_no}: class id {class_id} is not in classInd.txt")
            entries.append((path_text, class_ind[class_id]))
        else:
            entries.append((path_text, _class_from_path(path_text, list_path, line_no)))
    if not entries:
        raise UsageError(f"{list_path} lists no videos")

    index_of = matcher.require((cls for _, cls in entries), where=str(list_path))
    files = FileIndex(root)
    samples, missing = located_samples(entries, lambda written, _: files.find(written), index_of,
                                       matcher.labels)
    return make_dataset(name or f"ucf101 split {split} {subset}", matcher.labels, samples, missing,
                        source=str(list_path))


def _read_class_ind(path: Path) -> dict[int, str]:
    """``classInd.txt`` ("1 ApplyEyeMakeup") as {id: name}; empty when the file is absent."""
    if not path.is_file():
        return {}
    classes = {}
    for line_no, line in enumerate(read_text_file(path, "UCF101 class index file").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise UsageError(f"{path}:{line_no}: expected 'id ClassName', got {line.strip()!r}")
        classes[_int(parts[0], path, line_no)] = parts[1]
    return classes


def _class_from_path(path_text: str, list_path: Path, line_no: int) -> str:
    """``ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi`` -> ``ApplyEyeMakeup`` (folder, else file name)."""
    path = PurePosixPath(path_text.replace("\\", "/"))
    if len(path.parts) > 1:
        return path.parts[-2]
    match = _FILE_CLASS.match(path.stem)
    if not match:
        raise UsageError(f"{list_path}:{line_no}: cannot tell the class of {path_text!r}")
    return match["cls"]


def _int(text: str, path: Path, line_no: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{path}:{line_no}: expected an integer, got {text!r}") from None

