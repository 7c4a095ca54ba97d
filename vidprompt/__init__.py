"""vidprompt: zero-shot and open-vocabulary video classification with frozen CLIP models.

    >>> import vidprompt
    >>> clf = vidprompt.load_classifier(model="ViT-B-16", pretrained="openai")
    >>> results = clf.classify(["clip.mp4"], labels=["surfing", "cooking"])

Everything the README shows is importable from here: classify (``load_classifier``), train (``load_config``,
``train``), measure (``load_dataset``, ``evaluate``), search a library (``build_index``, ``VideoIndex``), find
moments (``localize``) and read or convert checkpoints. Heavy modules (torch, open_clip) load on first use, so
``import vidprompt`` and the CLI's ``--help`` stay fast; the ``TYPE_CHECKING`` block lets editors and type
checkers see the same names.
"""

from typing import TYPE_CHECKING

from ._version import __version__
from .errors import OptionValueError, UsageError, VideoError, VidpromptError

if TYPE_CHECKING:
    from .backbone import build_backbone
    from .checkpoint import convert_checkpoint, load_checkpoint, read_checkpoint_info
    from .classifier import VideoClassifier, VideoResult, load_classifier
    from .config import TrainConfig, load_config
    from .datasets import load_dataset
    from .evaluation import evaluate
    from .index import VideoIndex, build_index
    from .localization import Localization, localize
    from .official import ConvertOptions
    from .training import train
    from .video import ViewConfig

_LAZY = {
    "load_classifier": "vidprompt.classifier",
    "VideoClassifier": "vidprompt.classifier",
    "VideoResult": "vidprompt.classifier",
    "ViewConfig": "vidprompt.video",
    "build_backbone": "vidprompt.backbone",
    "TrainConfig": "vidprompt.config",
    "load_config": "vidprompt.config",
    "train": "vidprompt.training",
    "load_dataset": "vidprompt.datasets",
    "evaluate": "vidprompt.evaluation",
    "VideoIndex": "vidprompt.index",
    "build_index": "vidprompt.index",
    "localize": "vidprompt.localization",
    "Localization": "vidprompt.localization",
    "load_checkpoint": "vidprompt.checkpoint",
    "read_checkpoint_info": "vidprompt.checkpoint",
    "convert_checkpoint": "vidprompt.checkpoint",
    "ConvertOptions": "vidprompt.official",
}

__all__ = [  # the names of _LAZY, spelled out so tools see them
    "__version__", "VidpromptError", "UsageError", "OptionValueError", "VideoError",
    "load_classifier", "VideoClassifier", "VideoResult", "ViewConfig", "build_backbone", "TrainConfig", "load_config",
    "train", "load_dataset", "evaluate", "VideoIndex", "build_index", "localize", "Localization", "load_checkpoint",
    "read_checkpoint_info", "convert_checkpoint", "ConvertOptions",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'vidprompt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
