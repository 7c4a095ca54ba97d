"""Every decoding backend gives the same frames for the same indices, on every container and codec the tests
can write; fallback from one backend to the next; timing on variable frame rate; odd and damaged files.

Backends that are not installed here are skipped by name (CI runs this file with decord, without decord and
with torchcodec: see .ci/run).
"""

from __future__ import annotations

import numpy as np
import pytest

from media import decoded_frame_index, encoder_available, frame_index_video, write_video
from vidprompt.errors import UsageError, VideoError
from vidprompt.video import (BACKENDS, DecodeError, Decoder, ViewConfig, installed_backends, load_clip_frames,
                             resolve_decoder, sample_indices)
from vidprompt.video import decoders as decoders_module

N = 40  # frames in every matrix video; frame i has red level 6 i + 10 (media.frame_index_video)
VFR_TIMES = np.concatenate([np.arange(20) * 0.1, 2.0 + np.arange(20) * 0.025])  # 10 fps, then 40 fps
# name -> (file name, write_video options, encoder needed)
MATRIX = {
    "h264_mp4": ("h264.mp4", {}, "libx264"),
    "h264_bframes_gop10": ("h264_b.mp4", {"gop": 10, "bframes": 2}, "libx264"),
    "h264_mkv": ("h264.mkv", {}, "libx264"),
    "h264_bframes_mkv": ("h264_b.mkv", {"gop": 10, "bframes": 3}, "libx264"),
    "mpeg4_avi": ("mpeg4.avi", {}, "mpeg4"),
    "mpeg4_bframes_mp4": ("mpeg4_b.mp4", {"codec": "mpeg4", "gop": 12, "bframes": 2}, "mpeg4"),
    "hevc_bframes_mkv": ("hevc_b.mkv", {"codec": "libx265", "gop": 10, "bframes": 3}, "libx265"),
    "vp8_webm": ("vp8.webm", {}, "libvpx"),
    "vp9_webm": ("vp9.webm", {"codec": "libvpx-vp9"}, "libvpx-vp9"),
    "mjpeg_mov": ("mjpeg.mov", {}, "mjpeg"),
    "gif": ("anim.gif", {}, "gif"),
    "hevc_mp4": ("hevc.mp4", {"codec": "libx265"}, "libx265"),
    "av1_mkv": ("av1.mkv", {"codec": "libsvtav1"}, "libsvtav1"),
    "vfr_mp4": ("vfr.mp4", {"times": VFR_TIMES, "gop": 10, "bframes": 2}, "libx264"),
    "vfr_mkv": ("vfr.mkv", {"times": VFR_TIMES}, "libx264"),
}
# What a backend cannot read, by design of the library (decord has no GIF demuxer and an FFmpeg without
# AV1): such a file must fail cleanly with DecodeError, so `auto` falls back to the next backend.
UNSUPPORTED = {"decord": {"gif", "av1_mkv"}}
# Where a backend returns other frames than the ones asked for: decord's frame i is not the i-th frame in
# presentation order on these B-frame files (it is shifted by one or two). Kept as strict expected failures,
# so a fixed decord shows up here; `auto` puts PyAV first.
MISORDERED = {"decord": {"mpeg4_bframes_mp4", "hevc_bframes_mkv"}}
# Largest difference between two backends' RGB frames (0-255 levels): all of them convert YUV to RGB with
# FFmpeg's swscale defaults; measured 0 on every file here. The bound leaves room for FFmpeg releases.
MAX_PIXEL_DIFFERENCE = 2
MAX_MEAN_DIFFERENCE = 0.05


def needs(backend: str):
    reason = decoders_module.unavailable_reason(backend)
    return pytest.mark.skipif(reason is not None, reason=f"{backend} is {reason}")


BACKEND_PARAMS = [pytest.param(b, marks=needs(b)) for b in BACKENDS]


