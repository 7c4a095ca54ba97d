"""Decoding workers: batches come back whole, in input order, identical to in-process decoding."""

import pytest
import torch

from vidprompt.loader import VideoViews, iterate_views
from vidprompt.transforms import FramePreprocessor
from vidprompt.video import ViewConfig

# More workers than this machine's cores is the point of some cases here.
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

NAMES = ["index_mp4", "odd_size", "empty", "index_mkv", "portrait", "short", "not_video", "red", "index_webm"]


@pytest.fixture(scope="module")
def dataset(videos):
    return VideoViews([videos[name] for name in NAMES], ViewConfig(frames=4),
                      FramePreprocessor({"size": 32}))


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_batches_in_input_order_with_errors_kept_in_place(dataset, workers):
    batches = list(iterate_views(dataset, batch_size=4, num_workers=workers))
    assert [len(b) for b in batches] == [4, 4, 1]
    items = [item for batch in batches for item in batch]
    assert [item.index for item in items] == list(range(len(NAMES)))
    assert [item.path for item in items] == dataset.paths
    failed = {NAMES[item.index] for item in items if item.error is not None}
    assert failed == {"empty", "not_video"}
    reference = [dataset[i] for i in range(len(NAMES))]
    for item, expected in zip(items, reference):
        if item.error is None:
            assert item.frames.shape == (1, 4, 3, 32, 32) and item.frames.dtype == torch.uint8
            assert torch.equal(item.frames, expected.frames)


def test_more_workers_than_videos(dataset):
    batches = list(iterate_views(dataset, batch_size=16, num_workers=8))
    assert len(batches) == 1 and len(batches[0]) == len(NAMES)


def test_threaded_decoding_keeps_input_order(dataset):
    """GPU decoders decode in threads of the main process (CUDA does not survive a fork): items come back
    in input order, identical to in-process decoding."""
    from vidprompt.loader import _threaded

    items = list(_threaded(dataset, threads=3, batch_size=2))
    assert [item.index for item in items] == list(range(len(NAMES)))
    for item in items:
        expected = dataset[item.index]
        assert item.error == expected.error
        if item.error is None:
            assert torch.equal(item.frames, expected.frames) and item.decoder == "pyav"


def test_the_embedding_stream_encodes_the_decoded_and_carries_the_failed_in_order(dataset):
    """embedding.embedded: one encode call per batch with only the decoded videos; every input comes back in
    input order with its row or its error; progress counts every input once."""
    from vidprompt.embedding import decoded, embedded

    calls, counted = [], []

    def encode(frames):
        calls.append(frames.shape[0])
        return frames.flatten(1).float().mean(dim=1, keepdim=True)

    batches = list(embedded(decoded(dataset, batch_size=4, num_workers=0), encode, counted.append))
    videos = [video for batch in batches for video in batch]
    assert [video.index for video in videos] == list(range(len(NAMES)))
    assert calls == [3, 3, 1]  # "empty" and "not_video" never reach the model
    assert sum(counted) == len(NAMES)
    for video in videos:
        failed = NAMES[video.index] in ("empty", "not_video")
        assert (video.embedding is None) == failed and (video.error is not None) == failed
        if not failed:
            assert torch.equal(video.embedding, dataset[video.index].frames.flatten().float().mean()[None])
