"""Named datasets and :func:`load_dataset`, the one front door used by ``eval`` and ``train-prompts``.

A preset bundles what a user would otherwise have to get right by hand: the built-in label set (official
index order), the annotation parser, and default test views.

Default views (frames x temporal clips x spatial crops, see DESIGN section 2):

- Kinetics, UCF101, HMDB51: 8 frames, segment sampling, 3 clips x 1 centre crop (24 frames per video).
  Segment sampling spans the whole clip, which suits the short UCF101/HMDB51 videos and is how the
  zero-shot and PromptCLIP features are taken; the 3 clips (shifted offsets inside each segment) follow
  the view count of AIM's 8x3x1 protocol at under a third of PromptCLIP's 16x5x1 (80 frames) cost.
- SSv2: 8 frames, segment sampling, 1 clip x 3 crops. Its clips are short (about 4 s) and the class is
  the motion across the whole clip, so one set of segments covers it; three crops keep objects near the
  frame edges in view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UsageError
from ..labels import load_label_set
from ..video import ViewConfig
from .base import VideoDataset, as_path
from .folder import load_folder
from .hmdb51 import load_hmdb51
from .kinetics import load_kinetics
from .listfile import load_list_file
from .ssv2 import load_ssv2
from .ucf101 import load_ucf101


@dataclass(frozen=True)
class Request:
    """The arguments of :func:`load_dataset` that a preset's loader may use."""

    root: Path
    labels: list[str]
    annotations: str | Path | None
    split: int
    subset: str
    splits_dir: str | Path | None
    labels_json: str | Path | None


@dataclass(frozen=True)
class DatasetPreset:
    name: str
    label_set: str  # built-in label set (vidprompt.labels.load_label_set)
    loader: Callable[[str, Request], VideoDataset]
    views: ViewConfig  # default test views
    uses: tuple[str, ...]  # optional arguments this preset accepts, for clear errors on the others
    needs: str  # what the user must give besides root, for the error message


def _kinetics(preset: str, req: Request) -> VideoDataset:
    if req.annotations is None:
        raise UsageError(f"{preset}: give annotations = the Kinetics CSV of the subset to load "
                         "(label,youtube_id,time_start,time_end,split), e.g. validate.csv")
    return load_kinetics(req.annotations, req.root, label_list=req.labels,
                         name=f"{preset} {Path(req.annotations).stem}")


def _ucf101(preset: str, req: Request) -> VideoDataset:
    return load_ucf101(req.root, splits_dir=req.splits_dir, split=req.split, subset=req.subset,
                       label_list=req.labels)


def _hmdb51(preset: str, req: Request) -> VideoDataset:
    return load_hmdb51(req.root, splits_dir=req.splits_dir, split=req.split, subset=req.subset,
                       label_list=req.labels)


def _ssv2(preset: str, req: Request) -> VideoDataset:
    if req.annotations is None:
        raise UsageError(f"{preset}: give annotations = the SSv2 JSON of the subset to load "
                         "(train.json or validation.json); labels_json (labels.json) is optional")
    return load_ssv2(req.annotations, req.root, labels_json=req.labels_json, label_list=req.labels)


_SEGMENT_3x1 = ViewConfig(frames=8, sampling="segment", clips=3, crops=1)
_KINETICS_NEEDS = "annotations (the Kinetics CSV)"
DATASET_PRESETS: dict[str, DatasetPreset] = {
    "k400": DatasetPreset("k400", "k400", _kinetics, _SEGMENT_3x1, ("annotations",), _KINETICS_NEEDS),
    "k600": DatasetPreset("k600", "k600", _kinetics, _SEGMENT_3x1, ("annotations",), _KINETICS_NEEDS),
    "k700": DatasetPreset("k700", "k700", _kinetics, _SEGMENT_3x1, ("annotations",), _KINETICS_NEEDS),
    "ucf101": DatasetPreset("ucf101", "ucf101", _ucf101, _SEGMENT_3x1, ("splits_dir",),
                            "the official split files (classInd.txt, trainlist0N.txt, testlist0N.txt)"),
    "hmdb51": DatasetPreset("hmdb51", "hmdb51", _hmdb51, _SEGMENT_3x1, ("splits_dir",),
                            "the official split files (<class>_test_splitN.txt)"),
    "ssv2": DatasetPreset("ssv2", "ssv2", _ssv2, ViewConfig(frames=8, sampling="segment", clips=1, crops=3),
                          ("annotations", "labels_json"), "annotations (train.json or validation.json)"),
}


def get_preset(name: str) -> DatasetPreset:
    key = name.strip().lower()
    if key not in DATASET_PRESETS:
        raise UsageError(f"unknown dataset '{name}' (choose from: {', '.join(DATASET_PRESETS)})")
    return DATASET_PRESETS[key]


def load_dataset(name: str | None = None, root: str | Path | None = None,
                 annotations: str | Path | None = None, split: int = 1, subset: str = "test",
                 splits_dir: str | Path | None = None, labels_json: str | Path | None = None,
                 data: str | Path | None = None, list_file: str | Path | None = None,
                 label_list: Sequence[str] | None = None) -> VideoDataset:
    """Load labelled videos from exactly one source:

    - ``data``: a folder per class (``name``, if given, only supplies the label set);
    - ``list_file`` (+ ``root``, default the list file's folder): mmaction ``path index`` or CSV
      ``path,label`` (``name``, if given, only supplies the label set);
    - ``name`` (a :data:`DATASET_PRESETS` key) + ``root`` (the videos) + that dataset's annotations:
      ``annotations`` for Kinetics (CSV) and SSv2 (JSON, with optional ``labels_json``), ``splits_dir``,
      ``split`` (1-3) and ``subset`` (train/test) for UCF101 and HMDB51.

    ``label_list`` overrides the preset's built-in label set; ground truth is always matched to the label
    list by normalised class name.
    """
    preset = get_preset(name) if name is not None else None
    if label_list is not None:
        labels = list(label_list)
    else:
        labels = load_label_set(preset.label_set) if preset is not None else None

    if data is not None and list_file is not None:
        raise UsageError("give either a class-folder dataset (data) or a list file (list_file), not both")
    if data is not None or list_file is not None:
        extras = [arg for arg, value in (("annotations", annotations), ("splits_dir", splits_dir),
                                         ("labels_json", labels_json)) if value is not None]
        if data is not None and root is not None:
            extras.insert(0, "root")
        if extras:
            what = "a class-folder dataset (data)" if data is not None else "a list file"
            raise UsageError(f"{', '.join(extras)} cannot be used with {what}")
        if data is not None:
            return load_folder(data, label_list=labels, name=name)
        return load_list_file(list_file, root=root, label_list=labels, name=name)

    if preset is None:
        raise UsageError("nothing to load: give data (a folder with one subfolder per class), list_file "
                         f"(a list of 'path label' lines), or a dataset name ({', '.join(DATASET_PRESETS)}) "
                         "with root (the video folder)")
    if root is None:
        raise UsageError(f"{preset.name}: give root (the folder with the videos) and {preset.needs}")
    for arg, value in (("annotations", annotations), ("splits_dir", splits_dir), ("labels_json", labels_json)):
        if value is not None and arg not in preset.uses:
            raise UsageError(f"{preset.name} does not use {arg} (it needs {preset.needs})")
    request = Request(root=as_path(root, f"{preset.name} video root", folder=True), labels=labels,
                      annotations=annotations, split=split, subset=subset, splits_dir=splits_dir,
                      labels_json=labels_json)
    return preset.loader(preset.name, request)
