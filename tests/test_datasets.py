"""Dataset parsers on miniature on-disk replicas of each format (empty files stand in for videos)."""

from __future__ import annotations

import csv
import json
import logging
import random
from importlib import resources
from pathlib import Path

import pytest

from vidprompt.datasets import (
    DATASET_PRESETS, LabelMatcher, VideoDataset, VideoSample, get_preset, load_dataset, load_folder,
    load_hmdb51, load_kinetics, load_list_file, load_ssv2, load_ucf101,
)
from vidprompt.datasets import files as files_module
from vidprompt.errors import UsageError
from vidprompt.labels import load_label_set, readable_name

UCF = load_label_set("ucf101")
K400 = load_label_set("k400")
SSV2 = load_label_set("ssv2")


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def raw_label_file(name: str) -> list[str]:
    text = resources.files("vidprompt.label_sets").joinpath(name).read_text("utf-8")
    return text.splitlines()


# --- built-in label sets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, count", [("k400", 400), ("k600", 600), ("k700", 700), ("ucf101", 101),
                                         ("hmdb51", 51), ("ssv2", 174)])
def test_preset_label_set_counts(name, count):
    assert len(load_label_set(get_preset(name).label_set)) == count


def test_official_order_is_not_python_sorted_order():
    official = raw_label_file("ucf101.txt")
    assert official[34:36] == ["Hammering", "HammerThrow"]
    assert official[46:48] == ["JumpingJack", "JumpRope"]
    assert sorted(official)[34:36] == ["HammerThrow", "Hammering"]  # why folder order can't be trusted
    assert official == sorted(official, key=str.casefold)
    assert UCF[34:37] == ["hammering", "hammer throw", "handstand pushups"]
    assert K400[0] == "abseiling" and K400[-1] == "zumba"
    assert SSV2[0] == "Approaching something with your camera"
    assert SSV2[173] == "Wiping something off of something"
    assert load_label_set("hmdb51")[0] == "brush hair"


def test_presets_have_views_and_label_sets():
    assert set(DATASET_PRESETS) == {"k400", "k600", "k700", "ucf101", "hmdb51", "ssv2"}
    for preset in DATASET_PRESETS.values():
        assert preset.views.frames == 8 and preset.views.num_views == 3
        assert preset.views.sampling == "segment"
    assert DATASET_PRESETS["k400"].views.clips == 3 and DATASET_PRESETS["ssv2"].views.crops == 3


# --- label matching ---------------------------------------------------------------------------------------

def test_label_matcher_normalises_and_names_unknown_classes():
    matcher = LabelMatcher(UCF)
    assert matcher.index("ApplyEyeMakeup") == 0
    assert matcher.index("HandStandPushups") == matcher.index("handstand_pushups") == 36
    with pytest.raises(UsageError) as err:
        matcher.require(["Hammering", "HammerThrowing", "Zorbing"], where="my.csv")
    message = str(err.value)
    assert "my.csv" in message and "'HammerThrowing'" in message and "'Zorbing'" in message
    assert "2 classes" in message and "'hammer throw'" in message  # close names are suggested


# --- folder per class -------------------------------------------------------------------------------------

def test_folder_without_label_list(tmp_path, caplog):
    for rel in ["HammerThrow/a.mp4", "Hammering/b.avi", "Hammering/sub/deeper/c.MP4", "ApplyEyeMakeup/d.webm",
                "ApplyEyeMakeup/notes.txt", "ApplyEyeMakeup/._d.webm", "loose.mp4"]:
        touch(tmp_path / rel)
    (tmp_path / "EmptyClass").mkdir()
    with caplog.at_level(logging.WARNING):
        ds = load_folder(tmp_path)
    folders = ["ApplyEyeMakeup", "Hammering", "HammerThrow"]  # case-insensitive folder order
    assert ds.classes == [readable_name(f) for f in folders]
    assert ds.classes[0] == "apply eye makeup" and ds.classes[2] == "hammer throw"
    assert "EmptyClass" in caplog.text and "loose" not in ds.classes
    assert list(ds.class_counts().values()) == [1, 2, 1]
    assert {s.path.name for s in ds.samples if s.index == 1} == {"b.avi", "c.MP4"}
    assert all(ds.classes[s.index] == s.label for s in ds.samples)


