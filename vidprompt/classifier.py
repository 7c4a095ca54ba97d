"""The one front door from a model (and later a checkpoint) to ready-to-use video classification.

    clf = load_classifier(model="ViT-B-16", pretrained="openai")
    for result in clf.classify(["a.mp4", "b.mp4"], labels=["surfing", "cooking"]):
        print(result.video, result.predictions[0])

The CLI's ``classify`` and ``eval`` go through :class:`VideoClassifier`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from torch.utils.data import Dataset

from .backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED, build_backbone
from .embedding import Embedded, decoded, embedded
from .errors import out_of_range
from .labels import DEFAULT_TEMPLATES, check_labels, check_templates, label_key, no_labels
from .loader import VideoViews, bounded_batch
from .methods.base import VideoTextModel, view_probabilities
from .runtime import autocast, precision_name, resolve_device, resolve_precision
from .text_cache import TextEmbeddingCache
from .transforms import FramePreprocessor
from .video import ViewConfig, resolve_decoder


IMAGES_PER_FORWARD = 512  # images per model call; bigger batches are split (the results are the same)

log = logging.getLogger("vidprompt")


@dataclass
class Prediction:
    label: str
    score: float


@dataclass
class VideoResult:
    """Result for one input: ranked predictions, or the one-line reason it failed."""

    video: str
    predictions: list[Prediction] = field(default_factory=list)
    error: str | None = None
    probabilities: torch.Tensor | None = field(default=None, repr=False)  # over all labels, view-averaged

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"video": self.video, "error": self.error}
        return {"video": self.video,
                "predictions": [{"label": p.label, "score": round(p.score, 6)} for p in self.predictions]}


class VideoClassifier:
    """A video-text model plus how to feed it: views, device, precision, batching, text-embedding cache.

    ``head_model``: a checkpoint's trained closed-set classifier (a published AIM model's linear head), used
    whenever the labels asked for are its classes; any other labels go to ``model`` through the text encoder.
    """

    def __init__(self, model: VideoTextModel, view: ViewConfig | None = None, *, device: str = "auto",
                 precision: str = "auto", batch_size: int = 4, num_workers: int | None = None,
                 default_labels: Sequence[str] | None = None, text_cache: TextEmbeddingCache | None = None,
                 decoder: str = "auto", head_model: VideoTextModel | None = None):
        if batch_size < 1:
            raise out_of_range("batch_size", batch_size, "at least 1")
        if num_workers is not None and num_workers < 0:
            raise out_of_range("num_workers", num_workers, "0 or more")
        self.device = resolve_device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.decoder = resolve_decoder(decoder, self.device)
        self.model = model.to(self.device).eval()
        self.head_model = head_model.to(self.device).eval() if head_model is not None else None
        self._left_head = False
        self.checkpoint_info = None  # a checkpoint's metadata, when the model came from one
        self.view = view or ViewConfig()
        self.preprocessor = FramePreprocessor(model.backbone.preprocess_cfg, crops=self.view.crops)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.default_labels = list(default_labels) if default_labels else None
        self.text_cache = text_cache if text_cache is not None else TextEmbeddingCache()

    # --- text ---------------------------------------------------------------------------------------------
    def scorer(self, labels: Sequence[str]) -> VideoTextModel:
        """The model that scores ``labels``: the trained closed-set head when they are its classes (in any order
        and spelling: matched by :func:`~vidprompt.labels.label_key`), else the open-vocabulary model, saying
        once that the head was left aside."""
        if self.head_model is None:
            return self.model
        if {label_key(n) for n in labels} == {label_key(n) for n in self.head_model.classes}:
            return self.head_model
        if not self._left_head:
            self._left_head = True
            log.warning("warning: the labels are not the checkpoint's %d trained classes, so they are scored "
                        "with the CLIP text encoder (open vocabulary), not the trained classifier head",
                        len(self.head_model.classes))
        return self.model

    def label_embeddings(self, labels: Sequence[str], model: VideoTextModel | None = None) -> torch.Tensor:
        """Normalised class embeddings ``[C, D]`` on the model's device (computed once per label list);
        ``model``: the one that scores them (default: the open-vocabulary model)."""
        labels = check_labels(labels)
        model = model or self.model
        method_key = model.text_cache_key()
        key = None if method_key is None else \
            f"{self.model.backbone.identity}|{method_key}|{precision_name(self.autocast_dtype)}"

        def compute(chunk: Sequence[str]) -> torch.Tensor:
            with torch.inference_mode(), autocast(self.device, self.autocast_dtype):
                return model.encode_labels(chunk).float()

        return self.text_cache.get_or_compute(key, labels, compute).to(self.device)

    # --- video --------------------------------------------------------------------------------------------
    def encode_views(self, frames: torch.Tensor, model: VideoTextModel | None = None) -> torch.Tensor:
        """uint8 views ``[n, views, T, 3, h, w]`` (as the loader yields them) -> embeddings ``[n, views, D]``
        (of ``model``, default the open-vocabulary model).

        At most :data:`IMAGES_PER_FORWARD` images go through the model at once (whole clips, at least one), so
        the model's memory does not grow with the batch size, frames, clips or crops asked for."""
        model = model or self.model
        n, views, t = frames.shape[:3]
        clips = frames.flatten(0, 1)
        step = max(1, IMAGES_PER_FORWARD // t)
        out = []
        with torch.inference_mode(), autocast(self.device, self.autocast_dtype):
            for start in range(0, clips.shape[0], step):
                x = self.preprocessor.normalize(clips[start:start + step].to(self.device, non_blocking=True))
                out.append(model.encode_video(x).float())
        return torch.cat(out).reshape(n, views, -1)

    def videos_per_batch(self, count: int) -> int:
        """The batch size asked for, bounded by the videos there are and by ``loader.IMAGES_PER_BATCH`` decoded
        images held at once."""
        return bounded_batch(self.batch_size, count, self.view.num_views * self.view.frames)

    def embedded(self, dataset: Dataset, batch_size: int | None = None, num_workers: int | None = None,
                 model: VideoTextModel | None = None, progress: Callable[[int], None] | None = None,
                 ) -> Iterator[list[Embedded]]:
        """The embedding stream of any dataset of views (videos, or the windows of one video): per batch, every
        item in order with its embeddings ``[views, D]`` (of ``model``, default the open-vocabulary model) or
        its error. Default batch size and workers: the classifier's."""
        batch_size = batch_size or self.videos_per_batch(len(dataset))
        workers = self.num_workers if num_workers is None else num_workers
        batches = decoded(dataset, batch_size, workers, pin_memory=self.device.type == "cuda")
        return embedded(batches, lambda frames: self.encode_views(frames, model), progress)

    def video_embeddings(self, paths: Sequence[str], progress: Callable[[int], None] | None = None,
                         model: VideoTextModel | None = None,
                         ) -> Iterator[tuple[int, str, torch.Tensor | None, str | None]]:
        """Yield ``(index, path, embeddings [views, D] or None, error or None)`` in input order."""
        dataset = VideoViews(paths, self.view, self.preprocessor, decoder=self.decoder)
        for batch in self.embedded(dataset, model=model, progress=progress):
            for video in batch:
                yield video.index, video.path, video.embedding, video.error

    def predict(self, paths: Sequence[str], labels: Sequence[str] | None = None,
                progress: Callable[[int], None] | None = None,
                ) -> Iterator[tuple[int, str, torch.Tensor | None, str | None]]:
        """Yield ``(index, path, probabilities [C] or None, error or None)``: the views combined by
        :func:`~vidprompt.methods.base.view_probabilities`."""
        labels = self._labels(labels)
        model = self.scorer(labels)
        text = self.label_embeddings(labels, model)
        for index, path, emb, error in self.video_embeddings(paths, progress, model):
            if emb is None:
                yield index, path, None, error
                continue
            with torch.inference_mode():
                probs = view_probabilities(model, emb, text)
            yield index, path, probs.cpu(), None

    def classify(self, paths: Sequence[str], labels: Sequence[str] | None = None, top_k: int = 5,
                 progress: Callable[[int], None] | None = None) -> list[VideoResult]:
        """Ranked predictions for every path, in input order; failed videos carry an ``error``."""
        labels = self._labels(labels)
        if top_k < 1:
            raise out_of_range("top_k", top_k, "at least 1")
        k = min(top_k, len(labels))
        results = []
        for _, path, probs, error in self.predict(paths, labels, progress):
            if probs is None:
                results.append(VideoResult(path, error=error))
                continue
            scores, order = probs.topk(k)
            predictions = [Prediction(labels[i], float(s)) for s, i in zip(scores.tolist(), order.tolist())]
            results.append(VideoResult(path, predictions, probabilities=probs))
        return results

    def _labels(self, labels: Sequence[str] | None) -> list[str]:
        if labels is not None:
            return list(labels)
        if self.default_labels:
            return self.default_labels
        raise no_labels()


def load_classifier(model: str | None = None, pretrained: str | None = None, *, checkpoint: str | None = None,
                    templates: Sequence[str] | None = None, view: ViewConfig | None = None,
                    device: str = "auto", precision: str = "auto", batch_size: int = 4,
                    num_workers: int | None = None, decoder: str = "auto", official=None) -> VideoClassifier:
    """A ready classifier, from a checkpoint or from an open_clip model for zero-shot.

    Zero-shot: ``model`` (name or config JSON, default ViT-B-16) + ``pretrained`` (tag, weights file or
    ``none``, default openai) + optional ``templates``. Checkpoint: the method, backbone, frames and training
    classes come from the file (``view`` overrides its frames; ``pretrained`` may point at the same weights
    elsewhere). The checkpoint's classes become the default labels. ``decoder``: ``auto``, ``pyav``,
    ``decord`` or ``torchcodec`` (see :mod:`vidprompt.video`).
    """
    target = resolve_device(device)
    resolve_precision(precision, target)  # bad option values fail before minutes of model loading
    resolve_decoder(decoder, target)
    if checkpoint is not None:
        from .checkpoint import load_checkpoint

        check_templates(templates, checkpoint)
        method, info = load_checkpoint(checkpoint, model=model, pretrained=pretrained, official=official)
        head = method.closed_set(info.classes) if getattr(method, "head", None) is not None else None
        clf = VideoClassifier(method, view or info.view, device=target, precision=precision,
                              batch_size=batch_size, num_workers=num_workers, default_labels=info.classes,
                              decoder=decoder, head_model=head)
        clf.checkpoint_info = info
        return clf
    from .methods.zeroshot import ZeroShotCLIP

    backbone = build_backbone(model or DEFAULT_MODEL, pretrained or DEFAULT_PRETRAINED)
    method = ZeroShotCLIP(backbone, templates or DEFAULT_TEMPLATES)
    return VideoClassifier(method, view, device=target, precision=precision, batch_size=batch_size,
                           num_workers=num_workers, decoder=decoder)
