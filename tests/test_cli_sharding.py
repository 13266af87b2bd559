"""``python -m jdl train --strategy fsdp --mesh-shape DATA,FSDP --sharding-rule REGEX=AXES``."""

from __future__ import annotations

import json

import pytest

from jdl.__main__ import main
from jdl._cli.parser import build_parser

IRIS = ["train", "--dataset", "iris", "--model", "mlp", "--batch-size", "30", "--quiet"]


def _train_args(*argv):
    return build_parser().parse_args(["train", *argv])


def test_mesh_and_rules_parse_into_fit_settings():
    args = _train_args("--mesh-shape", "2,4", "--sharding-rule", "Dense_0/kernel=fsdp,none",
                       "--sharding-rule", "bias=")  # fmt: skip
    assert args.mesh_shape == (2, 4)
    assert args.sharding_rule == [("Dense_0/kernel", ("fsdp", None)), ("bias", ())]
    assert _train_args().mesh_shape is None and _train_args().sharding_rule is None


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--mesh-shape", "8"], "expected DATA,FSDP: two positive integers"),
        (["--mesh-shape", "0,8"], "expected DATA,FSDP"),
        (["--sharding-rule", "kernel=model"], "AXES a comma list of data, fsdp, none"),
        (["--sharding-rule", "kernel"], "expected REGEX=AXES"),
        (["--sharding-rule", "ker(nel=fsdp"], "bad regular expression 'ker\\(nel'"),
    ],
)
def test_bad_values_are_usage_errors(argv, match, capsys):
    with pytest.raises(SystemExit) as exit_:
        _train_args(*argv)
    assert exit_.value.code == 2
    assert match.replace("\\", "") in capsys.readouterr().err


def test_they_need_the_fsdp_strategy_and_train_with_it(tmp_path, capsys):
    refused = tmp_path / "refused"
    assert main([*IRIS, "--steps", "4", "--mesh-shape", "1,1", "--out", str(refused)]) == 2
    assert "--mesh-shape and --sharding-rule shard parameters: add --strategy fsdp" in (
        capsys.readouterr().err
    )
    assert not refused.exists()
    out = tmp_path / "fsdp"
    argv = [*IRIS, "--steps", "4", "--strategy", "fsdp", "--mesh-shape", "1,1",
            "--sharding-rule", "kernel=none,fsdp", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "results.json").read_text())["test"]["accuracy"] >= 0