def test_folder_matches_official_index_not_sorted_folder_index(tmp_path):
    for cls in ["HammerThrow", "Hammering", "JumpRope", "JumpingJack", "HandstandPushups"]:
        touch(tmp_path / cls / f"v_{cls}_g01_c01.avi")
    assert sorted(p.name for p in tmp_path.iterdir())[:2] == ["HammerThrow", "Hammering"]
    ds = load_folder(tmp_path, label_list=UCF)
    by_folder = {s.path.parent.name: s for s in ds.samples}
    official = raw_label_file("ucf101.txt")
    for folder, sample in by_folder.items():
        assert sample.index == official.index(folder)
        assert sample.label == UCF[sample.index]
    assert by_folder["HammerThrow"].index == 35 and by_folder["Hammering"].index == 34
    assert ds.classes == UCF and len(ds.class_counts()) == 101


def test_folder_unknown_class_is_a_usage_error(tmp_path):
    touch(tmp_path / "Hammering" / "a.avi")
    touch(tmp_path / "Underwater Basket Weaving" / "b.avi")
    with pytest.raises(UsageError, match="Underwater Basket Weaving"):
        load_folder(tmp_path, label_list=UCF)


def test_folder_merges_names_that_normalise_alike(tmp_path):
    touch(tmp_path / "HandstandPushups" / "a.avi")
    touch(tmp_path / "HandStandPushups" / "b.avi")
    ds = load_folder(tmp_path)
    assert len(ds.classes) == 1 and len(ds) == 2


def test_folder_without_videos_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no class folders with videos"):
        load_folder(tmp_path)


# --- list files -------------------------------------------------------------------------------------------

def test_mmaction_list_file(tmp_path):
    touch(tmp_path / "videos" / "a clip.mp4")
    touch(tmp_path / "videos" / "b.mp4")
    listing = tmp_path / "val_list.txt"
    listing.write_text("# comment\nvideos/a clip.mp4 35\n\nvideos/b.mp4 34\nvideos/gone.mp4 0\n")
    ds = load_list_file(listing, label_list=UCF)
    assert [(s.path.name, s.index, s.label) for s in ds.samples] == [
        ("a clip.mp4", 35, "hammer throw"), ("b.mp4", 34, "hammering")]
    assert ds.missing == ["videos/gone.mp4"]
    with pytest.raises(UsageError, match="give the class list it points into"):
        load_list_file(listing)
    listing.write_text("videos/b.mp4 101\n")
    with pytest.raises(UsageError, match="outside the label list"):
        load_list_file(listing, label_list=UCF)


def test_csv_list_file_with_quoted_names(tmp_path):
    root = tmp_path / "root"
    names = ["Touching (without moving) part of something",
             "Poking something so lightly that it doesn't or almost doesn't move",
             "Laying something on the table on its side, not upright"]
    listing = tmp_path / "clips.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        for i, label in enumerate(names):
            writer.writerow([f"c{i}.webm", label])
            touch(root / f"c{i}.webm")
        writer.writerow(["c3.webm", str(SSV2.index(names[0]))])  # an index when a label list is given
        touch(root / "c3.webm")
    assert '"Laying something on the table on its side, not upright"' in listing.read_text()

    ds = load_list_file(listing, root=root, label_list=SSV2)
    assert [SSV2[s.index] for s in ds.samples] == names + [names[0]]
    assert all(s.label == SSV2[s.index] for s in ds.samples)

    no_index = tmp_path / "names.csv"
    no_index.write_text("".join(line + "\n" for line in listing.read_text().splitlines()[1:4]))
    ds = load_list_file(no_index, root=root)  # no header, no label list: classes from the names
    assert ds.classes == sorted(names, key=str.casefold)
    with pytest.raises(UsageError, match="give the class list it points into"):
        load_list_file(listing, root=root)  # the integer label needs a list


def test_csv_unknown_class(tmp_path):
    touch(tmp_path / "a.mp4")
    listing = tmp_path / "x.csv"
    listing.write_text("a.mp4,hammering\na.mp4,Quidditch\n")
    with pytest.raises(UsageError, match="Quidditch"):
        load_list_file(listing, label_list=UCF)


