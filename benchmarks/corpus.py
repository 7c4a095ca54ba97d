"""A generated video corpus that decodes like real footage, shared by ``decode.py`` and ``pipeline.py``.

Content: a smooth colour backdrop under a slow camera pan, fine grey detail drifting upwards over it (so no
block is a pure translation of the last frame), lighting that drifts across the frame, a striped object on
a curved path, and mild sensor noise: H.264 at crf 23 comes out near 3 Mbit/s at 720p, like phone or
web footage. Pure noise would make every codec unrealistically expensive; flat colour unrealistically cheap.

Encodings (one file per resolution x key-frame interval x codec, 30 fps):

| codec | container | settings |
|---|---|---|
| h264 | .mp4 | libx264 preset veryfast, crf 23, keyint = min-keyint = GOP, scenecut 0, x264's default B-frames |
| hevc | .mp4 | libx265 preset veryfast, crf 26, same fixed GOP, x265's default B-frames, tag hvc1 |
| mpeg4 | .avi | FFmpeg's MPEG-4 part 2 (no B-frames, the encoder's default), ~0.1 bit per pixel |
| vp9 | .webm | libvpx-vp9 crf 32, deadline good, cpu-used 8 (alt-ref frames on, as libvpx defaults) |
| av1 | .mp4 | libsvtav1 preset 12, crf 35 |

Files are cached by name (the name holds every setting), so a second run encodes nothing.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS = 30
RESOLUTIONS = {"240p": (426, 240), "360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
GOPS = (12, 60, 250)
CONTAINERS = {"h264": ".mp4", "hevc": ".mp4", "mpeg4": ".avi", "vp9": ".webm", "av1": ".mp4"}
ENCODERS = {"h264": "libx264", "hevc": "libx265", "mpeg4": "mpeg4", "vp9": "libvpx-vp9", "av1": "libsvtav1"}
# Which resolutions and GOPs each codec is made at: H.264 at all; the slow encoders (x265 and libvpx take
# ~30 s a 720p file on 2 cores) at 720p with GOP 60 only, to keep the corpus near 4 minutes to make.
ALL = GOPS
DEFAULT_ROWS = {"h264": {"240p": ALL, "360p": ALL, "720p": ALL, "1080p": ALL},
                "hevc": {"360p": ALL, "720p": (60,)},
                "mpeg4": {"240p": ALL, "360p": ALL, "720p": ALL},
                "vp9": {"360p": ALL, "720p": (60,)},
                "av1": {"360p": ALL, "720p": ALL}}
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vidprompt-bench" / "decode"
DETAIL = 25  # amplitude of the drifting fine detail (grey levels)
NOISE = 2.0  # sensor noise, standard deviation in grey levels
CONTENT_VERSION = 1  # bump when the content or the settings change, so cached files are remade


@dataclass(frozen=True)
class Spec:
    resolution: str
    gop: int
    codec: str
    seconds: float = 10.0

    @property
    def size(self) -> tuple[int, int]:
        return RESOLUTIONS[self.resolution]

    @property
    def filename(self) -> str:
        return (f"v{CONTENT_VERSION}-{self.resolution}-gop{self.gop}-{self.codec}-{self.seconds:g}s"
                f"{CONTAINERS[self.codec]}")


def default_specs(resolutions=None, gops=GOPS, codecs=tuple(DEFAULT_ROWS), seconds: float = 10.0) -> list[Spec]:
    """The default rows of each codec, restricted to ``resolutions`` (all when ``None``) and ``gops``."""
    specs = []
    for codec in codecs:
        for res, made_at in DEFAULT_ROWS[codec].items():
            if resolutions and res not in resolutions:
                continue
            specs.extend(Spec(res, gop, codec, seconds) for gop in made_at if gop in gops)
    return specs


# --- content ---------------------------------------------------------------------------------------------------
def _smooth_field(rng: np.random.Generator, h: int, w: int, cell: int, channels: int = 3) -> np.ndarray:
    """A smooth random field ``[h, w, channels]`` in [-1, 1]: random values every ``cell`` pixels,
    interpolated bilinearly (separably: rows, then columns)."""
    gh, gw = h // cell + 2, w // cell + 2
    grid = rng.uniform(-1, 1, size=(gh, gw, channels)).astype(np.float32)
    ys = np.linspace(0, gh - 1.001, h, dtype=np.float32)
    xs = np.linspace(0, gw - 1.001, w, dtype=np.float32)
    y0, fy = ys.astype(np.int64), (ys % 1)[:, None, None]
    x0, fx = xs.astype(np.int64), (xs % 1)[None, :, None]
    rows = grid[y0] * (1 - fy) + grid[y0 + 1] * fy  # [h, gw, 3]
    return rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx


def synthetic_frames(width: int, height: int, count: int, seed: int = 0):
    """Yield ``count`` uint8 RGB frames ``[height, width, 3]``: one buffer, overwritten by the next frame
    (copy a frame to keep it). The scene is laid out in units of the frame height, so every resolution
    shows the same picture."""
    rng = np.random.default_rng(seed)
    # Two layers moving differently (a panning backdrop, fine detail drifting upwards like water or
    # foliage), so no block is a pure translation of the previous frame, as in real footage.
    pan = max(1, round(height / 180))  # pixels per frame, the same speed at every resolution
    rise = max(1, round(height / 360))
    span = width + pan * count
    backdrop = (105 + 50 * _smooth_field(rng, height, span, max(8, height // 4))
                + 25 * _smooth_field(rng, height, span, max(3, height // 40), channels=1))
    backdrop = np.clip(backdrop, 0, 190).astype(np.uint8, order="C")
    detail = DETAIL * (1 + _smooth_field(rng, height + rise * count, width, max(2, height // 150), channels=1)) / 2
    detail = np.repeat(detail.astype(np.uint8), 3, axis=2)  # grey, at most DETAIL; RGB so numpy adds it fast
    xs = np.arange(width) / height
    ys = np.arange(height)[:, None] / height
    # The object: a striped disc of radius r, drawn in a (2r+1)^2 box that moves around.
    r = max(4, height // 10)
    oy, ox = np.mgrid[-r:r + 1, -r:r + 1]
    disc = (ox ** 2 + oy ** 2) <= r * r
    stripes = ((np.sin((ox + oy) * (6.0 / r)) > 0)[..., None] * np.array([170, 40, 20])
               + np.array([60, 150, 200])).astype(np.uint8)
    noise = [np.clip(rng.normal(8, NOISE, size=(height, width, 3)), 0, 16).astype(np.uint8) for _ in range(8)]
    tint = np.array([1.0, 0.8, 0.6])  # warm light along x, grey along y
    frame = np.empty((height, width, 3), np.uint8)  # reused: each frame is overwritten by the next
    rows = frame.reshape(height, width * 3)
    for i in range(count):
        t = i / FPS
        # 190 + DETAIL + 16 (noise) + 24 (light) <= 255: uint8 sums never wrap.
        np.add(backdrop[:, i * pan:i * pan + width], detail[i * rise:i * rise + height], out=frame)
        frame += noise[(i * 5) % len(noise)]
        # Lighting drifting across the frame, in [0, 24]; shaped [1, w*3] and [h, 1] so numpy adds it fast.
        light_x = (6 * (1 + np.sin(2 * np.pi * (0.4 * xs - t / 6))))[:, None] * tint
        light_y = 6 * (1 + np.sin(2 * np.pi * (0.3 * ys - t / 9)))
        rows += light_x.astype(np.uint8).reshape(1, -1)
        rows += light_y.astype(np.uint8)
        cy = int((0.5 + 0.3 * np.sin(2 * np.pi * t / 7)) * (height - 2 * r - 1)) + r
        cx = int((0.5 + 0.4 * np.sin(2 * np.pi * t / 5 + 1)) * (width - 2 * r - 1)) + r
        box = frame[cy - r:cy + r + 1, cx - r:cx + r + 1]
        box[disc] = stripes[disc]
        yield frame


# --- encoding --------------------------------------------------------------------------------------------------
def _configure(stream, spec: Spec) -> None:
    width, height = spec.size
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    gop = str(spec.gop)
    ctx = stream.codec_context
    ctx.gop_size = spec.gop
    if spec.codec == "h264":
        stream.options = {"preset": "veryfast", "crf": "23",
                          "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
    elif spec.codec == "hevc":
        stream.options = {"preset": "veryfast", "crf": "26", "tag": "hvc1",
                          "x265-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:log-level=error"}
    elif spec.codec == "mpeg4":
        ctx.bit_rate = int(0.1 * width * height * FPS)
        stream.options = {"g": gop}
    elif spec.codec == "vp9":
        ctx.bit_rate = 0
        stream.options = {"crf": "32", "b": "0", "deadline": "good", "cpu-used": "8", "row-mt": "1",
                          "g": gop, "keyint_min": gop}
    elif spec.codec == "av1":
        stream.options = {"preset": "12", "crf": "35", "svtav1-params": f"keyint={gop}"}
    else:
        raise ValueError(f"unknown codec {spec.codec}")


def encode(spec: Spec, path: Path, seed: int = 0) -> Path:
    import av

    tmp = path.with_name(path.name + ".part" + path.suffix)
    width, height = spec.size
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream(ENCODERS[spec.codec], rate=FPS)
        _configure(stream, spec)
        for frame in synthetic_frames(width, height, int(round(spec.seconds * FPS)), seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)  # a run stopped half-way leaves no half file under the cached name
    return path


def available_codecs() -> tuple[str, ...]:
    import av

    found = []
    for codec, encoder in ENCODERS.items():
        try:
            av.codec.Codec(encoder, "w")
            found.append(codec)
        except Exception:
            pass
    return tuple(found)


def ensure_corpus(specs: list[Spec], cache: Path | None, log=print) -> dict[Spec, Path]:
    """Encode the specs not already in ``cache`` (default: a fresh temporary folder) -> path per spec."""
    cache = Path(cache) if cache else Path(tempfile.mkdtemp(prefix="vidprompt-decode-"))
    cache.mkdir(parents=True, exist_ok=True)
    paths = {}
    made, start = 0, time.perf_counter()
    for spec in specs:
        path = cache / spec.filename
        if not path.exists():
            t0 = time.perf_counter()
            encode(spec, path)
            made += 1
            log(f"  encoded {path.name} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
        paths[spec] = path
    if made:
        log(f"  corpus: {made} files encoded in {time.perf_counter() - start:.0f} s, in {cache}")
    return paths
