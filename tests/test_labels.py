import pytest

from vidprompt.errors import UsageError
from vidprompt.labels import (DEFAULT_TEMPLATES, check_template, label_key, load_label_set, parse_label_list,
                              read_labels_file, readable_name, resolve_labels)


@pytest.mark.parametrize("name,count,first,last", [
    ("k400", 400, "abseiling", "zumba"),
    ("k600", 600, "abseiling", "zumba"),
    ("k700", 700, "abseiling", "zumba"),
    ("ucf101", 101, "apply eye makeup", "yo yo"),
    ("hmdb51", 51, "brush hair", "wave"),
    ("ssv2", 174, "Approaching something with your camera", "Wiping something off of something"),
])
def test_builtin_label_sets_have_official_counts_and_order(name, count, first, last):
    labels = load_label_set(name)
    assert len(labels) == count
    assert labels[0] == first and labels[-1] == last
    assert len({label_key(x) for x in labels}) == count  # keys unique within a set


def test_ucf101_official_order_differs_from_python_sorted():
    labels = load_label_set("ucf101")
    # classInd.txt: 35 Hammering, 36 HammerThrow (1-based); Python's sorted() swaps them.
    assert labels[34:36] == ["hammering", "hammer throw"]
    assert labels[46:48] == ["jumping jack", "jump rope"]


def test_label_set_is_read_from_installed_package_data():
    from importlib import resources

    assert resources.files("vidprompt.label_sets").joinpath("kinetics400.txt").is_file()


def test_unknown_label_set_is_usage_error():
    with pytest.raises(UsageError, match="unknown label set 'k999'"):
        load_label_set("k999")


@pytest.mark.parametrize("a,b", [
    ("ApplyEyeMakeup", "apply eye makeup"),
    ("apply_eye_makeup", "Apply Eye-Makeup"),
    ("HandstandPushups", "HandStandPushups"),
    ("hurling (sport)", "hurling_-sport-"),
    ("massaging person's head", "massaging persons head"),
])
def test_label_key_matches_spellings_of_one_class(a, b):
    assert label_key(a) == label_key(b)


def test_label_key_keeps_different_classes_apart():
    assert label_key("jump rope") != label_key("jumping jack")


@pytest.mark.parametrize("raw,readable", [
    ("ApplyEyeMakeup", "apply eye makeup"),
    ("brush_hair", "brush hair"),
    ("YoYo", "yo yo"),
    ("passing American football (in game)", "passing American football (in game)"),
    ("PlayingDaf", "playing daf"),
    ("Hammering", "hammering"),
    ("hurling_-sport-", "hurling (sport)"),
    ("passing_American_football_-in_game-", "passing American football (in game)"),
])
def test_readable_name(raw, readable):
    assert readable_name(raw) == readable


def test_parse_label_list_trims():
    assert parse_label_list(" surfing, cooking ,playing guitar") == ["surfing", "cooking", "playing guitar"]


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("a,,b", "empty label"),
    ("surfing, surfing ", "duplicate label 'surfing'"),
    ("Cooking,cooking", "same as 'Cooking'"),
    ("a, ?!", "no letters"),
])
def test_bad_label_lists_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=message):
        parse_label_list(text)


def test_labels_file_skips_comments_and_blanks(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("# my classes\nwhisking eggs\n\nchopping garlic  # knife work\n")
    assert read_labels_file(path) == ["whisking eggs", "chopping garlic"]
    path.write_bytes("\ufeffwhisking eggs\r\nchopping garlic\r\n".encode())  # as Notepad saves it
    assert read_labels_file(path) == ["whisking eggs", "chopping garlic"]


def test_labels_file_missing_or_empty(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        read_labels_file(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(UsageError, match="empty"):
        read_labels_file(tmp_path / "empty.txt")


def test_resolve_labels_takes_exactly_one_source():
    assert resolve_labels(labels="a,b") == ["a", "b"]
    assert len(resolve_labels(label_set="hmdb51")) == 51
    with pytest.raises(UsageError, match="only one"):
        resolve_labels(labels="a", label_set="k400")
    with pytest.raises(UsageError, match="no labels"):
        resolve_labels()
    assert resolve_labels(required=False) is None


def test_templates():
    assert all(t.count("{}") == 1 for t in DEFAULT_TEMPLATES)
    with pytest.raises(UsageError):
        check_template("a video without a slot")
    with pytest.raises(UsageError):
        check_template("{} and {}")
