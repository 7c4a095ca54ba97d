"""Something-Something v2: ``labels.json`` plus ``train.json``/``validation.json``, videos ``<id>.webm``.

Each annotation has a ``template`` such as ``"Putting [something] onto [something]"``; with the brackets
removed it is the class name used by ``labels.json`` and by the built-in ``ssv2`` set. The ``label``
field is the template filled in for that one video ("Putting a pen onto a book") and is not a class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..fileio import read_text_file
from ..labels import load_label_set
from .base import VideoDataset, as_path, located_samples, make_dataset
from .files import index_videos
from .matching import LabelMatcher


def template_class(template: str) -> str:
    """``"Putting [something] onto [something]"`` -> ``"Putting something onto something"``."""
    return template.replace("[", "").replace("]", "")


def read_labels_json(path: str | Path) -> list[str]:
    """``labels.json`` ({"name": "index"}) -> class names in index order."""
    path = as_path(path, "SSv2 labels.json", folder=False)
    data = _read_json(path)
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{path}: expected a JSON object {{\"class name\": \"index\"}}")
    try:
        ordered = sorted(data.items(), key=lambda item: int(item[1]))
    except (TypeError, ValueError):
        raise UsageError(f"{path}: every value must be a class index such as \"0\"") from None
    indices = [int(index) for _, index in ordered]
    if indices != list(range(len(indices))):
        raise UsageError(f"{path}: class indices must be 0..{len(indices) - 1}, each once")
    return [label for label, _ in ordered]


def load_ssv2(annotations: str | Path, root: str | Path, labels_json: str | Path | None = None,
              label_list: Sequence[str] | None = None, name: str | None = None) -> VideoDataset:
    """Videos of one SSv2 annotation file found under ``root`` by id (any video extension).

    Class = template without brackets, checked against ``labels_json`` when given, then matched to
    ``label_list`` by normalised name. ``label_list`` defaults to ``labels_json``'s order, else the
    built-in ``ssv2`` set. Missing videos are reported by id.
    """
    ann_path = as_path(annotations, "SSv2 annotations", folder=False)
    root = as_path(root, "SSv2 video root", folder=True)
    name = name or f"ssv2 {ann_path.stem}"
    official = read_labels_json(labels_json) if labels_json is not None else None
    if label_list is None:
        label_list = official if official is not None else load_label_set("ssv2")
    matcher = LabelMatcher(label_list)

    items = _read_json(ann_path)
    if not isinstance(items, list):
        raise UsageError(f"{ann_path}: expected a JSON list of {{\"id\", \"template\", ...}} objects")
    entries = []  # (video id, class name)
    for position, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item:
            raise UsageError(f"{ann_path}: entry {position} has no 'id'")
        if "template" not in item:
            raise UsageError(f"{ann_path}: entry {position} (id {item['id']}) has no 'template', so there is "
                             "no ground truth (the SSv2 test file ships without labels; use validation.json)")
        entries.append((str(item["id"]).strip(), template_class(str(item["template"]))))
    if not entries:
        raise UsageError(f"{ann_path}: no videos listed")

    if official is not None:
        LabelMatcher(official, source=f"labels.json ({labels_json})").require(
            (cls for _, cls in entries), where=str(ann_path))
    index_of = matcher.require((cls for _, cls in entries), where=str(ann_path))

    videos = index_videos(root, key=lambda p: p.stem)
    samples, missing = located_samples(entries, lambda video_id, _: (videos.get(video_id) or [None])[0], index_of,
                                       matcher.labels)
    return make_dataset(name, matcher.labels, samples, missing, source=str(ann_path))


def _read_json(path: Path):
    text = read_text_file(path, "SSv2 annotation file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None
