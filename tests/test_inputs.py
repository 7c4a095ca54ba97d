from pathlib import Path

from vidprompt.inputs import expand_inputs


def touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return str(path)


def test_files_folders_globs_and_lists_in_order_without_duplicates(tmp_path):
    a = touch(tmp_path / "a.mp4")
    b = touch(tmp_path / "lib" / "B.avi")
    c = touch(tmp_path / "lib" / "deep" / "c.webm")
    touch(tmp_path / "lib" / "notes.md")  # not a video extension: ignored inside folders
    d = touch(tmp_path / "more" / "d.mkv")
    listing = tmp_path / "lists" / "clips.txt"
    listing.parent.mkdir()
    listing.write_text("# clips\n../a.mp4\n\n" + d + "\n")
    out = expand_inputs([a, str(tmp_path / "lib"), str(tmp_path / "more" / "*.mkv"), str(listing)])
    assert out == [a, b, c, d]


def test_missing_paths_and_empty_globs_are_kept_to_be_reported(tmp_path):
    out = expand_inputs([str(tmp_path / "gone.mp4"), str(tmp_path / "*.nothing")])
    assert out == [str(tmp_path / "gone.mp4"), str(tmp_path / "*.nothing")]


def test_empty_folder_is_kept_to_be_reported(tmp_path):
    assert expand_inputs([str(tmp_path)]) == [str(tmp_path)]  # one error row, not a silent nothing
    assert expand_inputs([str(tmp_path)], keep_empty=False) == []


def test_a_list_written_with_a_byte_order_mark(tmp_path):
    a = touch(tmp_path / "a.mp4")
    listing = tmp_path / "clips.txt"
    listing.write_bytes("\ufeff".encode() + b"a.mp4\n")
    assert expand_inputs([str(listing)]) == [a]
