"""``python -m jdl diagnose``: the report printed, saved as JSON and a figure, the exit
status (0 without an error finding, 1 with one, 2 for bad settings) and its --help."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib

from jdl.__main__ import main
from jdl._cli.parser import build_parser

matplotlib.use("Agg")

FAST = ["diagnose", "--dataset", "iris", "--model", "mlp", "--steps", "50"]


def test_help_lists_the_options():
    out = subprocess.run(
        [sys.executable, "-m", "jdl", "diagnose", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in ("--model", "--dataset", "--optimizer", "--lr", "--batch-size", "--json"):
        assert option in out
    assert "Exit status 0" in out and "1: at least one error" in out
    for action in build_parser().commands["diagnose"]._actions:
        assert (action.help or "").count("default") <= 1, action.help


def test_too_high_lr_exits_1_and_saves_the_report(tmp_path, capsys):
    report, figure = tmp_path / "out" / "report.json", tmp_path / "report.png"
    args = [*FAST, "--optimizer", "sgd", "--lr", "2", "--json", str(report), "--plot", str(figure)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "Diagnosing mlp on iris with sgd lr=2" in out and "[ERROR  ]" in out
    data = json.loads(report.read_text())
    assert data["healthy"] is False and data["findings"][0]["severity"] == "error"
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.json"]  # no temp files


def test_no_error_exits_0(capsys):
    assert main(["diagnose", "--dataset", "iris"]) == 0  # the defaults: mlp, adam 1e-2
    assert "Diagnosis:" in capsys.readouterr().out


def test_bad_settings_exit_2(capsys):
    assert main([*FAST, "--lr", "-1"]) == 2
    assert "--lr must be a finite positive number" in capsys.readouterr().err
    assert main([*FAST, "--batch-size", "0"]) == 2
    assert main(["diagnose", "--dataset", "no_such_dataset_xyz"]) == 2