# --- Kinetics ---------------------------------------------------------------------------------------------

def write_kinetics_csv(path: Path, rows, header=("label", "youtube_id", "time_start", "time_end", "split")):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


KINETICS_ROWS = [
    ("abseiling", "-_aB3_x-9Zq", 14, 24, "val"),
    ("hurling (sport)", "x_y-z_1-2_3", 5, 15, "val"),
    ("massaging person's head", "AbCdEfGhIjK", 0, 10, "val"),
    ("passing American football (in game)", "MiSsInG-_01", 1, 11, "val"),
]


def kinetics_root(tmp_path: Path) -> Path:
    root = tmp_path / "k400"
    touch(root / "abseiling" / "-_aB3_x-9Zq_000014_000024.mp4")  # id with '_' and '-', class folder
    touch(root / "hurling_-sport-" / "x_y-z_1-2_3_000005_000015.mp4")  # folder-style class name
    touch(root / "AbCdEfGhIjK_000000_000010.mkv")  # flat
    return root


def test_kinetics_clips_found_by_youtube_id_and_missing_listed(tmp_path, caplog):
    root = kinetics_root(tmp_path)
    annotations = write_kinetics_csv(tmp_path / "validate.csv", KINETICS_ROWS)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("k400", root=root, annotations=annotations)
    assert ds.missing == ["MiSsInG-_01_000001_000011"]
    assert "1 of 4" in caplog.text
    assert len(ds) == 3 and ds.classes == K400
    found = {s.path.name: (s.label, s.index) for s in ds.samples}
    assert found["-_aB3_x-9Zq_000014_000024.mp4"] == ("abseiling", K400.index("abseiling"))
    assert found["x_y-z_1-2_3_000005_000015.mp4"] == ("hurling (sport)", K400.index("hurling (sport)"))
    assert found["AbCdEfGhIjK_000000_000010.mkv"][1] == K400.index("massaging person's head")


def test_kinetics_prefers_exact_clip_name(tmp_path):
    root = tmp_path / "clips"
    touch(root / "AbCdEfGhIjK_000000_000010.mp4")
    touch(root / "AbCdEfGhIjK_000030_000040.mp4")
    annotations = write_kinetics_csv(tmp_path / "v.csv", [("zumba", "AbCdEfGhIjK", 30, 40, "val")])
    (sample,) = load_kinetics(annotations, root, label_list=K400).samples
    assert sample.path.name == "AbCdEfGhIjK_000030_000040.mp4"


def test_kinetics_other_clip_of_the_same_video_is_not_taken_for_a_missing_one(tmp_path):
    root = tmp_path / "clips"
    touch(root / "AbCdEfGhIjK_000030_000040.mp4")
    touch(root / "OnlyIdName1.mp4")  # a copy that names clips by id alone
    annotations = write_kinetics_csv(tmp_path / "v.csv", [
        ("zumba", "AbCdEfGhIjK", 30, 40, "val"), ("zumba", "AbCdEfGhIjK", 50, 60, "val"),
        ("yoga", "OnlyIdName1", 0, 10, "val")])
    ds = load_kinetics(annotations, root, label_list=K400)
    assert sorted(s.path.name for s in ds.samples) == ["AbCdEfGhIjK_000030_000040.mp4", "OnlyIdName1.mp4"]
    assert ds.missing == ["AbCdEfGhIjK_000050_000060"]  # counted, not scored twice from the 30-40 clip


def test_kinetics_errors(tmp_path):
    root = kinetics_root(tmp_path)
    no_label = write_kinetics_csv(tmp_path / "test.csv", [("AbCdEfGhIjK", 0, 10, "test")],
                                  header=("youtube_id", "time_start", "time_end", "split"))
    with pytest.raises(UsageError, match="no 'label' column"):
        load_dataset("k400", root=root, annotations=no_label)
    unknown = write_kinetics_csv(tmp_path / "u.csv", [("extreme ironing", "AbCdEfGhIjK", 0, 10, "val")])
    with pytest.raises(UsageError, match="extreme ironing"):
        load_dataset("k400", root=root, annotations=unknown)
    all_missing = write_kinetics_csv(tmp_path / "m.csv", [("zumba", "zzzzzzzzzzz", 0, 10, "val")])
    with pytest.raises(UsageError, match="none of the 1 annotated videos"):
        load_dataset("k400", root=root, annotations=all_missing)
    with pytest.raises(UsageError, match="annotations"):
        load_dataset("k400", root=root)


