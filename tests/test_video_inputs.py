"""Videos as users have them, through the real `vidprompt` command: http(s) URLs served by a real HTTP server
on 127.0.0.1 (with and without range requests, with query strings, dead and missing), a folder of mixed
containers, files only one backend reads, and stderr that carries our lines and the progress bar only."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from media import frame_index_video, moving_square, solid_video, write_video
from vidprompt.video import decoders as decoders_module

LABELS = "red,blue,green"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``root``; honours ``Range: bytes=a-b`` only when ``ranges`` is set."""

    root: Path
    ranges: bool

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = self.root / self.path.split("?", 1)[0].lstrip("/")
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "")) if self.ranges else None
        try:
            if match and match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                data = data[start:end + 1]
            else:
                self.send_response(200)
            if self.ranges:
                self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # FFmpeg hangs up once it has what it needs
            pass


def _serve(root: Path, ranges: bool):
    handler = type("Handler", (_Handler,), {"root": root, "ranges": ranges})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """Two servers over the same folder of videos: one with range requests, one without."""
    root = tmp_path_factory.mktemp("www")
    write_video(root / "red.mp4", solid_video((220, 30, 30), n=20, h=48, w=64))
    write_video(root / "red_fast.mp4", solid_video((220, 30, 30), n=20, h=48, w=64), faststart=True)
    write_video(root / "blue.webm", solid_video((30, 30, 220), n=20, h=48, w=64))
    write_video(root / "index.mp4", frame_index_video(40), gop=10, bframes=2)
    with_ranges, url = _serve(root, ranges=True)
    without_ranges, plain_url = _serve(root, ranges=False)
    with socket.socket() as probe:  # a port with nothing listening: a dead server
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/gone.mp4"
    yield {"root": root, "url": url, "plain": plain_url, "dead": dead}
    with_ranges.shutdown()
    without_ranges.shutdown()


