"""A bad value is an error on the Python parameter; the command line shows the flag the user typed instead."""

from __future__ import annotations

import contextlib
import io
import pickle

import pytest

from conftest import TINY_CONFIG
from vidprompt.classifier import VideoClassifier, load_classifier
from vidprompt.errors import OptionValueError, UsageError, out_of_range
from vidprompt.methods.aim import AIM
from vidprompt.methods.promptclip import PromptCLIP
from vidprompt.methods.zeroshot import ZeroShotCLIP
from vidprompt.runtime import resolve_device, resolve_precision


def cli(*args):
    """The CLI in this process: exit code and stderr."""
    from vidprompt.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    return exit_.value.code, err.getvalue()


def test_the_library_names_the_parameter_and_the_cli_the_flag(tiny_backbone, videos):
    with pytest.raises(OptionValueError, match=r"^batch_size must be at least 1 \(got 0\)$") as caught:
        VideoClassifier(ZeroShotCLIP(tiny_backbone), batch_size=0)
    assert caught.value.field == "batch_size"
    assert caught.value.for_flags() == "--batch-size must be at least 1 (got 0)"

    code, stderr = cli("classify", videos["red"], "--labels", "a,b", "--batch-size", "0", "--model", TINY_CONFIG,
                       "--pretrained", "none", "-q")
    assert code == 2 and "error: --batch-size must be at least 1 (got 0)" in stderr, stderr
    assert "batch_size" not in stderr


def test_runtime_settings_are_errors_on_their_parameter():
    with pytest.raises(OptionValueError, match="^device must be one of auto, cpu, cuda, mps") as caught:
        resolve_device("tpu")
    assert caught.value.for_flags().startswith("--device must be one of")
    with pytest.raises(OptionValueError, match="^precision fp16 needs a GPU") as caught:
        resolve_precision("fp16", resolve_device("cpu"))
    assert caught.value.field == "precision"


def test_a_flag_that_is_not_the_parameter_name_and_a_second_parameter():
    with pytest.raises(OptionValueError, match="^templates cannot be used with checkpoint") as caught:
        load_classifier(checkpoint="model.safetensors", templates=["a video of {}."], device="cpu")
    assert caught.value.for_flags().startswith("--template cannot be used with --checkpoint (")


def test_only_the_parameter_is_replaced_never_a_path_or_a_value_that_contains_it():
    error = OptionValueError("model", "runs/model/x.json: model.json is not model-like; give model (a name)")
    assert error.for_flags() == "runs/model/x.json: model.json is not model-like; give --model (a name)"
    twice = OptionValueError("device", "device cuda: none here (use device cpu)", mentions=("device",))
    assert twice.for_flags() == "--device cuda: none here (use --device cpu)"
    assert out_of_range("top_k", 0, "at least 1").for_flags({"top_k": "-k"}) == "-k must be at least 1 (got 0)"


def test_an_option_error_survives_pickling():  # a distributed run sends rank 0's error to the others
    error = OptionValueError("n_prefix", "n_prefix + n_suffix leaves no room", mentions=("n_suffix",))
    error.reported_on_main = True
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is OptionValueError and str(copy) == str(error)
    assert (copy.field, copy.mentions, copy.reported_on_main) == ("n_prefix", ("n_suffix",), True)


def test_both_methods_raise_option_errors_for_bad_hyper_parameters(tiny_backbone):
    for build, field in [(lambda: PromptCLIP(tiny_backbone, n_prefix=-1), "n_prefix"),
                         (lambda: PromptCLIP(tiny_backbone, temporal_heads=0), "temporal_heads"),
                         (lambda: PromptCLIP(tiny_backbone, temperature=0), "temperature"),
                         (lambda: PromptCLIP(tiny_backbone, prompt_layout="other"), "prompt_layout"),
                         (lambda: AIM(tiny_backbone, num_frames=0), "num_frames"),
                         (lambda: AIM(tiny_backbone, adapter_positions="middle"), "adapter_positions"),
                         (lambda: AIM(tiny_backbone, bottleneck_ratio=1e-6), "bottleneck_ratio")]:
        with pytest.raises(OptionValueError) as caught:
            build()
        assert caught.value.field == field and str(caught.value).startswith(field), str(caught.value)
        assert isinstance(caught.value, UsageError)


def test_only_the_mention_of_the_parameter_becomes_the_flag():
    """Messages name the parameter first; a user's value that happens to spell a parameter stays as it is."""
    error = OptionValueError("model", "model model does not match the checkpoint: it was trained on model")
    assert error.for_flags() == "--model model does not match the checkpoint: it was trained on model"
    paths = OptionValueError("out_dir", "out_dir runs/out_dir holds an evaluation of something else")
    assert paths.for_flags() == "--out runs/out_dir holds an evaluation of something else"
