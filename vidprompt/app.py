"""``vidprompt app``: a local web page over the same Python API as the CLI (Gradio, the ``app`` extra).

Classify tab: drop a video or give a path inside the folders the app was started with, type labels, see ranked
labels as bars, the sampled frames, and for a long video the localisation timeline. Search tab: query an index
built with ``vidprompt index`` by text or by an example video, and play each match at its time.

The app binds to 127.0.0.1 unless told otherwise, serves and reads files only inside its folders (``roots``), and
runs each job in Gradio's queue so the page shows progress and stays usable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .errors import UsageError, VidpromptError

LONG_VIDEO_SECONDS = 20.0  # longer videos also get the localisation timeline


@dataclass
class AppState:
    """What the app was started with, and the classifier built on first use (one per process)."""

    roots: list[Path]
    model: str | None = None
    pretrained: str | None = None
    checkpoint: str | None = None
    indexes: list[Path] = field(default_factory=list)
    device: str = "auto"
    _classifier: object = None

    def classifier(self):
        if self._classifier is None:
            from .classifier import load_classifier

            self._classifier = load_classifier(self.model, self.pretrained, checkpoint=self.checkpoint,
                                               device=self.device, num_workers=0)
        return self._classifier

    def allowed(self, path: str | os.PathLike) -> Path:
        """``path`` resolved, if it lies inside one of the app's folders (or Gradio's upload folder); else refused."""
        resolved = Path(path).expanduser().resolve()
        folders = [*self.roots, Path(_upload_dir()).resolve()]
        if not any(resolved == root or root in resolved.parents for root in folders):
            raise UsageError(f"{path}: outside the folders this app serves")
        if not resolved.is_file():
            raise UsageError(f"{path}: no such file")
        return resolved


def _upload_dir() -> str:
    import tempfile

    return os.environ.get("GRADIO_TEMP_DIR") or os.path.join(tempfile.gettempdir(), "gradio")


def classify_video(state: AppState, upload: str | None, path: str, labels: str, top_k: int):
    """One video -> (label scores for the bar chart, sampled frames, timeline image or None, message)."""
    from .labels import parse_label_list

    source = upload or (path.strip() if path else "")
    if not source:
        raise UsageError("drop a video or give its path")
    video = state.allowed(source)
    names = parse_label_list(labels) if labels and labels.strip() else None
    clf = state.classifier()
    result = clf.classify([str(video)], names, top_k=max(1, int(top_k)))[0]
    if result.error is not None:
        raise VidpromptError(f"{video.name}: {result.error}")
    scores = {p.label: p.score for p in result.predictions}
    frames = _sampled_frames(clf, video)
    timeline = _timeline(clf, video, names)
    return scores, frames, timeline, f"{video.name}: {result.predictions[0].label}"


def _sampled_frames(clf, video: Path) -> list:
    """The frames the model saw (first clip, first crop), as images for the gallery."""
    from .video import load_clip_frames

    clip = load_clip_frames(str(video), clf.view, decoder=clf.decoder)
    return [frame for frame in clip.frames[0].numpy()]


def _timeline(clf, video: Path, labels: Sequence[str] | None) -> str | None:
    """For a long video, the localisation timeline as a PNG (None for a short one)."""
    import tempfile

    from .localization import localize, plot_timeline
    from .video import probe_video

    if probe_video(str(video), clf.decoder).duration < LONG_VIDEO_SECONDS:
        return None
    result = localize(clf, str(video), labels)
    out = Path(tempfile.mkdtemp(prefix="vidprompt-app-")) / "timeline.png"
    return str(out) if plot_timeline(result, out) is not None else None


def search_index(state: AppState, index: str, text: str, like: str | None, top_k: int) -> tuple[list, str]:
    """Matches of a text or an example video in one of the app's indexes -> (table rows, HTML players)."""
    from html import escape

    from .index import VideoIndex

    if not index:
        raise UsageError("no index: start the app with --index FOLDER")
    if Path(index).resolve() not in state.indexes:
        raise UsageError(f"{index}: not an index this app serves")
    idx = VideoIndex(index)
    clf = idx.classifier(model=None, pretrained=None, checkpoint=None, num_workers=0)
    query_like = str(state.allowed(like)) if like else None
    hits = idx.search(clf, text.strip() if text and text.strip() and not query_like else None,
                      like=query_like, top_k=max(1, int(top_k)))
    rows = [[rank, round(hit.score, 3), hit.path, hit.start, hit.end] for rank, hit in enumerate(hits, start=1)]
    players = "".join(
        f'<figure><video controls preload="metadata" width="320" src="/gradio_api/file={escape(hit.path)}'
        f'#t={hit.start or 0:.2f}{"," + format(hit.end, ".2f") if hit.end else ""}"></video>'
        f"<figcaption>{rank}. {escape(Path(hit.path).name)} {hit.start or 0:.1f}s</figcaption></figure>"
        for rank, hit in enumerate(hits, start=1))
    return rows, players


