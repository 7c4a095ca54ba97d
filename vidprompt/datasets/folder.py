"""Folder per class: ``root/<class>/**/<video>``, the layout people build by hand.

Without a label list the folder names become the classes (made readable for the text encoder), sorted
case-insensitively. With a label list, folders are matched to it by normalised name, so ``ApplyEyeMakeup``
finds ``apply eye makeup`` and ground-truth indices are the list's, not the folders' sorted order.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..labels import label_key, readable_name
from .base import VideoDataset, VideoSample, as_path, make_dataset
from .files import is_video, walk_videos
from .matching import LabelMatcher

log = logging.getLogger(__name__)


def load_folder(root: str | Path, label_list: Sequence[str] | None = None,
                name: str | None = None) -> VideoDataset:
    """Every video under each class folder of ``root`` (searched recursively).

    A class folder without videos is dropped with a warning (it is usually an unfinished download, and a
    class with no examples would only distort per-class metrics); videos lying directly in ``root`` are
    ignored with a warning because they have no class.
    """
    root = as_path(root, "dataset folder", folder=True)
    name = name or root.name
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: (p.name.casefold(), p.name))
    videos: dict[str, list[Path]] = {}
    empty: list[str] = []
    for folder in folders:
        found = list(walk_videos(folder))
        if found:
            videos[folder.name] = found
        else:
            empty.append(folder.name)
    if empty:
        log.warning("%s: %d class folders without videos were dropped: %s", name, len(empty),
                    ", ".join(empty[:5]) + (" ..." if len(empty) > 5 else ""))
    loose = [p for p in root.iterdir() if p.is_file() and is_video(p)]
    if loose:
        log.warning("%s: %d videos directly in %s have no class folder and were ignored", name, len(loose), root)
    if not videos:
        raise UsageError(f"{name}: no class folders with videos in {root} (expected {root}/<class>/<video>)")

    if label_list is None:
        # Folders whose names normalise alike (HandstandPushups / HandStandPushups) are one class.
        classes: list[str] = []
        index_of_key: dict[str, int] = {}
        folder_index: dict[str, int] = {}
        for folder_name in videos:
            key = label_key(folder_name)
            if key not in index_of_key:
                index_of_key[key] = len(classes)
                classes.append(readable_name(folder_name))
            folder_index[folder_name] = index_of_key[key]
    else:
        matcher = LabelMatcher(label_list)
        folder_index = matcher.require(videos, where=f"class folders in {root}")
        classes = matcher.labels

    samples = [VideoSample(path=path, label=classes[folder_index[folder_name]], index=folder_index[folder_name])
               for folder_name, paths in videos.items() for path in paths]
    samples.sort(key=lambda s: (s.index, str(s.path)))
    return replace(make_dataset(name, classes, samples, [], source=str(root)), empty_folders=empty)