# --- UCF101 -----------------------------------------------------------------------------------------------

UCF_TRAIN = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "HammerThrow/v_HammerThrow_g08_c01.avi",
             "Hammering/v_Hammering_g08_c01.avi", "HandstandPushups/v_HandStandPushups_g08_c01.avi"]
UCF_TEST = ["HammerThrow/v_HammerThrow_g01_c01.avi", "Hammering/v_Hammering_g01_c01.avi",
            "HandstandPushups/v_HandStandPushups_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g02_c01.avi",
            "YoYo/v_YoYo_g01_c01.avi"]


def ucf_replica(tmp_path: Path, handstand_folder: str = "HandstandPushups") -> Path:
    root = tmp_path / "UCF-101"
    for rel in UCF_TRAIN + UCF_TEST[:-1]:  # YoYo's test clip is missing
        folder, name = rel.split("/")
        touch(root / (handstand_folder if folder == "HandstandPushups" else folder) / name)
    splits = root / "ucfTrainTestlist"
    splits.mkdir()
    official = raw_label_file("ucf101.txt")
    # some public copies of classInd.txt spell the class the way the file names do
    spelled = ["HandStandPushups" if c == "HandstandPushups" else c for c in official]
    (splits / "classInd.txt").write_text("".join(f"{i + 1} {c}\r\n" for i, c in enumerate(spelled)))
    (splits / "trainlist01.txt").write_text(
        "".join(f"{rel} {official.index(rel.split('/')[0]) + 1}\n" for rel in UCF_TRAIN))
    (splits / "testlist01.txt").write_text("".join(f"{rel}\n" for rel in UCF_TEST))
    return root


def test_ucf101_train_uses_classind_ids_and_official_indices(tmp_path):
    root = ucf_replica(tmp_path)
    ds = load_dataset("ucf101", root=root, split=1, subset="train")
    got = {s.path.parent.name: (s.index, s.label) for s in ds.samples}
    assert got == {"ApplyEyeMakeup": (0, "apply eye makeup"), "HammerThrow": (35, "hammer throw"),
                   "Hammering": (34, "hammering"), "HandstandPushups": (36, "handstand pushups")}
    assert ds.missing == []


def test_ucf101_test_derives_class_from_folder_and_counts_missing(tmp_path):
    root = ucf_replica(tmp_path)
    ds = load_ucf101(root, subset="test")
    assert ds.missing == ["YoYo/v_YoYo_g01_c01.avi"]
    counts = ds.class_counts()
    assert counts["handstand pushups"] == 2 and counts["hammer throw"] == 1 and counts["yo yo"] == 0
    assert {s.index for s in ds.samples} == {34, 35, 36}


def test_ucf101_resolves_case_mismatched_folder_with_one_scan(tmp_path, monkeypatch):
    root = ucf_replica(tmp_path, handstand_folder="HandStandPushups")  # disk differs from the lists
    scans = []
    real_walk = files_module.walk_files
    monkeypatch.setattr(files_module, "walk_files", lambda r: scans.append(r) or real_walk(r))
    ds = load_ucf101(root, subset="test")
    handstand = [s for s in ds.samples if s.index == 36]
    assert len(handstand) == 2 and all(s.path.parent.name == "HandStandPushups" for s in handstand)
    assert all(s.path.is_file() for s in ds.samples)
    assert len(scans) == 1  # the case-folded index is built once, not per file


def test_ucf101_needs_split_files(tmp_path):
    root = tmp_path / "UCF-101"
    touch(root / "Hammering" / "v_Hammering_g01_c01.avi")
    with pytest.raises(UsageError, match="split files"):
        load_dataset("ucf101", root=root)
    root = ucf_replica(tmp_path / "other")
    with pytest.raises(UsageError, match="split"):
        load_dataset("ucf101", root=root, split=4)
    with pytest.raises(UsageError, match="subset"):
        load_dataset("ucf101", root=root, subset="val")


