"""vidprompt: zero-shot and open-vocabulary video classification with frozen CLIP models.

    >>> import vidprompt
    >>> clf = vidprompt.load_classifier(model="ViT-B-16", pretrained="openai")
    >>> results = clf.classify(["clip.mp4"], labels=["surfing", "cooking"])

Heavy modules (torch, open_clip) load on first use, so ``import vidprompt`` and the CLI's ``--help``
stay fast.
"""

from ._version import __version__

_LAZY = {
    "load_classifier": "vidprompt.classifier",
    "VideoClassifier": "vidprompt.classifier",
    "VideoResult": "vidprompt.classifier",
    "ViewConfig": "vidprompt.video",
    "build_backbone": "vidprompt.backbone",
    "VideoIndex": "vidprompt.index",
    "build_index": "vidprompt.index",
    "load_checkpoint": "vidprompt.checkpoint",
    "convert_checkpoint": "vidprompt.checkpoint",
    "ConvertOptions": "vidprompt.official",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidprompt' has no attribute {name!r}")