def build(state: AppState):
    """The Gradio page."""
    import gradio as gr

    def guarded(fn):
        def run(*args, progress=gr.Progress()):  # the progress argument makes Gradio show the job's progress
            try:
                return fn(state, *args)
            except VidpromptError as exc:  # one line on the page; the app keeps working
                raise gr.Error(str(exc)) from None
        return run

    with gr.Blocks(title="vidprompt") as page:
        gr.Markdown("# vidprompt\nClassify videos with words, and search a library.")
        with gr.Tab("Classify"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="Video", file_types=["video"], type="filepath", elem_id="upload")
                    path = gr.Textbox(label="or a path inside the app's folders", elem_id="path")
                    labels = gr.Textbox(label="Labels (comma-separated)", elem_id="labels",
                                        placeholder="surfing, cooking, playing guitar")
                    top_k = gr.Slider(1, 20, value=5, step=1, label="Top k")
                    go = gr.Button("Classify", variant="primary", elem_id="classify")
                with gr.Column():
                    message = gr.Textbox(label="Result", elem_id="message", interactive=False)
                    ranking = gr.Label(label="Ranked labels", elem_id="ranking")
                    frames = gr.Gallery(label="Sampled frames", columns=8, height=160, elem_id="frames")
                    timeline = gr.Image(label="Timeline (long videos)", type="filepath", elem_id="timeline")
            go.click(guarded(classify_video),
                     [upload, path, labels, top_k], [ranking, frames, timeline, message])
        with gr.Tab("Search"):
            index = gr.Dropdown([str(p) for p in state.indexes], value=str(state.indexes[0]) if state.indexes
                                else None, label="Index", elem_id="index")
            query = gr.Textbox(label="Text query", elem_id="query")
            like = gr.Textbox(label="or an example video (path inside the app's folders)", elem_id="like")
            k = gr.Slider(1, 50, value=10, step=1, label="Results")
            find = gr.Button("Search", variant="primary", elem_id="search")
            table = gr.Dataframe(headers=["#", "score", "video", "start", "end"], elem_id="hits")
            players = gr.HTML(elem_id="players")
            find.click(guarded(search_index), [index, query, like, k], [table, players])
    return page


def serve(roots: Sequence[str | os.PathLike], *, host: str = "127.0.0.1", port: int = 7860, **options) -> None:
    """Build and serve the page (blocks until stopped)."""
    state = AppState([Path(r).expanduser().resolve() for r in roots], **options)
    missing = [str(r) for r in state.roots if not r.is_dir()]
    if missing:
        raise UsageError(f"not a folder: {', '.join(missing)}")
    state.indexes = [Path(i).expanduser().resolve() for i in state.indexes]
    page = build(state)
    page.queue().launch(server_name=host, server_port=port, allowed_paths=[str(r) for r in state.roots],
                        show_error=True, inbrowser=False, share=False)
