"""Labelled video datasets as lists of paths: folders, list files, Kinetics, UCF101, HMDB51, SSv2.

Nothing here decodes video; every parser returns a :class:`VideoDataset` whose labels are matched to a
label list by normalised class name. :func:`load_dataset` is the single entry point.
"""

from .base import VideoDataset, VideoSample
from .files import VIDEO_EXTENSIONS, FileIndex, is_video
from .folder import load_folder
from .hmdb51 import load_hmdb51
from .kinetics import load_kinetics
from .listfile import load_list_file
from .matching import LabelMatcher
from .presets import DATASET_PRESETS, DatasetPreset, get_preset, load_dataset
from .ssv2 import load_ssv2, read_labels_json
from .ucf101 import load_ucf101

__all__ = [
    "DATASET_PRESETS", "DatasetPreset", "FileIndex", "LabelMatcher", "VIDEO_EXTENSIONS",
    "VideoDataset", "VideoSample", "get_preset", "is_video", "load_dataset", "load_folder", "load_hmdb51",
    "load_kinetics", "load_list_file", "load_ssv2", "load_ucf101", "read_labels_json",
]
