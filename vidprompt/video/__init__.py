"""Video input: where videos come from, which frames to take, and the decoding backends behind one interface.

    from vidprompt.video import ViewConfig, load_clip_frames, resolve_decoder
    clip = load_clip_frames("a.mp4", ViewConfig(frames=8), decoder=resolve_decoder("auto"))
    clip.frames   # uint8 [clips, frames, H, W, 3]; clip.decoder names the backend that read it

| module | job |
|---|---|
| ``source`` | local paths and http(s) URLs, video file extensions |
| ``sampling`` | frame indices: segment / dense sampling, temporal clips (``ViewConfig``) |
| ``reader`` | the interface: ``VideoReader`` (frame count, timing, decode) and ``VideoTiming`` |
| ``pyav_reader``, ``decord_reader``, ``torchcodec_reader`` | the backends |
| ``decoders`` | what is installed, ``--decoder`` resolution, fallback from one backend to the next |
| ``frames`` | a video's sampled views through whichever backend reads it |
| ``timing`` | a video's time axis: ``probe_video`` (frame times) and sliding ``Window`` spans |
"""

from .decoders import BACKENDS, DECODER_CHOICES, Decoder, installed_backends, resolve_decoder
from .frames import DecodedClip, decodable_length, load_clip_frames, read_views
from .reader import DecodeError, VideoReader, VideoTiming
from .sampling import SAMPLING_MODES, ViewConfig, ViewError, dense_indices, sample_indices, segment_indices
from .source import VIDEO_EXTENSIONS, absolute_source, check_source, is_url
from .timing import Window, check_window, probe_video, window_spans

__all__ = [
    "BACKENDS", "DECODER_CHOICES", "Decoder", "installed_backends", "resolve_decoder", "DecodedClip",
    "decodable_length", "load_clip_frames", "read_views", "DecodeError", "VideoReader", "VideoTiming",
    "SAMPLING_MODES", "ViewConfig", "ViewError", "dense_indices", "sample_indices", "segment_indices", "VIDEO_EXTENSIONS",
    "absolute_source", "check_source", "is_url", "Window", "check_window", "probe_video", "window_spans",
]
