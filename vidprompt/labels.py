"""Class names: built-in label sets, user label lists, prompt templates and name normalisation.

Ground truth is always matched by :func:`label_key` (never by sorted folder index), because the official
numbering of several datasets differs from Python's ``sorted`` order of their folder names.
"""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from .errors import OptionValueError, UsageError

# Built-in set name -> (file prompted with, file that defines the official index order).
LABEL_SET_FILES: dict[str, str] = {
    "k400": "kinetics400.txt",
    "k600": "kinetics600.txt",
    "k700": "kinetics700.txt",
    "ucf101": "ucf101_readable.txt",
    "hmdb51": "hmdb51_readable.txt",
    "ssv2": "something_something_v2.txt",
}

# Our own prompt ensemble for the zero-shot baseline: short captions that describe a video of an action.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a video of a person {}.",
    "a video of {}.",
    "a clip showing {}.",
    "footage of someone {}.",
    "a person is {} in this video.",
    "an example of {}.",
    "a blurry video of {}.",
    "a close-up video of {}.",
    "a still frame from a video of {}.",
    "a short video of people {}.",
)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def label_key(name: str) -> str:
    """Normalised form used to match class names: case, spaces, ``_``, quotes and punctuation ignored.

    ``"ApplyEyeMakeup"``, ``"apply_eye_makeup"`` and ``"Apply eye-makeup"`` share one key; so do the two
    spellings of UCF101's ``HandstandPushups``/``HandStandPushups`` and Kinetics' ``hurling (sport)`` /
    ``hurling_-sport-``.
    """
    return re.sub(r"[\W_]+", "", name.casefold())


def readable_name(name: str) -> str:
    """Folder-style name -> words a text encoder understands.

    ``ApplyEyeMakeup`` -> ``apply eye makeup``, ``Hammering`` -> ``hammering``, ``brush_hair`` ->
    ``brush hair``, Kinetics folders ``hurling_-sport-`` -> ``hurling (sport)``. Names that already contain
    spaces are left as written.
    """
    text = name.strip()
    if " " in text:
        return re.sub(r"\s+", " ", text)
    if "_" in text:  # Kinetics/HMDB folders: spaces became "_", parentheses became "-"
        text = re.sub(r"_-([^-]+)-$", r" (\1)", text).replace("_", " ")
    elif _CAMEL_BOUNDARY.search(text) or text[:1].isupper():
        text = _CAMEL_BOUNDARY.sub(" ", text).lower()
    return re.sub(r"\s+", " ", text).strip()


def available_label_sets() -> list[str]:
    return sorted(LABEL_SET_FILES)


def load_label_set(name: str) -> list[str]:
    """Class names of a built-in set, in the dataset's official index order."""
    key = name.strip().lower()
    if key not in LABEL_SET_FILES:
        raise UsageError(f"unknown label set '{name}' (choose from: {', '.join(available_label_sets())})")
    text = resources.files("vidprompt.label_sets").joinpath(LABEL_SET_FILES[key]).read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_label_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; empty entries and duplicates are errors on ``labels`` (the
    parameter of :func:`resolve_labels` and the command line's ``--labels``)."""
    try:
        return check_labels([part.strip() for part in text.split(",")], source="labels")
    except UsageError as exc:
        raise OptionValueError("labels", str(exc)) from None


def read_labels_file(path: str | Path) -> list[str]:
    """One class per line; blank lines and ``#`` comments are skipped."""
    from .fileio import read_text_file

    text = read_text_file(path, "labels file")
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return check_labels([line for line in lines if line], source=str(path))


def check_labels(labels: Sequence[str], source: str = "labels") -> list[str]:
    """Reject empty lists, empty names and names that collide after normalisation."""
    labels = list(labels)
    if not labels or all(not label for label in labels):
        raise UsageError(f"{source}: the label list is empty")
    seen: dict[str, str] = {}
    for label in labels:
        if not label:
            raise UsageError(f"{source}: empty label in the list (check for a stray comma)")
        key = label_key(label)
        if not key:
            raise UsageError(f"{source}: label {label!r} has no letters or digits")
        if key in seen:
            other = seen[key]
            same = "" if other == label else f" (same as {other!r})"
            raise UsageError(f"{source}: duplicate label {label!r}{same}")
        seen[key] = label
    return labels


def resolve_labels(
    labels: str | None = None,
    labels_file: str | Path | None = None,
    label_set: str | None = None,
    *,
    required: bool = True,
) -> list[str] | None:
    """Exactly one of the three label sources -> the class list (``None`` if none given and not required)."""
    given = [name for name, value in (("labels", labels), ("labels_file", labels_file),
                                      ("label_set", label_set)) if value is not None]
    if len(given) > 1:
        raise OptionValueError(given[0], f"give only one of {', '.join(given)}", mentions=tuple(given[1:]))
    if labels is not None:
        return parse_label_list(labels)
    if labels_file is not None:
        return read_labels_file(labels_file)
    if label_set is not None:
        return load_label_set(label_set)
    if required:
        raise no_labels()
    return None


def no_labels() -> UsageError:
    """The one error for "nothing to score against": no labels given and no checkpoint classes to default to."""
    return UsageError('no labels: give class names (labels=[...]; on the command line --labels "a,b,c", '
                      "--labels-file FILE or --label-set NAME)")


def check_templates(templates: Sequence[str] | None, checkpoint: object = None) -> list[str] | None:
    """Zero-shot prompt templates, each checked; ``None`` for the built-in ensemble. A checkpoint brings its own
    text side, so templates given with one are refused."""
    if not templates:
        return None
    if checkpoint is not None:
        raise OptionValueError("templates", "templates cannot be used with checkpoint (zero-shot only; a "
                               "checkpoint brings its own text side)", mentions=("checkpoint",))
    return [check_template(t) for t in templates]


def check_template(template: str) -> str:
    """A prompt template must contain exactly one ``{}`` where the class name goes (write other braces
    as ``{{`` and ``}}``)."""
    try:  # (field, format spec, conversion) of each replacement field: only a bare {} is allowed
        fields = [(field, spec, conversion) for _, field, spec, conversion in string.Formatter().parse(template)
                  if field is not None]
    except ValueError:
        fields = None
    if fields != [("", "", None)]:
        raise UsageError(f"template {template!r} must contain exactly one '{{}}' for the class name "
                         "(other braces doubled: '{{' and '}}')")
    return template


def fill_templates(labels: Iterable[str], templates: Sequence[str]) -> list[list[str]]:
    """Prompts per label, one for each template."""
    return [[template.format(label) for template in templates] for label in labels]
