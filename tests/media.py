"""Videos made by the tests (PyAV), so decoding is exercised on real container files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CODECS = {".mp4": "libx264", ".mkv": "libx264", ".avi": "mpeg4", ".webm": "libvpx", ".mov": "mjpeg",
          ".gif": "gif"}
PIX_FMTS = {"mjpeg": "yuvj420p", "gif": "rgb8"}


def encoder_available(codec: str) -> bool:
    import av

    try:
        av.Codec(codec, "w")
    except Exception:
        return False
    return True


def write_video(path: str | Path, frames: np.ndarray, fps: int = 25, codec: str | None = None,
                gop: int | None = None, bframes: int | None = None, times: np.ndarray | None = None,
                faststart: bool = False, bt709: bool = False) -> Path:
    """Write uint8 RGB frames ``[N, H, W, 3]`` to ``path``; the codec follows the extension.

    ``gop``: frames between key frames; ``bframes``: H.264 B-frames (frames out of decoding order);
    ``times``: presentation time of each frame in seconds (variable frame rate), else ``1 / fps`` apart;
    ``faststart``: MP4 index at the front, so the file streams over HTTP without range requests;
    ``bt709``: H.264 tagged with the HD colour matrix (as camera and phone footage is).
    """
    import av
    from fractions import Fraction

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames, dtype=np.uint8)
    n, h, w, _ = frames.shape
    codec = codec or CODECS.get(path.suffix.lower(), "libx264")
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = PIX_FMTS.get(codec, "yuv420p")
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "ultrafast" if not (gop or bframes) else "veryfast"}
            if gop:
                stream.options.update(keyint=str(gop), **{"min-keyint": str(gop), "scenecut": "0"})
            stream.options["bf"] = str(bframes or 0)
            if bt709:
                stream.options["x264-params"] = "colorprim=bt709:transfer=bt709:colormatrix=bt709"
        elif codec in ("libx265",):
            stream.options = {"crf": "12", "preset": "ultrafast", "x265-params": "log-level=none"}
        elif codec in ("mpeg4", "libvpx", "libvpx-vp9"):
            stream.bit_rate = 4_000_000
        elif codec in ("libsvtav1",):
            stream.options = {"crf": "20", "preset": "12"}
        if gop and codec != "libx264":
            stream.gop_size = gop
        if bframes and codec != "libx264":
            stream.codec_context.max_b_frames = bframes
        if times is not None:  # millisecond timestamps, kept by the encoder and the muxer
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if times is not None:
                video_frame.pts = int(round(float(times[i]) * 1000))
                video_frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_index_video(n: int = 40, h: int = 48, w: int = 64) -> np.ndarray:
    """Frame i is a flat grey of level ``6 * i`` (red) and a fixed pattern (green, blue): the decoded red
    level reveals which frame was returned, the channels reveal RGB order."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i, :, :, 0] = min(6 * i + 10, 250)
        frames[i, :, :, 1] = 40
        frames[i, :, :, 2] = 200
    return frames


def decoded_frame_index(frame: np.ndarray) -> int:
    return int(round((float(frame[..., 0].mean()) - 10) / 6))


def moving_square(direction: str, n: int = 40, size: int = 32, square: int = 8,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """A bright square crossing a dark frame; ``direction`` in right/left/down/up. Reversing the clip in
    time gives the opposite direction, so every frame occurs in both classes."""
    rng = rng or np.random.default_rng(0)
    frames = np.full((n, size, size, 3), 20, np.uint8)
    colour = rng.integers(150, 256, size=3)
    fixed = int(rng.integers(0, size - square))
    travel = size - square
    for i in range(n):
        pos = int(round(i * travel / (n - 1)))
        if direction in ("left", "up"):
            pos = travel - pos
        if direction in ("right", "left"):
            frames[i, fixed:fixed + square, pos:pos + square] = colour
        else:
            frames[i, pos:pos + square, fixed:fixed + square] = colour
    return frames


def solid_video(rgb: tuple[int, int, int], n: int = 16, h: int = 32, w: int = 32) -> np.ndarray:
    frames = np.empty((n, h, w, 3), np.uint8)
    frames[...] = np.asarray(rgb, np.uint8)
    return frames


def panning_texture(n: int, h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    """Random texture panning sideways: codec work like real footage (benchmarks)."""
    base = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 3 * i, axis=1) for i in range(n)])


def motion_class_folders(root: Path, per_class: int, n: int, directions=("left", "right", "down"),
                         corrupt: bool = True) -> Path:
    """A folder-per-class dataset ``root/moving <direction>/<direction><i>.mp4`` (clip ``i`` drawn with seed
    ``i``), plus one file in the first class that is not a video."""
    for direction in directions:
        for i in range(per_class):
            write_video(root / f"moving {direction}" / f"{direction}{i}.mp4",
                        moving_square(direction, n=n, rng=np.random.default_rng(i)))
    if corrupt:
        (root / f"moving {directions[0]}" / "corrupt.mp4").write_text("not a video\n")
    return root
