from dataclasses import fields
from pathlib import Path

import pytest

from vidprompt.config import (KEYS, METHOD_DEFAULTS, RESUME_OVERRIDES, TrainConfig, _expected, flag_fields, load_config,
                              save_config)
from vidprompt.errors import OptionValueError, UsageError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_yaml_then_set_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 5\nlr: 0.01\ndata: clips/\nshots: 4\n")
    cfg = load_config(path, ["epochs=20", "shots=none", "grad_checkpointing=true", "lr=1e-3"], out="runs/x")
    assert (cfg.epochs, cfg.lr, cfg.shots, cfg.grad_checkpointing, cfg.out) == (20, 1e-3, None, True, "runs/x")
    assert cfg.data == "clips/"


def test_method_defaults_fill_only_what_is_unset():
    cfg = load_config(None, ["method=aim", "epochs=3"]).resolved()
    assert cfg.epochs == 3 and cfg.lr == METHOD_DEFAULTS["aim"]["lr"] and cfg.weight_decay == 0.05


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["pretrained=none", "frames=16"]).resolved()
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("overrides,message", [
    (["epoch=3"], "unknown option 'epoch'"),
    (["epochs"], "key=value"),
    (["epochs=three"], "expected int"),
    (["lr=fast"], "expected float"),
    (["grad_checkpointing=maybe"], "expected bool"),
])
def test_bad_overrides(overrides, message):
    with pytest.raises(UsageError, match=message):
        load_config(None, overrides)


@pytest.mark.parametrize("overrides,message", [
    (["lr=-1"], r"lr must be positive \(got -1.0\)"),
    (["epochs=0"], "epochs must be at least 1"),
    (["shots=0"], "shots must be at least 1"),
    (["val_fraction=-0.1"], "val_fraction must be at least 0 and below 1"),
    (["accumulate=0"], "accumulate must be at least 1"),
    (["drop_path=1"], "drop_path must be"),
    (["split=7", "dataset=ucf101"], "split must be 1, 2 or 3"),
    (["split=2", "data=videos"], "split 2 applies to dataset ucf101 or hmdb51 only"),
])
def test_out_of_range_values_are_usage_errors(overrides, message):
    with pytest.raises(UsageError, match=message):
        load_config(None, overrides).resolved()


