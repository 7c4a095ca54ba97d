"""Where a video comes from: a local file or an http(s) URL, and the checks that need no decoder."""

from __future__ import annotations

import os

from ..errors import VideoError

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".ts",
    ".gif",
})
URL_SCHEMES = ("http://", "https://")


def is_url(source: str | os.PathLike) -> bool:
    """True for http(s) URLs, which FFmpeg reads over the network (kept exactly as the user wrote them)."""
    return isinstance(source, str) and source[:8].lower().startswith(URL_SCHEMES)


def absolute_source(source: str | os.PathLike) -> str:
    """An absolute path for a local file; a URL exactly as given."""
    return source if is_url(source) else os.path.abspath(source)


def check_source(source: str) -> None:
    """Fail early, with the plain reason, for a local path that cannot be a video (a URL is checked by
    opening it). Every backend would fail on these, so none is tried."""
    if is_url(source):
        return
    if not os.path.exists(source):
        raise VideoError("file not found")
    if os.path.isdir(source):
        raise VideoError("a folder with no video files in it")
    if os.path.getsize(source) == 0:
        raise VideoError("empty file")
    if source.lower().endswith(".txt"):  # the inputs read every .txt as a list of videos; one that reaches here
        raise VideoError("a list of videos that lists no video")  # listed none
