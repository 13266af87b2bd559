"""`python -m jdl train`: the main job writes a complete, resumable run directory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import jdl
from jdl.__main__ import main
from jdl._cli.models import MODELS, build_model


def test_help_explains_every_option():
    out = subprocess.run(
        [sys.executable, "-m", "jdl", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in (
        "--model", "--dataset", "--optimizer", "--lr", "--epochs", "--steps", "--batch-size",
        "--strategy", "--seed", "--out", "--resume", "--debug", "--precision",
        "--compile-cache",
    ):  # fmt: skip
        assert option in out
    assert "mnist1d" in out and "6000" in out
    assert "%%" not in out  # no printf escape leaks into the text


def test_default_model_on_mnist1d_writes_a_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--steps", "120", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Training cnn on mnist1d (3600 examples, 400 held out for validation)" in printed
    assert "validation accuracy:" in printed and "test accuracy (final model):" in printed
    for name in ("config.json", "history.json", "history.csv", "history.png", "results.json"):
        assert (out / name).stat().st_size > 0, name
    assert any((out / "checkpoints").iterdir())
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "cnn" and config["dataset"] == "mnist1d"
    assert config["parameters"] == 5210 and config["steps"] == 120
    assert config["validation_split"] == 0.1
    history = jdl.train.History.from_json(out / "history.json")
    assert history.steps == [36, 72, 108, 120] and "val_accuracy" in history.metrics
    results = json.loads((out / "results.json").read_text())
    # The best epoch is chosen on the validation set; the test set is evaluated once, at the
    # end (4,000 training examples: the last 400 are the validation set, not the test's).
    assert (results["best_epoch"], results["best_val_accuracy"]) == pytest.approx(
        history.best("val_accuracy")
    )
    assert "best_test_accuracy" not in results
    assert 0.3 < results["test"]["accuracy"] <= 1.0  # 3 epochs: well above chance (0.1)
    assert (out / "history.csv").read_text().splitlines()[0].startswith("epoch,step,")
    # The final model, saved for inference: loaded back, it scores exactly its test results.
    assert f"final model saved in {out / 'model'}/" in printed
    model, variables = jdl.load_model(out / "model")
    assert model == build_model("cnn", (40,), 10)
    test = jdl.data.load("mnist1d", split="test")
    assert jdl.evaluate(model, variables, test) == results["test"]


def test_resume_continues_the_run(tmp_path, capsys):
    out = str(tmp_path / "iris")
    args = ["train", "--dataset", "iris", "--model", "mlp", "--batch-size", "30", "--quiet"]
    assert main([*args, "--epochs", "2", "--out", out, "--checkpoint-every", "1"]) == 0
    assert main([*args, "--epochs", "4", "--out", out, "--resume"]) == 0
    history = jdl.train.History.from_json(f"{out}/history.json")
    # 120 training examples, 12 held out for validation: 108 // 30 = 3 steps an epoch.
    assert history.epochs == [1, 2, 3, 4] and history.steps == [3, 6, 9, 12]
    # A run directory is never silently overwritten.
    assert main([*args, "--epochs", "1", "--out", out]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_regression_dataset_reports_test_loss(tmp_path, capsys):
    argv = ["train", "--dataset", "coffee", "--model", "mlp", "--epochs", "2", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "c")]) == 0
    assert "test loss (mse):" in capsys.readouterr().out
    results = json.loads((tmp_path / "c" / "results.json").read_text())
    assert "best_test_accuracy" not in results and results["test"]["loss"] >= 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "no_such_dataset_xyz"], "no_such_dataset_xyz"),
        (["--dataset", "digits", "--model", "gru"], "reads sequences"),
        (["--steps", "0"], "--steps must be a positive integer"),
        (["--lr", "-1"], "--lr must be a finite positive number; got -1.0"),
        (["--lr", "inf"], "--lr must be a finite positive number; got inf"),
        (["--lr", "nan"], "--lr must be a finite positive number; got nan"),
        (["--resume"], "no checkpoints"),
    ],
)
def test_bad_arguments_fail_with_a_message(tmp_path, capsys, argv, message):
    assert main(["train", "--out", str(tmp_path / "r"), "--quiet", *argv]) == 2
    assert message in capsys.readouterr().err


def test_unknown_choice_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--model", "transformer"])
    assert "unknown model 'transformer' (expected one of: cnn, gru" in capsys.readouterr().err


def test_build_model_covers_sequences_and_images():
    assert set(MODELS) == {"logistic", "mlp", "cnn", "gru", "lstm", "rnn"}
    assert build_model("cnn", (40,), 10).ndim == 1
    assert build_model("cnn", (8, 8, 1), 10).ndim == 2
    assert build_model("lstm", (40,), 10).cell == "lstm"
    with pytest.raises(ValueError, match="Unknown model"):
        build_model("nope", (40,), 10)


IRIS = ["train", "--dataset", "iris", "--model", "mlp", "--batch-size", "30", "--quiet"]


def test_resume_with_more_steps_equals_the_uninterrupted_run(tmp_path, capsys):
    out, ref = str(tmp_path / "resumed"), str(tmp_path / "uninterrupted")
    assert main([*IRIS, "--steps", "5", "--out", out]) == 0  # stops 2 steps into epoch 2
    assert main([*IRIS, "--steps", "10", "--out", out, "--resume"]) == 0
    assert main([*IRIS, "--steps", "10", "--out", ref]) == 0
    resumed = json.loads((tmp_path / "resumed" / "history.json").read_text())
    full = json.loads((tmp_path / "uninterrupted" / "history.json").read_text())
    assert resumed["steps"] == full["steps"] == [3, 6, 9, 10]  # not [3, 5, 10]
    assert resumed["metrics"] == full["metrics"]
    results = [json.loads((tmp_path / d / "results.json").read_text()) for d in ("resumed",
               "uninterrupted")]  # fmt: skip
    assert results[0] == results[1]  # the final parameters' test numbers, exactly
    # Other settings than the length are refused, listing them; nothing is overwritten.
    capsys.readouterr()
    assert main([*IRIS, "--steps", "12", "--out", out, "--resume", "--lr", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "{'learning_rate': 0.01}; this run asks for" in err and "{'learning_rate': 0.1}" in err
    assert json.loads((tmp_path / "resumed" / "history.json").read_text()) == resumed
    config = json.loads((tmp_path / "resumed" / "config.json").read_text())
    assert config["learning_rate"] == 0.01 and config["steps"] == 10  # the run's own


def test_a_schedule_fixes_the_length_of_a_resumed_run(tmp_path, capsys):
    out = str(tmp_path / "cos")
    assert main([*IRIS, "--steps", "4", "--schedule", "cosine", "--out", out]) == 0
    capsys.readouterr()
    assert main([*IRIS, "--steps", "8", "--schedule", "cosine", "--out", out, "--resume"]) == 2
    assert "planned 4 steps for its 'cosine' learning-rate schedule" in capsys.readouterr().err


def test_a_diverging_run_exits_non_zero_with_strict_json(tmp_path, capsys):
    out = tmp_path / "nan"
    argv = [*IRIS, "--steps", "40", "--optimizer", "sgd", "--lr", "1e30", "--out", str(out)]
    with (
        pytest.warns(UserWarning, match="became nan"),
        pytest.warns(UserWarning, match="not saving"),
    ):
        assert main(argv) == 1
    assert "error: training diverged: loss became nan at step" in capsys.readouterr().err
    text = (out / "results.json").read_text()
    assert "NaN" not in text and json.loads(text)["test"]["loss"] is None
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())
    assert not (out / "model").exists()  # non-finite parameters are not saved either


def test_precision_trains_in_bfloat16_and_is_recorded(tmp_path, capsys):
    out = tmp_path / "bf16"
    assert main([*IRIS, "--steps", "20", "--precision", "bfloat16", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["precision"] == "bfloat16"
    history = jdl.train.History.from_json(out / "history.json")
    assert history.config["precision"] == "bfloat16"
    with pytest.raises(SystemExit) as exit_:
        main([*IRIS, "--precision", "fp8", "--out", str(tmp_path / "no")])
    assert exit_.value.code == 2 and not (tmp_path / "no").exists()
    assert "unknown precision 'fp8' (expected one of: float32, bfloat16, float16)" in (
        capsys.readouterr().err
    )


def test_debug_names_where_a_run_diverged(tmp_path, capsys):
    argv = [*IRIS, "--steps", "8", "--optimizer", "sgd", "--lr", "1e30", "--debug"]
    assert main([*argv, "--out", str(tmp_path / "nan")]) == 1
    err = capsys.readouterr().err
    assert "error: training diverged: fit(debug=True): the first non-finite value" in err
    assert "first non-finite gradient: params/" in err and "Cause: " in err


def test_the_model_summary_is_printed_at_the_start(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--steps", "40", "--out", str(out),
                 "--verbose", "2"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "MLP on inputs (1, 40) (inference mode)" in printed
    assert "trainable parameters:" in printed and "FLOPs per forward pass:" in printed
    assert printed.index("MLP on inputs") < printed.index("test accuracy (final model):")
