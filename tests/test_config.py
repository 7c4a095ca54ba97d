from pathlib import Path

import pytest

from vidprompt.config import KEYS, METHOD_DEFAULTS, TrainConfig, load_config, save_config
from vidprompt.errors import UsageError

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
