"""The README's Python example runs as written."""

import re
from pathlib import Path

import matplotlib

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_and_trains(capsys):
    matplotlib.use("Agg")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1
    assert len(blocks[0].strip().splitlines()) <= 16
    exec(compile(blocks[0], str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    best = float(
        re.search(r"best validation accuracy \(epoch, value\): \(\d+, ([\d.]+)\)", out).group(1)
    )
    test = float(re.search(r"test: \{'accuracy': ([\d.]+)", out).group(1))
    assert best > 0.8 and test > 0.8
