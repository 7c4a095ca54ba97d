"""Which decoding backend reads a video: what is installed, what ``decoder`` asks for, and the fallback
from one backend to the next when a file defeats the first.

    decoder = resolve_decoder("auto", device="cuda")   # torchcodec (NVDEC) first when installed
    with decoder.open("clip.mp4") as reader:
        frames = reader.decode([0, 10, 20])

``auto`` puts the fastest installed backend for the device first (``benchmarks/decode.py`` measures the
order) and keeps the others behind it for files it cannot read.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch

from ..errors import OptionValueError, UsageError, VideoError, out_of_range
from .reader import VideoReader
from .source import check_source

BACKENDS = ("pyav", "decord", "torchcodec")
DECODER_CHOICES = ("auto",) + BACKENDS
# Fastest first, from benchmarks/decode.py on the CPU (geometric means against decord: PyAV 1.26x,
# torchcodec 1.13x; decord also misreads some HEVC files); on a GPU, NVDEC decoding frees the CPU.
AUTO_ORDER = {"cpu": ("pyav", "torchcodec", "decord"), "cuda": ("torchcodec", "pyav", "decord")}
INSTALL_HINTS = {
    "pyav": 'pip install av',
    "decord": "pip install decord (wheels exist for Linux x86_64 and Windows only)",
    "torchcodec": 'pip install "vidprompt[gpu]", with FFmpeg\'s shared libraries on the system '
                  "(apt install ffmpeg, brew install ffmpeg or conda install ffmpeg)",
}
_MODULES = {"pyav": "av", "decord": "decord", "torchcodec": "torchcodec.decoders"}

T = TypeVar("T")


@functools.lru_cache(maxsize=None)
def unavailable_reason(backend: str) -> str | None:
    """``None`` when ``backend`` imports here, else why not (torchcodec fails to import without FFmpeg's
    shared libraries, not only when it is missing).

    PyAV is always imported first: decord loads its own FFmpeg and libvpx into the process's global symbol
    scope, and PyAV's libraries loaded after that call into them (VP8 encoding fails, for one)."""
    if backend != "pyav":
        unavailable_reason("pyav")
    try:
        importlib.import_module(_MODULES[backend])
    except ImportError:
        return "not installed"
    except Exception as exc:  # a native library that does not load
        return f"does not load ({type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''})"
    return None


def installed_backends() -> tuple[str, ...]:
    return tuple(b for b in BACKENDS if unavailable_reason(b) is None)


@dataclass(frozen=True)
class Decoder:
    """Backends to try, in order, and the device torchcodec decodes on."""

    backends: tuple[str, ...]
    device: str = "cpu"

    @property
    def on_gpu(self) -> bool:
        """Frames come out on the GPU, so decoding must run in the main process (threads, not workers)."""
        return self.backends[0] == "torchcodec" and torch.device(self.device).type == "cuda"

    def open_backend(self, backend: str, source: str, threads: int = 0) -> VideoReader:
        if backend == "pyav":
            from .pyav_reader import PyAVReader

            return PyAVReader(source, threads=threads)
        if backend == "decord":
            from .decord_reader import DecordReader

            return DecordReader(source, threads=threads)
        from .torchcodec_reader import TorchCodecReader

        return TorchCodecReader(source, threads=threads, device=self.device)

    def attempt(self, source: str, work: Callable[[VideoReader], T], threads: int = 0) -> tuple[T, str]:
        """``work(reader)`` with the first backend that opens ``source`` and gets through it; returns its
        result and the backend's name. When all fail: one :class:`VideoError` naming what each said."""

        def run(backend: str) -> tuple[T, str]:
            with self.open_backend(backend, source, threads) as reader:
                return work(reader), backend

        return self._first_that_works(source, run)

    def open(self, source: str, threads: int = 0) -> VideoReader:
        """An open reader from the first backend that can open ``source`` (the caller closes it)."""
        return self._first_that_works(source, lambda backend: self.open_backend(backend, source, threads))

    def _first_that_works(self, source: str, fn: Callable[[str], T]) -> T:
        check_source(source)
        failures = []
        for backend in self.backends:
            try:
                return fn(backend)
            except VideoError as exc:
                failures.append(f"{backend}: {exc}")
            except Exception as exc:  # a native library's surprise must not end a batch
                failures.append(f"{backend}: {type(exc).__name__}")
        raise VideoError(f"not a readable video (tried {'; '.join(failures)})")


def resolve_decoder(name: str = "auto", device: str | torch.device = "cpu") -> Decoder:
    """``name`` (the ``decoder`` setting) -> the backends to try. A named backend is used alone and must be
    installed (an error on ``decoder`` with the install command otherwise); ``auto`` orders the installed ones
    for the device."""
    key = (name or "auto").strip().lower()
    device = torch.device(device)
    if key not in DECODER_CHOICES:
        raise out_of_range("decoder", f"'{name}'", f"one of {', '.join(DECODER_CHOICES)}")
    where = "cuda:" + str(device.index or 0) if device.type == "cuda" else "cpu"
    if key != "auto":
        reason = unavailable_reason(key)
        if reason is not None:
            raise OptionValueError("decoder", f"decoder {key}: {key} is {reason}; install it with: "
                                              f"{INSTALL_HINTS[key]}")
        return Decoder((key,), where)
    order = AUTO_ORDER["cuda" if device.type == "cuda" else "cpu"]
    backends = tuple(b for b in order if unavailable_reason(b) is None)
    if not backends:
        raise UsageError(f"no video decoder is installed; install one with: {INSTALL_HINTS['pyav']}")
    return Decoder(backends, where)
