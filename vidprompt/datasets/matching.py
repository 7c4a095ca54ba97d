"""Map annotation class names onto a label list by normalised name, never by position.

Annotation files spell classes their own way (``ApplyEyeMakeup``, ``apply_eye_makeup``,
``hurling_-sport-``); the label list is what the text encoder sees and what indices refer to. Matching by
:func:`~vidprompt.labels.label_key` keeps ground truth right even where sorted folder order differs from
the official numbering.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Sequence

from ..errors import UsageError
from ..labels import check_labels, label_key

_MAX_NAMED = 5


class LabelMatcher:
    """Index lookups into one label list by :func:`label_key`; unknown names are usage errors."""

    def __init__(self, labels: Sequence[str], source: str = "label list"):
        self.labels = check_labels(labels, source=source)
        self.source = source
        self._index = {label_key(label): i for i, label in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.labels)

    def find(self, name: str) -> int | None:
        """Index of ``name`` in the label list, or ``None``."""
        return self._index.get(label_key(name))

    def index(self, name: str, where: str = "annotations") -> int:
        """Index of ``name``; a :class:`UsageError` naming it (and close labels) when it is not there."""
        return self.require([name], where)[name]

    def require(self, names: Iterable[str], where: str = "annotations",
                advice: str = "Give a label list that contains every annotated class.") -> dict[str, int]:
        """Indices for all ``names`` at once, so one error lists every unknown class, not just the first."""
        found: dict[str, int] = {}
        unknown: list[str] = []
        for name in names:
            if name in found or name in unknown:
                continue
            i = self.find(name)
            if i is None:
                unknown.append(name)
            else:
                found[name] = i
        if unknown:
            raise UsageError(self._unknown_message(unknown, where, advice))
        return found

    def close_labels(self, name: str, n: int = 3) -> list[str]:
        keys = difflib.get_close_matches(label_key(name), list(self._index), n=n, cutoff=0.6)
        return [self.labels[self._index[key]] for key in keys]

    def _unknown_message(self, unknown: list[str], where: str, advice: str) -> str:
        parts = []
        for name in unknown[:_MAX_NAMED]:
            close = self.close_labels(name)
            hint = f" (close: {', '.join(repr(c) for c in close)})" if close else ""
            parts.append(f"{name!r}{hint}")
        more = f" and {len(unknown) - _MAX_NAMED} more" if len(unknown) > _MAX_NAMED else ""
        noun = "class is" if len(unknown) == 1 else f"{len(unknown)} classes are"
        return (f"{where}: {noun} not in the {self.source} ({len(self.labels)} labels): "
                f"{'; '.join(parts)}{more}. {advice}")