# --- HMDB51 -----------------------------------------------------------------------------------------------

def hmdb_replica(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "hmdb51"
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    tags = {"brush_hair": ["1", "1", "1", "2", "2", "0"], "cartwheel": ["1", "2", "2", "2", "0", "0"]}
    for cls, cls_tags in tags.items():
        lines = []
        for i, tag in enumerate(cls_tags):
            name = f"#{i}_{cls}_(x)_u_nm_np1_fr_goo_{i}.avi"
            lines.append(f"{name} {tag} \n")
            if not (cls == "cartwheel" and i == 3):  # one test video is missing
                touch(root / cls / name)
        (splits / f"{cls}_test_split1.txt").write_text("".join(lines))
        (splits / f"{cls}_test_split2.txt").write_text("".join(lines[:1]))
    return root, splits


def test_hmdb51_tags(tmp_path):
    root, splits = hmdb_replica(tmp_path)
    train = load_dataset("hmdb51", root=root, split=1, subset="train")  # splits folder found beside root
    test = load_hmdb51(root, splits_dir=splits, split=1, subset="test")
    assert list(train.class_counts().items())[:2] == [("brush hair", 3), ("cartwheel", 1)]
    assert list(test.class_counts().items())[:2] == [("brush hair", 2), ("cartwheel", 2)]
    assert test.missing == ["cartwheel/#3_cartwheel_(x)_u_nm_np1_fr_goo_3.avi"]
    assert not {s.path for s in train.samples} & {s.path for s in test.samples}
    assert len(train.classes) == 51 and {s.index for s in test.samples} == {0, 1}
    assert len(load_hmdb51(root, splits_dir=splits, split=2, subset="train")) == 2
    with pytest.raises(UsageError, match="test_split3"):
        load_hmdb51(root, splits_dir=splits, split=3)


# --- Something-Something v2 -------------------------------------------------------------------------------

def ssv2_replica(tmp_path: Path):
    root = tmp_path / "20bn-something-something-v2"
    labels_json = tmp_path / "labels.json"
    labels_json.write_text(json.dumps({name: str(i) for i, name in reversed(list(enumerate(SSV2)))}))
    items = [
        {"id": "78687", "label": "putting a pen onto a book", "template": "Putting [something] onto [something]",
         "placeholders": ["a pen", "a book"]},
        {"id": "42326", "label": "touching (without moving) part of a cup",
         "template": "Touching (without moving) [part] of [something]", "placeholders": ["part", "a cup"]},
        {"id": "3", "label": "laying a phone on the table on its side, not upright",
         "template": "Laying [something] on the table on its side, not upright", "placeholders": ["a phone"]},
        {"id": "999", "label": "moving a cup up", "template": "Moving [something] up", "placeholders": ["a cup"]},
    ]
    for item in items[:3]:
        touch(root / f"{item['id']}.webm")
    annotations = tmp_path / "validation.json"
    annotations.write_text(json.dumps(items))
    return root, annotations, labels_json


def test_ssv2_templates_map_to_official_indices(tmp_path):
    root, annotations, labels_json = ssv2_replica(tmp_path)
    ds = load_dataset("ssv2", root=root, annotations=annotations, labels_json=labels_json)
    assert ds.missing == ["999"]
    got = {s.path.stem: s.index for s in ds.samples}
    assert got == {"78687": 112, "42326": 160, "3": SSV2.index(
        "Laying something on the table on its side, not upright")}
    assert all(s.label == SSV2[s.index] for s in ds.samples)
    # labels.json alone defines the order when no label list is given
    assert load_ssv2(annotations, root, labels_json=labels_json).classes == SSV2


def test_ssv2_errors(tmp_path):
    root, annotations, labels_json = ssv2_replica(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "3", "template": "Juggling [something]", "placeholders": []}]))
    with pytest.raises(UsageError, match="Juggling something"):
        load_ssv2(bad, root, labels_json=labels_json)
    test = tmp_path / "test.json"
    test.write_text(json.dumps([{"id": "3"}]))
    with pytest.raises(UsageError, match="no 'template'"):
        load_ssv2(test, root)
    with pytest.raises(UsageError, match="annotations"):
        load_dataset("ssv2", root=root, labels_json=labels_json)


