import numpy as np
import pytest

from media import decoded_frame_index
from vidprompt.errors import UsageError, VideoError
from vidprompt.video import ViewConfig, dense_indices, load_clip_frames, sample_indices, segment_indices


def test_segment_centres_at_test_time():
    assert segment_indices(40, 8).tolist() == [2, 7, 12, 17, 22, 27, 32, 37]
    assert segment_indices(16, 4).tolist() == [2, 6, 10, 14]


def test_segment_centres_symmetric_under_time_reversal_for_40_frames():
    picked = set(segment_indices(40, 8).tolist())
    assert picked == {39 - i for i in picked}
    picked32 = set(segment_indices(32, 8).tolist())  # 32 frames with segment centres is not time-symmetric
    assert picked32 != {31 - i for i in picked32}


def test_segment_training_samples_stay_inside_their_segment():
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = segment_indices(40, 8, rng=rng)
        assert all(5 * i <= x < 5 * (i + 1) for i, x in enumerate(idx))


def test_segment_temporal_clips_shift_inside_segments():
    rows = sample_indices(40, ViewConfig(frames=4, clips=2))
    assert rows.tolist() == [[2, 12, 22, 32], [7, 17, 27, 37]]


def test_dense_window_centred_and_spread_over_clips():
    assert dense_indices(100, 4, 8).tolist() == [37, 45, 53, 61]
    rows = sample_indices(100, ViewConfig(frames=4, sampling="dense", stride=8, clips=3))
    assert rows[:, 0].tolist() == [0, 38, 75] and rows[2, -1] == 99


def test_dense_training_window_random_but_inside():
    rng = np.random.default_rng(1)
    starts = {int(dense_indices(100, 4, 8, rng=rng)[0]) for _ in range(200)}
    assert min(starts) >= 0 and max(starts) <= 100 - 25 and len(starts) > 20


@pytest.mark.parametrize("sampling", ["segment", "dense"])
def test_short_videos_repeat_frames_instead_of_failing(sampling):
    rows = sample_indices(3, ViewConfig(frames=8, sampling=sampling, stride=4, clips=2))
    assert rows.shape == (2, 8) and rows.min() >= 0 and rows.max() <= 2


def test_view_config_validation():
    with pytest.raises(UsageError, match="^crops must be 1 or 3"):  # the library names fields, not flags
        ViewConfig(crops=2)
    with pytest.raises(UsageError, match="^sampling must be"):
        ViewConfig(sampling="random")
    with pytest.raises(UsageError, match="^frames must be"):
        ViewConfig(frames=0)
    with pytest.raises(UsageError, match="at most 1024"):  # memory set by the views, bounded
        ViewConfig(frames=512, clips=2, crops=3)
    assert ViewConfig(clips=3, crops=3).num_views == 9


@pytest.mark.parametrize("name", ["index_mp4", "index_mkv", "index_avi", "index_webm", "index_mov"])
def test_decodes_the_sampled_frames_in_rgb(videos, name):
    frames = load_clip_frames(videos[name], ViewConfig(frames=8)).frames.numpy()
    assert frames.shape == (1, 8, 48, 64, 3) and frames.dtype == np.uint8
    assert [decoded_frame_index(f) for f in frames[0]] == [2, 7, 12, 17, 22, 27, 32, 37]
    r, g, b = frames[0, 0].reshape(-1, 3).mean(0)
    assert abs(g - 40) < 6 and abs(b - 200) < 6  # RGB, not BGR


def test_odd_sizes_short_and_long_clips(videos):
    assert load_clip_frames(videos["odd_size"], ViewConfig(frames=4)).frames.shape == (1, 4, 38, 66, 3)
    assert load_clip_frames(videos["portrait"], ViewConfig(frames=4)).frames.shape == (1, 4, 96, 40, 3)
    short = load_clip_frames(videos["short"], ViewConfig(frames=8)).frames.numpy()
    assert [decoded_frame_index(f) for f in short[0]] == [0] * 4 + [1] * 4
    long = load_clip_frames(videos["long"], ViewConfig(frames=8, sampling="dense", stride=4, clips=2)).frames
    assert long.shape == (2, 8, 32, 32, 3)


@pytest.mark.parametrize("name,message", [
    ("truncated", "not a readable video"),
    ("empty", "empty file"),
    ("not_video", "not a readable video"),
])
def test_broken_files_raise_one_line_video_errors(videos, name, message):
    with pytest.raises(VideoError, match=message) as info:
        load_clip_frames(videos[name], ViewConfig())
    assert "\n" not in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(VideoError, match="file not found"):
        load_clip_frames(tmp_path / "nope.mp4", ViewConfig())
    with pytest.raises(VideoError, match="folder"):
        load_clip_frames(tmp_path, ViewConfig())
