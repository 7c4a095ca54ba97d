"""What every dataset parser returns: labelled video paths plus the class list their indices refer to.

A :class:`VideoDataset` is only paths and labels (no decoding), so ``eval`` and ``train-prompts`` share one
loader and the few-shot, base/novel and train/val protocols are cheap, deterministic list operations.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import UsageError
from ..labels import check_labels
from .matching import LabelMatcher

log = logging.getLogger(__name__)

_MISSING_SHOWN = 3


@dataclass
class VideoSample:
    path: Path | str  # a local file, or an http(s) URL as written in a list file
    label: str  # class name exactly as in the dataset's label list
    index: int  # position of ``label`` in that list


@dataclass
class VideoDataset:
    """Samples, the class list their ``index`` points into, and the annotated clips absent from disk.

    ``classes`` is the whole label list (classes without videos included), so indices stay official.
    ``missing`` describes the annotation file as loaded (paths or clip ids); the helpers below keep it.
    """

    samples: list[VideoSample]
    classes: list[str]
    missing: list[str] = field(default_factory=list)
    name: str = "videos"
    empty_folders: list[str] = field(default_factory=list)  # class folders without videos (folder datasets)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[VideoSample]:
        return iter(self.samples)

    def class_counts(self) -> dict[str, int]:
        """Videos per class, in class order, zeros included."""
        counts = dict.fromkeys(self.classes, 0)
        for sample in self.samples:
            counts[self.classes[sample.index]] += 1
        return counts

    def subset_classes(self, names: Sequence[str]) -> VideoDataset:
        """Only the classes in ``names`` (matched by normalised name), re-indexed in the order of ``names``.

        This is how base/novel (open-set) splits are made: train on one subset, evaluate on another, each
        with its own contiguous indices. The dataset's own spelling of each class is kept.
        """
        names = check_labels(names, source="the class subset")
        matcher = LabelMatcher(self.classes, source=f"{self.name} classes")
        old = matcher.require(names, where="the class subset (--classes)",
                              advice="Name only classes that the data has.")
        new_index = {old[name]: i for i, name in enumerate(names)}
        classes = [self.classes[old[name]] for name in names]
        samples = [replace(s, index=new_index[s.index]) for s in self.samples if s.index in new_index]
        return replace(self, samples=samples, classes=classes, missing=list(self.missing))

    def few_shot(self, k: int, seed: int = 0) -> VideoDataset:
        """K videos per class, chosen by ``seed`` alone.

        Each class is drawn from its videos sorted by path with a generator seeded by (seed, class), so
        the pick does not depend on file-system order, on sample order, or on which other classes exist.
        Classes with fewer than K videos keep all of them (with a warning).
        """
        if k < 1:
            raise UsageError(f"few-shot K must be at least 1, got {k}")
        chosen: list[VideoSample] = []
        short: list[str] = []
        for index, members in self._by_class().items():
            if len(members) < k:
                short.append(f"{self.classes[index]} ({len(members)})")
                chosen.extend(members)
            else:
                rng = _class_rng(seed, self.classes[index], "few-shot")
                chosen.extend(sorted(rng.sample(members, k), key=_order))
        if short:
            log.warning("%s: %d classes have fewer than %d videos and keep all they have: %s",
                        self.name, len(short), k, ", ".join(short[:_MISSING_SHOWN]))
        return replace(self, samples=chosen, missing=list(self.missing))

    def split(self, val_fraction: float, seed: int = 0) -> tuple[VideoDataset, VideoDataset]:
        """Stratified (train, val) split, deterministic in ``seed`` like :meth:`few_shot`.

        Each class puts round(n * val_fraction) videos in val, but a class with two or more videos gives
        val at least one and keeps at least one for training, so every class is both trained and checked.
        """
        if not 0.0 < val_fraction < 1.0:
            raise UsageError(f"validation fraction must be between 0 and 1 (exclusive), got {val_fraction}")
        train: list[VideoSample] = []
        val: list[VideoSample] = []
        for index, members in self._by_class().items():
            n = len(members)
            n_val = min(max(math.floor(n * val_fraction + 0.5), 1 if n >= 2 else 0), max(n - 1, 0))
            shuffled = list(members)
            _class_rng(seed, self.classes[index], "split").shuffle(shuffled)
            val.extend(sorted(shuffled[:n_val], key=_order))
            train.extend(sorted(shuffled[n_val:], key=_order))
        return (replace(self, samples=train, missing=list(self.missing), name=f"{self.name} (train)"),
                replace(self, samples=val, missing=list(self.missing), name=f"{self.name} (val)"))

    def _by_class(self) -> dict[int, list[VideoSample]]:
        """Samples grouped by class index, each group sorted by path (independent of input order)."""
        groups: dict[int, list[VideoSample]] = {}
        for sample in sorted(self.samples, key=_order):
            groups.setdefault(sample.index, []).append(sample)
        return dict(sorted(groups.items()))


def _order(sample: VideoSample) -> tuple[int, str]:
    return sample.index, str(sample.path)


def _class_rng(seed: int, class_name: str, purpose: str) -> random.Random:
    # String seeds are hashed with SHA-512 by ``random``, so this is stable across processes and versions.
    return random.Random(f"{purpose}:{seed}:{class_name}")


def located_samples(entries, find, index_of: dict[str, int], classes: Sequence[str],
                    ) -> tuple[list[VideoSample], list[str]]:
    """Annotated ``(path as written, class)`` pairs -> samples for the files ``find(written, class)`` locates,
    and the paths it does not."""
    samples: list[VideoSample] = []
    missing: list[str] = []
    for written, cls in entries:
        path = find(written, cls)
        if path is None:
            missing.append(written)
            continue
        samples.append(VideoSample(path=path, label=classes[index_of[cls]], index=index_of[cls]))
    return samples, missing


def make_dataset(name: str, classes: Sequence[str], samples: list[VideoSample], missing: list[str],
                 source: str) -> VideoDataset:
    """Final checks shared by the parsers: nothing found is an error, some clips missing is a warning."""
    if not samples:
        if missing:
            raise UsageError(
                f"{name}: none of the {len(missing)} annotated videos from {source} was found "
                f"(first: {missing[0]}); check the video root")
        raise UsageError(f"{name}: no videos in {source}")
    if missing:
        shown = ", ".join(missing[:_MISSING_SHOWN])
        log.warning("%s: %d of %d annotated videos not found on disk (e.g. %s)",
                    name, len(missing), len(missing) + len(samples), shown)
    return VideoDataset(samples=samples, classes=list(classes), missing=missing, name=name)


def as_path(value: str | Path, what: str, *, folder: bool) -> Path:
    """An existing file or folder argument, or a usage error that names the argument."""
    path = Path(value).expanduser()
    ok = path.is_dir() if folder else path.is_file()
    if not ok:
        kind = "folder" if folder else "file"
        raise UsageError(f"{what}: {kind} not found: {path}")
    return path


def check_choice(what: str, value, choices: tuple):
    """``value`` normalised (``"2"`` -> 2, ``"Test"`` -> ``"test"``) if it is one of ``choices``."""
    if isinstance(value, str) and isinstance(choices[0], int) and value.strip().isdigit():
        value = int(value)
    elif isinstance(value, str):
        value = value.strip().lower()
    if value not in choices:
        raise UsageError(f"{what} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value