def matrix_params():
    for name in MATRIX:
        for backend in BACKENDS:
            marks = [needs(backend)]
            if name in MISORDERED.get(backend, ()):
                marks.append(pytest.mark.xfail(strict=True, reason=f"{backend} misorders B-frames in {name}"))
            yield pytest.param(backend, name, marks=marks, id=f"{name}-{backend}")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    made = {}
    for name, (file, options, encoder) in MATRIX.items():
        if encoder_available(encoder):
            made[name] = str(write_video(root / file, frame_index_video(N), **options))
    return made


def video(matrix, name):
    if name not in matrix:
        pytest.skip(f"PyAV here has no {MATRIX[name][2]} encoder")
    return matrix[name]


def indices_of(frames) -> list[int]:
    return [decoded_frame_index(f) for f in np.asarray(frames.cpu()).reshape(-1, *frames.shape[-3:])]


VIEWS = {
    "segment": ViewConfig(frames=8),
    "segment_3clips": ViewConfig(frames=4, clips=3),
    "dense": ViewConfig(frames=8, sampling="dense", stride=3),
    "dense_3clips": ViewConfig(frames=4, sampling="dense", stride=5, clips=3),
}


@pytest.mark.parametrize("backend,name", list(matrix_params()))
def test_every_backend_decodes_the_sampled_frames_in_rgb(matrix, backend, name):
    path = video(matrix, name)
    decoder = resolve_decoder(backend)
    if name in UNSUPPORTED.get(backend, ()):
        with pytest.raises(DecodeError):
            with decoder.open_backend(backend, path) as reader:
                reader.decode([0])
        return
    for view_name, view in VIEWS.items():
        expected = sample_indices(N, view)
        clip = load_clip_frames(path, view, decoder=decoder)
        assert clip.decoder == backend
        assert clip.frames.shape == (view.clips, view.frames, 48, 64, 3), view_name
        assert indices_of(clip.frames) == expected.reshape(-1).tolist(), view_name
    rng_frames = load_clip_frames(path, VIEWS["segment"], np.random.default_rng(7), decoder=decoder).frames
    assert indices_of(rng_frames) == sample_indices(N, VIEWS["segment"], np.random.default_rng(7)).tolist()[0]
    if name != "gif":  # GIF's 8-bit palette dithers the colours
        r, g, b = clip.frames[0, 0].float().reshape(-1, 3).mean(0).tolist()
        assert abs(g - 40) < 6 and abs(b - 200) < 6  # RGB, not BGR


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("name", ["h264_mkv", "vp8_webm", "gif", "vfr_mkv"])
def test_containers_without_a_frame_count_are_counted(matrix, backend, name):
    """MKV, WebM and GIF store no frame count in their header: the index counts the frames."""
    if name in UNSUPPORTED.get(backend, ()):
        pytest.skip(f"{backend} cannot read {name} (tested above)")
    with resolve_decoder(backend).open(video(matrix, name)) as reader:
        assert reader.num_frames == N
        assert reader.timing().num_frames == N


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("name", ["vfr_mp4", "vfr_mkv"])
def test_variable_frame_rate_timestamps_and_windows(matrix, backend, name):
    with resolve_decoder(backend).open(video(matrix, name)) as reader:
        timing = reader.timing()
        assert np.abs(timing.timestamps - VFR_TIMES).max() < 1e-3
        assert timing.duration == pytest.approx(2.5, abs=0.03)
        # Seconds are presentation time: the first second holds 10 frames, [2, 2.5) holds 20.
        assert timing.frames_between(0.0, 1.0) == (0, 10)
        assert timing.frames_between(2.0, 2.5) == (20, 40)
        first, stop = timing.frames_between(2.0, 2.5)
        assert indices_of(reader.decode(np.arange(first, stop))) == list(range(20, 40))


