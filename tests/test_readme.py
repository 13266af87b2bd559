"""The README's Python examples run as written."""

import re
from pathlib import Path

import matplotlib

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_and_trains(capsys, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # it saves the model into the current directory
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 2  # training, then diagnosing (in the same namespace)
    assert len(blocks[0].strip().splitlines()) <= 17
    namespace = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "learning_rate: learning rate 10 is too high" in out  # the diagnosis's first line
    best = float(
        re.search(r"best validation accuracy \(epoch, value\): \(\d+, ([\d.]+)\)", out).group(1)
    )
    test = float(re.search(r"test: \{'accuracy': ([\d.]+)", out).group(1))
    assert best > 0.8 and test > 0.8
    assert (tmp_path / "mnist1d-cnn" / "model.json").exists()