def run_cli(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "vidprompt", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


TINY = ["--model", str(Path(__file__).parent / "data" / "vp-tiny.json"), "--pretrained", "none",
        "--device", "cpu"]


def test_classify_urls_with_and_without_ranges_named_exactly_as_given(web, tmp_path):
    local = shutil.copy(web["root"] / "index.mp4", tmp_path / "index.mp4")
    inputs = [f"{web['url']}/index.mp4?token=abc&x=1",  # range requests, query string
              f"{web['plain']}/red_fast.mp4",  # no range requests: read from the start
              f"{web['plain']}/blue.webm?v=2",
              f"{web['url']}/missing.mp4",  # 404
              web["dead"],  # connection refused
              str(local)]
    out = run_cli("classify", *inputs, "--labels", LABELS, "--json", "-j", "0", "-q", *TINY)
    assert out.returncode == 1, out.stderr
    results = json.loads(out.stdout)
    assert [r["video"] for r in results] == inputs
    assert [("error" in r) for r in results] == [False, False, False, True, True, False]
    assert "404" in results[3]["error"] and "pyav" in results[3]["error"]
    assert results[4]["error"].startswith("not a readable video (tried pyav: ")
    # The same file over HTTP and on disk gives the same scores: the same frames were decoded.
    assert results[0]["predictions"] == results[5]["predictions"]
    errors = [line for line in out.stderr.splitlines() if "--pretrained none" not in line]
    assert errors == [f"vidprompt: {inputs[3]}: {results[3]['error']}",
                      f"vidprompt: {inputs[4]}: {results[4]['error']}",
                      "vidprompt: 2 of 6 videos failed"]


def test_index_and_localize_read_urls(web, tmp_path):
    url = f"{web['url']}/index.mp4?token=abc"
    out = run_cli("index", url, f"{web['plain']}/blue.webm", "--out", str(tmp_path / "lib.vpindex"), "--window",
                  "0.8", "-j", "0", "-q", "--json", *TINY)
    assert out.returncode == 0, out.stderr
    from vidprompt.index import VideoIndex

    manifest = [video.entry for video in VideoIndex(tmp_path / "lib.vpindex").videos()]
    assert [m["path"] for m in manifest] == [url, f"{web['plain']}/blue.webm"]
    assert manifest[0]["frames"] == 40 and manifest[0]["duration"] == pytest.approx(1.6)
    assert manifest[0]["windows"][1] == 2 and manifest[0]["decoder"] == "pyav"
    again = run_cli("index", url, f"{web['plain']}/blue.webm", "--out", str(tmp_path / "lib.vpindex"), "-j", "0",
                    "-q", "--json", *TINY)
    assert again.returncode == 0 and json.loads(again.stdout)["unchanged"] == 2, again.stdout

    loc = run_cli("localize", url, "--labels", LABELS, "--window", "0.8", "--stride", "0.4", "--json", "-q",
                  "-j", "0", *TINY)
    assert loc.returncode == 0, loc.stderr
    result = json.loads(loc.stdout)
    assert result["video"] == url and result["duration"] == pytest.approx(1.6)
    assert len(result["windows"]) == 3

    dead = run_cli("localize", f"{web['url']}/missing.mp4", "--labels", LABELS, "-q", *TINY)
    lines = [line for line in dead.stderr.splitlines() if "--pretrained none" not in line]
    assert dead.returncode == 1 and len(lines) == 1 and "404" in lines[0]


def test_eval_list_file_with_urls(web, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text(f"{web['url']}/red.mp4,red\n{web['plain']}/blue.webm?v=1,blue\n")
    out = run_cli("eval", "--list-file", str(listing), "--labels", "red,blue", "--json", "-q", "-j", "0",
                  "--out", str(tmp_path / "report"), *TINY)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["counts"]["evaluated"] == 2 and report["counts"]["failed"] == 0
    logged = [json.loads(line)["video"] for line in (tmp_path / "report" / "predictions.jsonl").read_text()
              .splitlines()]
    assert logged == [f"{web['url']}/red.mp4", f"{web['plain']}/blue.webm?v=1"]


def test_a_folder_of_every_container_classifies_with_one_command(tmp_path):
    """MP4, MKV, WebM, AVI, MOV and GIF side by side, a broken file among them: every video gets a result,
    the broken one is one line naming the backends tried, exit 1."""
    folder = tmp_path / "clips"
    for name in ("a.mp4", "b.mkv", "c.webm", "d.avi", "e.mov", "f.gif"):
        write_video(folder / name, moving_square("right", n=24))
    (folder / "g.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(4000))
    out = run_cli("classify", str(folder), "--labels", "left,right", "--json", "-q", *TINY)
    assert out.returncode == 1, out.stderr
    results = {Path(r["video"]).name: r for r in json.loads(out.stdout)}
    assert sorted(results) == ["a.mp4", "b.mkv", "c.webm", "d.avi", "e.mov", "f.gif", "g.mp4"]
    assert all("predictions" in r for name, r in results.items() if name != "g.mp4")
    assert results["g.mp4"]["error"].startswith("not a readable video (tried pyav: ")
    assert [line for line in out.stderr.splitlines() if "--pretrained none" not in line] == [
        f"vidprompt: {results['g.mp4']['video']}: {results['g.mp4']['error']}", "vidprompt: 1 of 7 videos failed"]


@pytest.mark.skipif(decoders_module.unavailable_reason("decord") is not None, reason="decord is not installed")
def test_decord_asked_for_says_nothing_of_its_own_on_files_it_cannot_open(tmp_path):
    """decord's C++ layer prints its own line when it cannot open a file; no process-wide redirection of
    stderr hides it, so such files must never reach it. Auto then reads the GIF with PyAV."""
    gif = write_video(tmp_path / "a.gif", moving_square("right", n=16))
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video\n")
    out = run_cli("classify", str(gif), str(bad), "--labels", "left,right", "--decoder", "decord", "--json",
                  "-j", "0", "-q", *TINY)
    assert out.returncode == 1
    errors = [r.get("error") for r in json.loads(out.stdout)]
    assert errors == ["not a readable video (tried decord: cannot open (unsupported, corrupt or truncated file))",
                      "not a readable video (tried decord: cannot open)"]
    assert all(line.startswith("vidprompt: ") for line in out.stderr.splitlines()), out.stderr
    auto = run_cli("classify", str(gif), "--labels", "left,right", "--json", "-q", *TINY)
    assert auto.returncode == 0 and "predictions" in json.loads(auto.stdout)[0]


def test_the_progress_bar_stays_visible_when_decoding_in_process(tmp_path):
    """-j 0 decodes in this process: nothing may redirect its stderr meanwhile."""
    clips = [str(write_video(tmp_path / f"{i}.mp4", moving_square("left", n=60, rng=np.random.default_rng(i))))
             for i in range(3)]
    out = run_cli("classify", *clips, "--labels", "left,right", "-j", "0", "-b", "1", *TINY,
                  env={"TTY_COMPATIBLE": "1", "COLUMNS": "120"})
    assert out.returncode == 0, out.stderr
    assert re.search(r"classifying.*3/3", out.stderr), out.stderr


@pytest.mark.parametrize("backend", [b for b in ("decord", "torchcodec")
                                     if decoders_module.unavailable_reason(b) is not None] or ["none-missing"])
def test_a_decoder_that_is_not_installed_is_a_usage_error(tmp_path, backend):
    if backend == "none-missing":
        pytest.skip("every decoder is installed here (tests/test_decoders.py checks the message in-process)")
    clip = write_video(tmp_path / "a.mp4", moving_square("left", n=8))
    out = run_cli("classify", str(clip), "--labels", "a,b", "--decoder", backend, *TINY)
    lines = [line for line in out.stderr.splitlines() if "--pretrained none" not in line]
    assert out.returncode == 2 and len(lines) == 1
    assert lines[0].startswith(f"vidprompt: error: --decoder {backend}: {backend} is ")
    assert "install it with: pip install" in lines[0]


OTHER_BACKENDS = [b for b in ("decord", "torchcodec") if decoders_module.unavailable_reason(b) is None]


@pytest.mark.skipif(not OTHER_BACKENDS, reason="PyAV is the only decoder installed: nothing to switch to")
def test_switching_decoder_keeps_eval_and_index_work(tmp_path):
    """The decoder is not part of a run's identity (every backend gives the same frames): an eval resumed
    with another --decoder continues instead of refusing, and an index rerun embeds nothing again."""
    other = OTHER_BACKENDS[0]
    from media import motion_class_folders

    data = motion_class_folders(tmp_path / "data", per_class=2, n=24, corrupt=False)
    args = ["--data", str(data), "-q", "-j", "0", "--frames", "4", *TINY]
    first = run_cli("eval", *args, "--out", str(tmp_path / "report"), "--decoder", "pyav", "--json")
    assert first.returncode == 0, first.stderr
    again = run_cli("eval", *args, "--out", str(tmp_path / "report"), "--decoder", other, "--json")
    assert again.returncode == 0, again.stderr
    assert "resuming: 6 of 6 videos already in" in again.stderr
    assert json.loads(again.stdout)["metrics"] == json.loads(first.stdout)["metrics"]

    index = ["index", str(data), "--out", str(tmp_path / "lib"), "-q", "-j", "0", "--json", *TINY]
    built = run_cli(*index, "--decoder", "pyav")
    assert built.returncode == 0 and json.loads(built.stdout)["added"] == 6, built.stderr
    rerun = run_cli(*index, "--decoder", other)
    assert rerun.returncode == 0 and json.loads(rerun.stdout)["unchanged"] == 6, rerun.stdout


def test_localize_windows_follow_presentation_time_on_variable_frame_rate(tmp_path, tiny_config, monkeypatch):
    """Two seconds of red at 10 fps, then half a second of blue at 40 fps: a window over [2.0, 2.5) s holds
    the 20 blue frames, which a frame-rate estimate would put elsewhere."""
    from vidprompt import load_classifier
    from vidprompt.localization import SlidingWindows
    from vidprompt.video.reader import VideoReader

    frames = np.concatenate([solid_video((220, 30, 30), n=20, h=48, w=64),
                             solid_video((30, 30, 220), n=20, h=48, w=64)])
    times = np.concatenate([np.arange(20) * 0.1, 2.0 + np.arange(20) * 0.025])
    path = str(write_video(tmp_path / "vfr.mp4", frames, times=times))
    calls = []
    real = VideoReader.decode
    monkeypatch.setattr(VideoReader, "decode", lambda reader, idx: calls.append(np.asarray(idx).copy())
                        or real(reader, idx))
    clf = load_classifier(tiny_config, "none", device="cpu", num_workers=0)
    windows = SlidingWindows(clf, path, window=0.5, stride=0.5)
    assert windows.duration == pytest.approx(2.5, abs=0.03)
    list(windows.embeddings())
    # [first, stop) frames of each window; the last frame's own duration may add one window at the very end
    ranges = [(0, 5), (5, 10), (10, 15), (15, 20), (20, 40), (20, 40)][:len(windows)]
    assert len(windows) in (5, 6) and len(calls) == len(windows)
    for idx, (first, stop) in zip(calls, ranges):
        assert first <= idx.min() and idx.max() < stop and idx.size == 8