def test_backends_agree_pixel_for_pixel(tmp_path):
    """The decision behind caches and resumes: which backend decoded a frame does not change it, so the
    backend is not part of a feature cache key, an eval run's identity or an index's."""
    installed = [b for b in installed_backends()]
    if len(installed) < 2:
        pytest.skip(f"only {installed} installed: nothing to compare")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:72, 0:96]
    frames = np.stack([np.stack([(xx * 3 + 5 * i) % 256, (yy * 4) % 256, ((xx + yy) * 2 + 9 * i) % 256], -1)
                       + rng.integers(0, 20, size=(72, 96, 1)) for i in range(30)]).clip(0, 255)
    paths = [write_video(tmp_path / "texture.mp4", frames, gop=8, bframes=2),
             write_video(tmp_path / "texture.webm", frames),
             write_video(tmp_path / "texture_bt709.mkv", frames, bt709=True)]
    view = ViewConfig(frames=6, clips=2)
    for path in paths:
        decoded = {b: load_clip_frames(str(path), view, decoder=resolve_decoder(b)).frames.cpu().numpy()
                   .astype(np.int16) for b in installed}
        for other in installed[1:]:
            diff = np.abs(decoded[installed[0]] - decoded[other])
            assert diff.max() <= MAX_PIXEL_DIFFERENCE and diff.mean() <= MAX_MEAN_DIFFERENCE, (path, other)


def test_auto_falls_back_to_the_next_backend_and_says_which_read_the_file(matrix):
    gif = video(matrix, "gif")
    if decoders_module.unavailable_reason("decord") is not None:
        pytest.skip("decord is not installed: no backend here fails on a GIF")
    clip = load_clip_frames(gif, ViewConfig(frames=4), decoder=Decoder(("decord", "pyav")))
    assert clip.decoder == "pyav"
    assert indices_of(clip.frames) == sample_indices(N, ViewConfig(frames=4)).tolist()[0]


def test_a_file_no_backend_reads_is_one_line_naming_every_backend_tried(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    decoder = resolve_decoder("auto")
    with pytest.raises(VideoError) as info:
        load_clip_frames(str(bad), ViewConfig(), decoder=decoder)
    message = str(info.value)
    assert "\n" not in message and message.startswith("not a readable video (tried ")
    for backend in decoder.backends:
        assert f"{backend}: " in message


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_one_frame_video(tmp_path, backend):
    path = str(write_video(tmp_path / "one.mp4", frame_index_video(1)))
    for view in VIEWS.values():
        clip = load_clip_frames(path, view, decoder=resolve_decoder(backend))
        assert set(indices_of(clip.frames)) == {0}


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_a_video_whose_last_frames_are_damaged_is_sampled_within_what_decodes(tmp_path, backend):
    """The last quarter of the file overwritten with zeros (a copy that died mid-way): no error, the frames
    come from the part that decodes, in order."""
    path = write_video(tmp_path / "damaged.mkv", frame_index_video(N))
    data = bytearray(path.read_bytes())
    cut = len(data) * 3 // 4
    data[cut:] = bytes(len(data) - cut)
    path.write_bytes(bytes(data))
    clip = load_clip_frames(str(path), ViewConfig(frames=8), decoder=resolve_decoder(backend))
    got = indices_of(clip.frames)
    assert got == sorted(got) and 0 <= got[0] and got[-1] < N * 3 // 4 + 2


def test_a_missing_backend_is_a_usage_error_with_the_install_command(monkeypatch):
    monkeypatch.setitem(decoders_module._MODULES, "decord", "vidprompt_no_such_module")
    decoders_module.unavailable_reason.cache_clear()
    try:
        with pytest.raises(UsageError, match=r"^decoder decord: decord is not installed; install it with: "
                                             r"pip install decord"):
            resolve_decoder("decord")
        assert "decord" not in resolve_decoder("auto").backends
    finally:
        monkeypatch.undo()
        decoders_module.unavailable_reason.cache_clear()
    with pytest.raises(UsageError, match="^decoder must be one of auto, pyav, decord, torchcodec"):
        resolve_decoder("ffmpeg")


def test_auto_order_puts_the_fastest_backend_first_for_the_device():
    assert resolve_decoder("auto", "cpu").backends[0] == "pyav"
    assert resolve_decoder("auto", "cpu").backends == tuple(b for b in ("pyav", "torchcodec", "decord")
                                                            if b in installed_backends())
    assert not resolve_decoder("auto", "cpu").on_gpu
