"""``vidprompt app``: a local web page over the same Python API as the CLI (Gradio, the ``app`` extra).

Classify tab: drop a video or pick one inside the folders the app was started with, type labels, pick the model
(the one the app started with, a checkpoint found in those folders, or a ``hf-hub:`` name), and see ranked labels
as bars, the sampled frames, and for a long video the localisation timeline and its segments. Search tab: query
an index built with ``vidprompt index`` by text or by an example video, and play each match at its time.

The app binds to 127.0.0.1 unless told otherwise, reads and serves files only inside its folders (``roots``),
and runs each job in Gradio's queue with its progress on the page, so a long job never freezes the page.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .errors import UsageError, VidpromptError

LONG_VIDEO_SECONDS = 20.0  # longer videos also get the localisation timeline
TIMELINE_WINDOWS = 600  # at most this many timeline windows per video: a long film is strided more coarsely
LISTED = 2000  # videos offered by the pickers (typing a path inside the folders reaches the others)
CACHED_MODELS = 2  # classifiers kept loaded; picking a third unloads the least recently used

Report = Callable[[float, str], None]  # (fraction done, what is happening) -> shown on the page


def _quiet(fraction: float, desc: str) -> None:
    """The progress report of a call from Python: nothing shown."""


@dataclass
class AppState:
    """What the app was started with, and what it has loaded since (one per process; thread-safe, because
    Gradio runs the Classify and Search jobs on their own threads)."""

    roots: list[Path]
    model: str | None = None
    pretrained: str | None = None
    checkpoint: str | None = None
    indexes: list[Path] = field(default_factory=list)
    device: str = "auto"
    _loaded: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _scratch: Path | None = field(default=None, repr=False)

    # --- the files it may read -----------------------------------------------------------------------------

    def allowed(self, path: str | os.PathLike) -> Path:
        """``path`` resolved, if it lies inside one of the app's folders (or Gradio's upload folder); else refused."""
        resolved = Path(path).expanduser().resolve()
        folders = [*self.roots, Path(_upload_dir()).resolve()]
        if not any(_inside(resolved, root) for root in folders):
            raise UsageError(f"{path}: outside the folders this app serves")
        if not resolved.is_file():
            raise UsageError(f"{path}: no such file")
        return resolved

    def served(self, path: str | os.PathLike) -> bool:
        """Whether the page may play ``path`` (it lies inside the app's folders)."""
        resolved = Path(path).resolve()
        return any(_inside(resolved, root) for root in self.roots)

    def videos(self) -> list[tuple[str, str]]:
        """(shown name, path) of the videos the pickers offer: the first :data:`LISTED` in the app's folders."""
        from .video import VIDEO_EXTENSIONS

        return [(self._shown(p), str(p)) for p in _files(self.roots, VIDEO_EXTENSIONS, LISTED)]

    def _shown(self, path: Path) -> str:
        root = next(r for r in self.roots if _inside(path, r))
        return str(path.relative_to(root.parent)) if len(self.roots) > 1 else str(path.relative_to(root))

    # --- the models it may run -----------------------------------------------------------------------------

    def models(self) -> list[tuple[str, str]]:
        """(shown name, choice) of the models the page offers: the one the app started with (choice ``""``),
        then the vidprompt checkpoints found in the app's folders."""
        from .backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED
        from .checkpoint import read_checkpoint_info

        started = (f"{self.checkpoint}" if self.checkpoint is not None else
                   f"zero-shot {Path(self.model).stem if self.model else DEFAULT_MODEL} "
                   f"({self.pretrained or DEFAULT_PRETRAINED})")
        found = []
        for path in _files(self.roots, {".safetensors"}, LISTED):
            if self.checkpoint is not None and Path(self.checkpoint).resolve() == path:
                continue
            try:
                info = read_checkpoint_info(path)
            except (VidpromptError, OSError, ValueError):  # other safetensors files (weights, features)
                continue
            found.append((f"{self._shown(path)} ({info.method}, {len(info.classes)} classes)", str(path)))
        return [(started, ""), *found]

    def classifier(self, choice: str | None = None, report: Report = _quiet):
        """The classifier of a model choice: ``""``/None for the one the app started with, a checkpoint inside
        the app's folders, or a ``hf-hub:`` checkpoint. Loaded once, then kept (the last few)."""
        from .classifier import load_classifier
        from .hub import is_hub_ref

        choice = (choice or "").strip()
        if choice and not is_hub_ref(choice):
            choice = str(self.allowed(choice))
        if choice:  # the checkpoint's own backbone and weights
            return self._kept(choice, lambda: load_classifier(checkpoint=choice, device=self.device, num_workers=0),
                              report)
        return self._kept("", lambda: load_classifier(self.model, self.pretrained, checkpoint=self.checkpoint,
                                                      device=self.device, num_workers=0), report)

    def index_classifier(self, idx, report: Report = _quiet):
        """The query model of an opened index (the one that built it), loaded once per index model."""
        import json

        return self._kept("index:" + json.dumps(idx.model, sort_keys=True),
                          lambda: idx.classifier(device=self.device, num_workers=0), report)

    def _kept(self, key: str, load: Callable, report: Report):
        """The model under ``key``, loaded on first use; the :data:`CACHED_MODELS` most recently used stay."""
        with self._lock:  # one load at a time, so two jobs never load the same model twice
            if key not in self._loaded:
                report(0.0, "loading the model")
                self._loaded[key] = load()
            self._loaded.move_to_end(key)
            while len(self._loaded) > CACHED_MODELS:
                self._loaded.popitem(last=False)
            return self._loaded[key]

    # --- files it writes -----------------------------------------------------------------------------------

    def scratch(self) -> Path:
        """A private folder for the images the page shows, removed when the app exits."""
        with self._lock:
            if self._scratch is None:
                self._scratch = Path(tempfile.mkdtemp(prefix="vidprompt-app-"))
                weakref.finalize(self, shutil.rmtree, self._scratch, True)
            return self._scratch


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _files(roots: Sequence[Path], suffixes, limit: int) -> Iterator[Path]:
    """Up to ``limit`` files with one of ``suffixes`` under ``roots``, in name order, hidden folders skipped."""
    count = 0
    for root in roots:
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for name in sorted(names):
                if not name.startswith(".") and Path(name).suffix.lower() in suffixes:
                    yield Path(folder, name).resolve()
                    count += 1
                    if count >= limit:
                        return


def _upload_dir() -> str:
    return os.environ.get("GRADIO_TEMP_DIR") or os.path.join(tempfile.gettempdir(), "gradio")


# --- the Classify tab -----------------------------------------------------------------------------------------

@dataclass
class Classified:
    """What the Classify tab shows for one video."""

    scores: dict[str, float]  # label -> probability, best first
    frames: list  # the frames the model saw, [H, W, 3] uint8 arrays
    timeline: str | None  # a PNG of the localisation timeline (long videos only)
    segments: list[list]  # [start, end, label, score] rows of the timeline
    message: str


def classify_video(state: AppState, upload: str | None, path: str | None, model: str | None, labels: str,
                   top_k: int, report: Report = _quiet) -> Classified:
    """Classify one video (an upload, else a path inside the app's folders) with ``labels`` (empty: the
    checkpoint's classes); for a video over :data:`LONG_VIDEO_SECONDS`, localise the labels over time too."""
    from .labels import parse_label_list
    from .video import probe_video

    source = upload or (path.strip() if path else "")
    if not source:
        raise UsageError("drop a video or pick one")
    video = state.allowed(source)
    names = parse_label_list(labels) if labels and labels.strip() else None
    clf = state.classifier(model, report)
    report(0.1, "classifying")
    result = clf.classify([str(video)], names, top_k=max(1, int(top_k)))[0]
    if result.error is not None:
        raise VidpromptError(f"{video.name}: {result.error}")
    scores = {p.label: p.score for p in result.predictions}
    report(0.3, "reading the sampled frames")
    frames = _sampled_frames(clf, video)
    message = f"{video.name}: {result.predictions[0].label}"
    timing = probe_video(str(video), clf.decoder)
    if timing.duration < LONG_VIDEO_SECONDS:
        return Classified(scores, frames, None, [], message)
    timeline, segments = _timeline(state, clf, video, names, timing, report)
    count = f"{len(segments)} segment{'' if len(segments) == 1 else 's'}"
    return Classified(scores, frames, timeline, segments, f"{message}; {count} over {timing.duration:.0f} s")


def _sampled_frames(clf, video: Path) -> list:
    """The frames the model saw (first clip, first crop), as images for the gallery."""
    from .video import load_clip_frames

    clip = load_clip_frames(str(video), clf.view, decoder=clf.decoder)
    return [frame for frame in clip.frames[0].numpy()]


def timeline_windows(duration: float) -> tuple[float, float]:
    """(window, stride) in seconds for the page's timeline: 2 s windows every second, strided more coarsely for
    long videos so that one never needs more than about :data:`TIMELINE_WINDOWS` windows."""
    stride = max(1.0, round(duration / TIMELINE_WINDOWS, 1))
    return max(2.0, 2 * stride), stride


def _timeline(state: AppState, clf, video: Path, labels: Sequence[str] | None, timing, report: Report):
    """The localisation of ``video`` -> (timeline PNG or None without matplotlib, segment rows)."""
    import uuid

    from .localization import SlidingWindows, localize, plot_timeline

    window, stride = timeline_windows(timing.duration)
    windows = SlidingWindows(clf, str(video), window, stride, timing=timing)
    done = 0

    def counted(n: int) -> None:
        nonlocal done
        done += n
        report(0.4 + 0.6 * done / len(windows), f"localising: {done}/{len(windows)} windows")

    report(0.4, f"localising: 0/{len(windows)} windows")
    result = localize(clf, str(video), labels, windows=windows, progress=counted)
    report(1.0, "drawing the timeline")
    picture = plot_timeline(result, state.scratch() / f"timeline-{uuid.uuid4().hex}.png")
    rows = [[round(s.start, 1), round(s.end, 1), s.label or "(background)", round(s.score, 3)]
            for s in result.segments]
    return (None if picture is None else str(picture)), rows


# --- the Search tab -------------------------------------------------------------------------------------------

def search_index(state: AppState, index: str, text: str, like: str | None, top_k: int,
                 report: Report = _quiet) -> tuple[list, str]:
    """Matches of a text or an example video in one of the app's indexes -> (table rows, HTML players)."""
    from .index import VideoIndex

    if not index:
        raise UsageError("no index: start the app with --index FOLDER")
    if Path(index).resolve() not in state.indexes:
        raise UsageError(f"{index}: not an index this app serves")
    query_like = str(state.allowed(like)) if like and like.strip() else None
    query = text.strip() if text and text.strip() and not query_like else None
    if query is None and query_like is None:
        raise UsageError("type a text query or pick an example video")
    idx = VideoIndex(index)  # opened per search: memory-mapped, so a rebuilt index is seen at once
    clf = state.index_classifier(idx, report)
    report(0.5, "searching")
    hits = idx.search(clf, query, like=query_like, top_k=max(1, int(top_k)))
    rows = [[rank, round(hit.score, 3), hit.path, hit.start, hit.end] for rank, hit in enumerate(hits, start=1)]
    players = "".join(_player(state, rank, hit) for rank, hit in enumerate(hits, start=1))
    return rows, f'<div style="display:flex;flex-wrap:wrap;gap:12px">{players}</div>'


def _player(state: AppState, rank: int, hit) -> str:
    """One match as a video element that starts (and stops) at the match's time."""
    from html import escape
    from urllib.parse import quote

    start = hit.start or 0.0
    caption = f"{rank}. {escape(Path(hit.path).name)} {start:.1f} s"
    if not state.served(hit.path):
        return f"<figure><figcaption>{caption} (outside the app's folders, not played)</figcaption></figure>"
    span = f"#t={start:.2f}" + (f",{hit.end:.2f}" if hit.end else "")
    return (f'<figure><video controls preload="metadata" width="320" '
            f'src="/gradio_api/file={escape(quote(hit.path))}{span}"></video><figcaption>{caption}</figcaption>'
            f"</figure>")


# --- the page -------------------------------------------------------------------------------------------------

def build(state: AppState):
    """The Gradio page."""
    import gradio as gr

    def job(fn, shown):
        """``fn`` as a Gradio handler: its progress on the page, a vidprompt error as one message, outputs
        laid out by ``shown``."""
        def run(*args, progress=gr.Progress()):  # the progress argument makes Gradio show the job's progress
            try:
                return shown(fn(state, *args, report=lambda fraction, desc: progress(fraction, desc=desc)))
            except VidpromptError as exc:  # one line on the page; the app keeps working
                raise gr.Error(str(exc)) from None
        return run

    videos = state.videos()
    with gr.Blocks(title="vidprompt") as page:
        gr.Markdown("# vidprompt\nClassify videos with words, and search a library.")
        with gr.Tab("Classify"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="Video", file_types=["video"], type="filepath", elem_id="upload")
                    path = gr.Dropdown(videos, value=None, allow_custom_value=True, filterable=True,
                                       label="or a video in the app's folders (pick, or type a path)",
                                       elem_id="path")
                    model = gr.Dropdown(state.models(), value="", allow_custom_value=True, label="Model",
                                        info="a checkpoint in the app's folders, or hf-hub:ORG/REPO",
                                        elem_id="model")
                    labels = gr.Textbox(label="Labels (comma-separated; empty: the checkpoint's classes)",
                                        elem_id="labels", placeholder="surfing, cooking, playing guitar")
                    top_k = gr.Slider(1, 20, value=5, step=1, label="Top k")
                    go = gr.Button("Classify", variant="primary", elem_id="classify")
                with gr.Column():
                    message = gr.Textbox(label="Result", elem_id="message", interactive=False)
                    ranking = gr.Label(label="Ranked labels", elem_id="ranking")
                    frames = gr.Gallery(label="Sampled frames", columns=8, height=160, elem_id="frames")
            timeline = gr.Image(label=f"Timeline (videos over {LONG_VIDEO_SECONDS:g} s)", type="filepath",
                                elem_id="timeline")
            segments = gr.Dataframe(headers=["start (s)", "end (s)", "label", "score"], elem_id="segments",
                                    interactive=False)
            go.click(job(classify_video, lambda r: (r.scores, r.frames, r.timeline, r.segments, r.message)),
                     [upload, path, model, labels, top_k], [ranking, frames, timeline, segments, message])
        with gr.Tab("Search"):
            index = gr.Dropdown([str(p) for p in state.indexes], value=str(state.indexes[0]) if state.indexes
                                else None, label="Index", elem_id="index")
            query = gr.Textbox(label="Text query", elem_id="query")
            like = gr.Dropdown(videos, value=None, allow_custom_value=True, filterable=True,
                               label="or an example video in the app's folders", elem_id="like")
            k = gr.Slider(1, 50, value=10, step=1, label="Results")
            find = gr.Button("Search", variant="primary", elem_id="search")
            table = gr.Dataframe(headers=["#", "score", "video", "start", "end"], elem_id="hits")
            players = gr.HTML(elem_id="players")
            find.click(job(search_index, lambda r: r), [index, query, like, k], [table, players])
    return page


def serve(roots: Sequence[str | os.PathLike], *, host: str = "127.0.0.1", port: int = 7860, **options) -> None:
    """Build and serve the page (blocks until stopped)."""
    state = AppState([Path(r).expanduser().resolve() for r in roots], **options)
    missing = [str(r) for r in state.roots if not r.is_dir()]
    if missing:
        raise UsageError(f"not a folder: {', '.join(missing)}")
    state.indexes = [Path(i).expanduser().resolve() for i in state.indexes]
    from .index import VideoIndex

    for index in state.indexes:  # a wrong folder or model is one line in the terminal, before the page is up
        VideoIndex(index)
    state.classifier()
    page = build(state)
    page.queue().launch(server_name=host, server_port=port, allowed_paths=[str(r) for r in state.roots],
                        show_error=True, inbrowser=False, share=False)