def test_bad_files(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(UsageError, match="mapping"):
        load_config(tmp_path / "list.yaml")


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_examples_load_and_document_every_option(name):
    text = (EXAMPLES / name).read_text()
    cfg = load_config(EXAMPLES / name)
    assert isinstance(cfg, TrainConfig)
    assert all(f"\n{key}:" in text for key in KEYS)


# Every option is declared once, in its TrainConfig field: the checks, the flags and the methods' keyword
# arguments are derived from the fields' metadata.
def _train_command():
    import typer

    from vidprompt.cli import app

    return typer.main.get_command(app).commands["train-prompts"]


def _bad_value(meta):
    """A value just outside a field's declared bounds."""
    if "choices" in meta:
        return max(meta["choices"]) + 1 if isinstance(meta["choices"][0], int) else "nope"
    if "min" in meta:
        return meta["min"] - 1
    if "above" in meta:
        return meta["above"]
    return meta.get("below", meta.get("max", 0) + 1)


@pytest.mark.parametrize("field", [f for f in fields(TrainConfig) if {"min", "above", "max", "below", "choices"}
                                   & set(f.metadata)], ids=lambda f: f.name)
def test_a_declared_bound_is_checked_with_one_wording(field):
    value = _bad_value(field.metadata)
    with pytest.raises(OptionValueError, match=rf"^{field.name} must be .+ \(got .+\)$") as caught:
        load_config(None, None, **{field.name: value})
    assert caught.value.field == field.name
    with pytest.raises(UsageError, match=rf"^--set {field.name}={value}: {field.name} must be "):
        load_config(None, [f"{field.name}={value}"])


def test_bounds_read_as_before():
    expected = {name: _expected(TrainConfig.__dataclass_fields__[name].metadata) for name in KEYS}
    assert expected["lr"] == "positive" and expected["min_lr"] == "0 or more"
    assert expected["val_fraction"] == expected["drop_path"] == "at least 0 and below 1"
    assert expected["bottleneck_ratio"] == "above 0 and at most 1" and expected["split"] == "1, 2 or 3"
    assert expected["method"] == "promptclip or aim" and expected["seed"] is None


def test_every_flag_field_is_an_option_of_the_command_with_its_alias():
    params = {p.name: p for p in _train_command().params}
    for f in fields(TrainConfig):
        if not f.metadata["flag"]:
            assert f.name not in params, f.name
            continue
        option = params[f.name]
        assert option.opts[0] == "--" + f.name.replace("_", "-") and option.default is None
        assert option.opts[1:] == ([f.metadata["short"]] if "short" in f.metadata else [])
    assert params["grad_checkpointing"].secondary_opts == ["--no-grad-checkpointing"]
    assert [p.name for p in _train_command().params][:2] == ["config", "set_"]
    assert {"resume", "quiet"} <= set(params)


def test_every_flag_field_is_in_the_help():
    from typer.testing import CliRunner

    from vidprompt.cli import app

    shown = CliRunner().invoke(app, ["train-prompts", "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert shown.exit_code == 0, shown.output
    for f in flag_fields():
        assert "--" + f.name.replace("_", "-") in shown.output, f.name
    assert "--n-prefix" not in shown.output  # YAML and --set only
    assert "promptclip 20, aim 30" in shown.output  # the recipe is the default of what is left to it


def test_method_options_come_from_the_declaration():
    import inspect

    from vidprompt.methods import method_class

    promptclip = load_config(None, ["n_prefix=4", "frames=12"]).method_options()
    assert promptclip == {"max_frames": 12, "n_prefix": 4, "n_suffix": 16, "temporal_layers": 2,
                          "temporal_heads": 8}
    aim = load_config(None, ["method=aim", "drop_path=0.1"]).method_options()
    assert aim == {"num_frames": 8, "adapter_positions": "all", "bottleneck_ratio": 0.25, "joint_scale": 0.5,
                   "drop_path": 0.1, "grad_checkpointing": False}
    for method, options in (("promptclip", promptclip), ("aim", aim)):
        assert set(options) <= set(inspect.signature(method_class(method).__init__).parameters)
    assert RESUME_OVERRIDES == ("device", "num_workers", "decoder")
    assert all(set(recipe) <= {f.name for f in fields(TrainConfig) if f.default is None}
               for recipe in METHOD_DEFAULTS.values())


# config.yaml as the runs of earlier versions saved it: flat keys, in the order of the dataclass then.
OLD_RUN_CONFIG = """\
method: aim
model: ViT-B-16
pretrained: openai
data: clips
list_file: null
dataset: null
root: null
annotations: null
split: 1
splits_dir: null
labels_json: null
label_set: null
labels_file: null
val: null
val_fraction: 0.1
classes: null
shots: 4
frames: 16
sampling: segment
stride: 8
cache_views: 1
n_prefix: 16
n_suffix: 16
temporal_layers: 2
temporal_heads: 8
adapter_positions: top
bottleneck_ratio: 0.25
joint_scale: 1.0
drop_path: 0.1
grad_checkpointing: true
epochs: 30
batch_size: 8
accumulate: 8
lr: 0.0003
weight_decay: 0.05
warmup_epochs: 2.5
min_lr: 0.0
seed: 3
device: auto
precision: auto
num_workers: null
decoder: null
out: runs/old
"""


def test_a_config_saved_by_an_earlier_version_loads_as_it_was(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(OLD_RUN_CONFIG)
    cfg = load_config(path, out=str(tmp_path))
    assert cfg.resolved() == cfg  # saved resolved: nothing left to the recipe
    assert (cfg.method, cfg.frames, cfg.shots, cfg.adapter_positions, cfg.joint_scale, cfg.grad_checkpointing,
            cfg.accumulate, cfg.seed, cfg.decoder, cfg.out) == ("aim", 16, 4, "top", 1.0, True, 8, 3, None,
                                                                str(tmp_path))
    assert cfg.method_options()["num_frames"] == 16 and cfg.method_options()["drop_path"] == 0.1
    save_config(cfg, tmp_path / "again.yaml")
    assert load_config(tmp_path / "again.yaml") == cfg


def test_adapter_positions_offered_are_the_ones_aim_builds():
    from vidprompt.methods.aim import ADAPTER_POSITIONS

    meta = next(f.metadata for f in fields(TrainConfig) if f.name == "adapter_positions")
    assert meta["choices"] == ADAPTER_POSITIONS


def test_a_null_where_a_value_is_needed_is_one_usage_error(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("out: null\n")
    with pytest.raises(UsageError, match="out needs a value"):
        load_config(config)
