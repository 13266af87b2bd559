"""`python -m jdl`'s parser and the checks before a run (issue #18): one default per option,
help with no command, suggestions for unknown options and values, settings checked against
the dataset before anything is written, --verbose and --download passed through, and a
--help that imports neither JAX nor the rest of jdl."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time

import pytest

import jdl
from jdl.__main__ import main
from jdl._cli.parser import OPTIMIZERS, PRECISIONS, SCHEDULES, build_parser

HEAVY = ("jax", "flax", "optax", "tensorflow_datasets", "grain", "jdl.train", "jdl.data")


def _help(*command: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "jdl", *command, "--help"], capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip


def _entries(help_text: str) -> dict[str, str]:
    """``--option`` -> the text of its entry in the "options:" section of ``help_text``."""
    section = help_text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, str] = {}
    for line in section.splitlines():
        if m := re.match(r"  (-\w, )?(--[\w-]+)", line):
            name = m.group(2)
            entries[name] = line
        else:
            entries[name] += " " + line.strip()
    return entries


def test_every_option_states_its_default_once():
    entries = _entries(_help("train"))
    assert {"--model", "--steps", "--out", "--strategy", "--verbose", "--download"} <= set(entries)
    for option, text in entries.items():
        assert text.count("default") <= 1, f"{option}: {text}"
    parser = build_parser().commands["train"]
    for action in parser._actions:
        if action.default not in (None, False, "==SUPPRESS==") and action.option_strings:
            assert "(default: " in entries[action.option_strings[-1]], action.option_strings
    assert "(default: 6000 without --epochs)" in entries["--steps"]
    assert "(default: runs/<dataset>-<model>-<time>)" in entries["--out"]
    assert "(default: jit on one device, sharded on several)" in entries["--strategy"]


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: python -m jdl" in captured.err and "train" in captured.err
    assert "error: no command given; choose one of: train" in captured.err


def test_no_command_starts_no_run_in_a_fresh_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jdl"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 2 and "no command given" in proc.stderr
    assert not (tmp_path / "runs").exists() and "Training" not in proc.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--modle", "cnn"],
            "unrecognized arguments: --modle cnn (--modle: did you mean --model?)",
        ),
        (["--batchsize=3"], "--batchsize: did you mean --batch-size"),
        (["--epohcs", "3"], "--epohcs: did you mean --epochs"),
        (["--xyzzy"], "unrecognized arguments: --xyzzy"),
        (["--model", "cnnn"], "unknown model 'cnnn'; did you mean 'cnn'?"),
        (["--model", "lstn"], "did you mean 'lstm'?"),
        (["--optimizer", "adma"], "unknown optimizer 'adma'; did you mean 'adam' or 'adamw'"),
        (["--schedule", "cosin"], "unknown schedule 'cosin'; did you mean 'cosine'"),
        (["--strategy", "shard"], "unknown strategy 'shard'; did you mean 'sharded'?"),
    ],
)
def test_unknown_options_and_values_suggest_the_closest(capsys, argv, expected):
    with pytest.raises(SystemExit) as info:
        main(["train", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m jdl train" in err and expected in err
    if argv == ["--xyzzy"]:
        assert "did you mean" not in err


def test_an_unknown_dataset_lists_the_closest_names(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--dataset", "mnist1e", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'mnist1e'" in err and "'mnist1d'" in err.split("'mnist1e'", 1)[1]
    assert not out.exists()


def test_the_parsers_names_are_the_libraries():
    assert set(OPTIMIZERS) == set(jdl.train.optim.OPTIMIZERS)
    assert tuple(SCHEDULES) == tuple(jdl.train.optim.SCHEDULES)
    assert tuple(PRECISIONS) == tuple(jdl.train.PRECISIONS)


def test_a_batch_larger_than_the_dataset_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["train", "--dataset", "iris", "--model", "mlp", "--batch-size", "100000"]
    assert main([*argv, "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    whole = len(jdl.data.load("iris", split="train"))
    held = round(0.1 * whole)  # --validation-split's default
    n = whole - held
    assert f"--batch-size 100000 is larger than the training set: iris has {n} training " in err
    assert f"{held} held out for validation. Choose --batch-size {n} or less." in err
    assert not out.exists()


def test_a_run_refused_by_fit_leaves_no_directory(tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise ValueError("fit refused these settings")

    monkeypatch.setattr(jdl, "fit", refuse)
    out = tmp_path / "r"
    assert main(["train", "--dataset", "iris", "--model", "mlp", "--out", str(out)]) == 2
    assert "error: fit refused these settings" in capsys.readouterr().err
    assert not out.exists()


def test_verbose_2_prints_a_line_per_epoch_and_counts_are_singular(tmp_path, capsys):
    argv = ["train", "--dataset", "iris", "--model", "mlp", "--batch-size", "30", "--verbose"]
    assert main([*argv, "2", "--epochs", "1", "--out", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    assert ", 1 epoch; run directory" in captured.out and "1 epochs" not in captured.out
    assert "history.json (1 epoch)" in captured.out
    assert re.search(r"^epoch 1/1 .*loss", captured.err, re.M) and "\r" not in captured.err


@pytest.mark.parametrize(("flags", "verbose"), [([], 1), (["--verbose", "0"], 0),
                         (["--verbose", "2"], 2), (["--quiet"], 0)])  # fmt: skip
def test_verbose_reaches_fit(tmp_path, monkeypatch, capsys, flags, verbose):
    seen = {}

    def record(*args, **kwargs):
        seen.update(kwargs)
        raise ValueError("recorded")

    monkeypatch.setattr(jdl, "fit", record)
    argv = ["train", "--dataset", "iris", "--model", "mlp", "--out", str(tmp_path / "r")]
    assert main([*argv, *flags]) == 2
    assert seen["verbose"] == verbose


def test_a_directory_left_by_a_run_stopped_before_training_is_reused(tmp_path, monkeypatch, capsys):
    seen = []

    def record(*args, **kwargs):
        seen.append(json.loads((out / "config.json").read_text()))
        raise ValueError("reached fit")

    monkeypatch.setattr(jdl, "fit", record)
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.json").write_text("{}")
    jdl.train.History().to_json(out / "history.json")
    argv = ["train", "--dataset", "iris", "--model", "mlp", "--out", str(out)]
    assert main(argv) == 2 and "reached fit" in capsys.readouterr().err
    assert seen[0]["dataset"] == "iris"  # written anew before fit
    assert out.is_dir()  # not created by that run: kept
    # With a trained epoch it is a run of its own: refused, untouched.
    (out / "config.json").write_text("{}")
    jdl.train.History(epochs=[1], steps=[4], metrics={"loss": [1.0]}).to_json(out / "history.json")
    assert main(argv) == 2
    assert "exists and is not empty" in capsys.readouterr().err and len(seen) == 1
    assert (out / "config.json").read_text() == "{}"


def test_verbose_and_quiet_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--verbose", "2", "--quiet"])
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "download"), [([], False), (["--download"], True)])
def test_download_is_passed_to_the_data_layer(tmp_path, monkeypatch, capsys, flags, download):
    calls = []

    def load(name, split="train", **kwargs):
        calls.append((name, split, kwargs))
        raise RuntimeError(f"offline test: {name} not loaded")

    monkeypatch.setattr(jdl.data, "load", load)
    out = tmp_path / "r"
    argv = ["train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--out", str(out)]
    assert main([*argv, *flags]) == 2
    assert "offline test: cifar10 not loaded" in capsys.readouterr().err
    assert calls == [("cifar10", "train", {"data_dir": str(tmp_path), "download": download})]
    assert build_parser().parse_args(["train", *flags]).download is download
    assert not out.exists()


def test_download_is_documented_in_the_help():
    entry = _entries(_help("train"))["--download"]
    assert "download and prepare a TFDS catalog dataset" in entry and "network" in entry


_PROBE = """
import contextlib, io, sys
from jdl.__main__ import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(code, [m for m in {heavy!r} if m in sys.modules])
"""


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["--help"], 0), (["train", "--help"], 0), (["train", "--modle"], 2), ([], 2)],
)
def test_help_and_usage_errors_import_nothing_heavy(argv, code):
    probe = _PROBE.format(heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [str(code), "[]"], out


def test_python_m_jdl_help_imports_no_jax():
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "jdl", "train", "--help"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    imported = {line.rsplit("|", 1)[1].strip() for line in err.splitlines() if "|" in line}
    assert "jdl._cli.parser" in imported  # the probe does see the imports
    assert not {m for m in imported if m.split(".")[0] in {"jax", "flax", "optax"}}


def test_help_answers_quickly():
    times = []
    for _ in range(3):
        start = time.perf_counter()
        _help("train")
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 1.5, times  # the whole library took 2-5 s
