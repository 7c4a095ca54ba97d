"""Kinetics-400/600/700: the official CSV (``label,youtube_id,time_start,time_end,split``) plus clip files.

Downloaded clips are named ``{youtube_id}_{start:06d}_{end:06d}.<ext>``, flat or in class folders whose
names vary between copies (spaces, underscores, ``hurling_-sport-``). Folder names are therefore not
trusted: clips are found by their 11-character YouTube id, read from the front of the file name because
the id itself may contain ``_`` and ``-``. Clips that could not be downloaded (a few percent of any copy)
are listed in ``missing`` rather than failing the run.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..fileio import read_text_file
from ..labels import label_key
from .base import VideoDataset, as_path, located_samples, make_dataset
from .files import index_videos
from .matching import LabelMatcher

YOUTUBE_ID_LENGTH = 11


def clip_stem(youtube_id: str, time_start: int, time_end: int) -> str:
    """The file stem a Kinetics clip is saved under by the usual download scripts."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def load_kinetics(annotations: str | Path, root: str | Path, label_list: Sequence[str] | None = None,
                  name: str | None = None) -> VideoDataset:
    """Clips of one Kinetics CSV (train, validate, ...) found under ``root``.

    ``label_list`` (e.g. the built-in ``k400`` set) fixes the indices; without one the CSV's class names,
    sorted case-insensitively, are used (the official Kinetics order is alphabetical). The test CSVs
    carry no labels and are refused. Missing clips are reported as their ``{id}_{start}_{end}`` stems.
    """
    csv_path = as_path(annotations, "Kinetics annotations", folder=False)
    root = as_path(root, "video root", folder=True)
    name = name or csv_path.stem
    rows = _read_rows(csv_path)

    if label_list is None:
        by_key: dict[str, str] = {}
        for label in sorted({row[1] for row in rows}, key=lambda s: (s.casefold(), s)):
            by_key.setdefault(label_key(label), label)
        label_list = list(by_key.values())
    matcher = LabelMatcher(label_list)
    index_of = matcher.require((row[1] for row in rows), where=str(csv_path))

    videos = index_videos(root, key=lambda p: p.stem[:YOUTUBE_ID_LENGTH])
    rows_per_id = Counter(row[2] for row in rows)
    id_of = {clip_stem(youtube_id, start, end): youtube_id for _, _, youtube_id, start, end in rows}

    def find(stem: str, label: str):
        youtube_id = id_of[stem]
        return _pick(videos.get(youtube_id, []), stem, label, only_clip_of_its_id=rows_per_id[youtube_id] == 1)

    entries = [(clip_stem(youtube_id, start, end), label) for _, label, youtube_id, start, end in rows]
    samples, missing = located_samples(entries, find, index_of, matcher.labels)
    return make_dataset(name, matcher.labels, samples, missing, source=str(csv_path))


def _pick(candidates: list[Path], stem: str, label: str, only_clip_of_its_id: bool) -> Path | None:
    """One file for a clip: the exact ``{id}_{start}_{end}`` name; else, when the CSV has no other clip of
    this YouTube id (so the file cannot be another clip of it), a file named otherwise (``{id}.mp4``), the
    one in the class's folder first."""
    exact = [p for p in candidates if p.stem == stem]
    if exact:
        return exact[0]
    if not candidates or not only_clip_of_its_id:
        return None
    in_class = [p for p in candidates if label_key(p.parent.name) == label_key(label)]
    return (in_class or candidates)[0]


def _read_rows(csv_path: Path) -> list[tuple[int, str, str, int, int]]:
    """(line, label, youtube id, start s, end s) per row; a usage error for anything unreadable."""
    handle = io.StringIO(read_text_file(csv_path, "Kinetics annotation file"), newline="")
    with handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        if "youtube_id" not in columns:
            raise UsageError(f"{csv_path}: not a Kinetics CSV (expected the header "
                             f"'label,youtube_id,time_start,time_end,split', got {','.join(columns)!r})")
        if "label" not in columns:
            raise UsageError(f"{csv_path}: has no 'label' column, so there is no ground truth to use "
                             "(the Kinetics test CSVs ship without labels; use the validation CSV)")
        rows = []
        for record in reader:
            line_no = reader.line_num
            label = (record.get("label") or "").strip()
            youtube_id = (record.get("youtube_id") or "").strip()
            if not label and not youtube_id:
                continue
            if not label:
                raise UsageError(f"{csv_path}:{line_no}: clip {youtube_id!r} has no label")
            if len(youtube_id) != YOUTUBE_ID_LENGTH:
                raise UsageError(f"{csv_path}:{line_no}: youtube_id {youtube_id!r} is not "
                                 f"{YOUTUBE_ID_LENGTH} characters long")
            try:
                start = int(float(record.get("time_start") or ""))
                end = int(float(record.get("time_end") or ""))
            except ValueError:
                raise UsageError(f"{csv_path}:{line_no}: time_start/time_end must be numbers") from None
            rows.append((line_no, label, youtube_id, start, end))
    if not rows:
        raise UsageError(f"{csv_path}: no clips listed")
    return rows