# --- protocols: few-shot, split, class subsets ------------------------------------------------------------

def toy_dataset(sizes: dict[str, int]) -> VideoDataset:
    classes = list(sizes)
    samples = [VideoSample(path=Path(f"/v/{cls}/{i:03d}.mp4"), label=cls, index=c)
               for c, cls in enumerate(classes) for i in range(sizes[cls])]
    return VideoDataset(samples=samples, classes=classes, missing=["gone.mp4"], name="toy")


def test_few_shot_is_deterministic_and_order_independent(caplog):
    ds = toy_dataset({"a": 10, "b": 5, "c": 1, "d": 0})
    shot = ds.few_shot(2, seed=3)
    assert shot.class_counts() == {"a": 2, "b": 2, "c": 1, "d": 0}
    assert "fewer than 2" in caplog.text
    shuffled = VideoDataset(samples=random.Random(0).sample(ds.samples, len(ds)), classes=ds.classes,
                            name="toy")
    assert [s.path for s in shuffled.few_shot(2, seed=3).samples] == [s.path for s in shot.samples]
    # a class's pick does not depend on the other classes
    only_a = toy_dataset({"a": 10}).few_shot(2, seed=3)
    assert [s.path for s in only_a.samples] == [s.path for s in shot.samples if s.label == "a"]
    picks = {tuple(s.path for s in ds.few_shot(2, seed=seed).samples) for seed in range(6)}
    assert len(picks) > 1
    assert shot.missing == ds.missing and shot.classes == ds.classes
    with pytest.raises(UsageError):
        ds.few_shot(0)


def test_split_is_stratified_and_deterministic():
    ds = toy_dataset({"a": 10, "b": 4, "c": 2, "d": 1})
    train, val = ds.split(0.25, seed=1)
    assert val.class_counts() == {"a": 3, "b": 1, "c": 1, "d": 0}
    assert train.class_counts() == {"a": 7, "b": 3, "c": 1, "d": 1}
    assert not {s.path for s in train} & {s.path for s in val}
    assert len(train) + len(val) == len(ds)
    again = ds.split(0.25, seed=1)
    assert [s.path for s in again[1]] == [s.path for s in val]
    with pytest.raises(UsageError):
        ds.split(1.0)


def test_subset_classes_reindexes_in_given_order():
    ds = toy_dataset({"apply eye makeup": 2, "hammering": 3, "hammer throw": 1})
    sub = ds.subset_classes(["HammerThrow", "apply_eye_makeup"])
    assert sub.classes == ["hammer throw", "apply eye makeup"]
    assert sub.class_counts() == {"hammer throw": 1, "apply eye makeup": 2}
    assert all(sub.classes[s.index] == s.label for s in sub.samples)
    with pytest.raises(UsageError, match="Bowling"):
        ds.subset_classes(["Bowling"])
    with pytest.raises(UsageError, match="duplicate"):
        ds.subset_classes(["hammering", "Hammering"])


# --- the front door ---------------------------------------------------------------------------------------

def test_load_dataset_sources_and_errors(tmp_path):
    touch(tmp_path / "data" / "HammerThrow" / "a.avi")
    ds = load_dataset("ucf101", data=tmp_path / "data")  # a preset name only supplies the label set
    assert ds.samples[0].index == 35 and len(ds.classes) == 101
    ds = load_dataset(data=tmp_path / "data", label_list=["hammer throw", "surfing"])
    assert ds.classes == ["hammer throw", "surfing"] and ds.samples[0].index == 0
    with pytest.raises(UsageError, match="nothing to load"):
        load_dataset()
    with pytest.raises(UsageError, match="unknown dataset"):
        load_dataset("k500", root=tmp_path)
    with pytest.raises(UsageError, match="root"):
        load_dataset("hmdb51")
    with pytest.raises(UsageError, match="not both"):
        load_dataset(data=tmp_path / "data", list_file=tmp_path / "x.txt")
    with pytest.raises(UsageError, match="does not use splits_dir"):
        load_dataset("k400", root=tmp_path, annotations=tmp_path / "a.csv", splits_dir=tmp_path)
    with pytest.raises(UsageError, match="folder not found"):
        load_dataset(data=tmp_path / "nope")
