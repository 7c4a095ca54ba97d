"""List files: mmaction-style ``path label_index`` lines, or CSV ``path,label``.

Two formats because users arrive with both: mmaction2 list files number classes (so they need the label
list the numbers index into), while a hand-written CSV usually names the class. Class names contain
commas, apostrophes and parentheses, so the CSV is read with the ``csv`` module and may quote fields.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..fileio import read_text_file
from ..labels import label_key
from ..video import is_url
from .base import VideoDataset, as_path, located_samples, make_dataset
from .files import FileIndex
from .matching import LabelMatcher

# (line number, path as written, label as written)
Row = tuple[int, str, str]


def load_list_file(list_file: str | Path, root: str | Path | None = None,
                   label_list: Sequence[str] | None = None, name: str | None = None) -> VideoDataset:
    """Videos listed in ``list_file``, paths relative to ``root`` (default: the list file's folder), or
    http(s) URLs, read over the network as they are.

    Format: a ``.csv`` file, or any file whose first entry contains a comma and does not end in an integer,
    is CSV (an optional ``path,label`` header line; the label is a class name, or an index into
    ``label_list`` when one is given). Otherwise each line is ``path label_index`` separated by
    whitespace; the path may contain spaces, the index is the last field. Blank lines and ``#`` lines are
    skipped. Listed videos that are not on disk are collected in ``missing``.
    """
    list_file = as_path(list_file, "list file", folder=False)
    root = as_path(root, "video root", folder=True) if root is not None else list_file.parent
    name = name or list_file.stem
    text = read_text_file(list_file, "list file")

    if _is_csv(list_file, text):
        rows = _csv_rows(text, list_file)
    else:
        rows = _whitespace_rows(text, list_file)
    if not rows:
        raise UsageError(f"list file {list_file} has no entries")

    classes, index_of = _label_indices(rows, label_list, list_file)
    files = FileIndex(root)
    samples, missing = located_samples(((path_text, label) for _, path_text, label in rows),
                                       lambda text, _: text if is_url(text) else files.find(text), index_of, classes)
    return make_dataset(name, classes, samples, missing, source=str(list_file))


def _is_csv(list_file: Path, text: str) -> bool:
    if list_file.suffix.lower() == ".csv":
        return True
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            last = line.split()[-1]
            return "," in line and not _is_int(last)
    return False


def _whitespace_rows(text: str, list_file: Path) -> list[Row]:
    rows: list[Row] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not _is_int(parts[1]):
            raise UsageError(f"{list_file}:{line_no}: expected 'path label_index' (or a CSV of 'path,label' "
                             f"for class names), got {line!r}")
        rows.append((line_no, parts[0], parts[1]))
    return rows


def _csv_rows(text: str, list_file: Path) -> list[Row]:
    rows: list[Row] = []
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    for record in reader:
        line_no = reader.line_num
        fields = [field.strip() for field in record]
        if not any(fields) or fields[0].startswith("#"):
            continue
        if not rows and [f.casefold() for f in fields] == ["path", "label"]:
            continue  # optional header
        if len(fields) != 2 or not fields[0] or not fields[1]:
            raise UsageError(f"{list_file}:{line_no}: expected 'path,label' (quote labels that contain "
                             f"commas), got {record!r}")
        rows.append((line_no, fields[0], fields[1]))
    return rows


def _label_indices(rows: list[Row], label_list: Sequence[str] | None,
                   list_file: Path) -> tuple[list[str], dict[str, int]]:
    """The class list and a map from each label as written to its index in that list."""
    labels: dict[str, int] = {}  # each label as written -> the first line it is on
    for line_no, _, label in rows:
        labels.setdefault(label, line_no)
    if label_list is None:
        numeric = [label for label in labels if _is_int(label)]
        if numeric:
            raise UsageError(f"{list_file}:{labels[numeric[0]]}: label {numeric[0]!r} is an index; give the "
                             "class list it points into (--labels-file or --label-set)")
        # Names that normalise alike are one class; classes sorted case-insensitively.
        by_key: dict[str, str] = {}
        for label in sorted(labels, key=lambda s: (s.casefold(), s)):
            by_key.setdefault(label_key(label), label)
        classes = list(by_key.values())
        position = {label_key(c): i for i, c in enumerate(classes)}
        return classes, {label: position[label_key(label)] for label in labels}

    matcher = LabelMatcher(label_list)
    index_of: dict[str, int] = {}
    names = []
    for label, line_no in labels.items():
        if _is_int(label):
            index = int(label)
            if not 0 <= index < len(matcher):
                raise UsageError(f"{list_file}:{line_no}: label index {index} is outside the label list "
                                 f"(0..{len(matcher) - 1}; indices are 0-based)")
            index_of[label] = index
        else:
            names.append(label)
    index_of.update(matcher.require(names, where=str(list_file)))
    return matcher.labels, index_of


def _is_int(text: str) -> bool:
    return text.isascii() and text.isdigit()
