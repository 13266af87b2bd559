"""CI runs README's test command, pinned to constraints.txt; nox reports both suite parts."""

from __future__ import annotations

import functools
import importlib.util
import re
import tomllib
from pathlib import Path

import nox
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^python3 -m pip install .* -m nox -s lint tests$", readme, re.M)
    assert len(commands) == 1, commands
    return commands[0]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt line {line!r} is not an exact pin"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_ci_runs_the_readme_test_command_pinned_to_the_constraints():
    command = _readme_test_command()
    assert "-c constraints.txt" in command
    ci = (ROOT / ".ci" / "run").read_text()
    assert command.replace("python3", '"$PYTHON"') in ci


def test_constraints_pin_every_dependency_within_pyproject_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in ("test", "docs"):
        requirements += project["optional-dependencies"][extra]
    pins = _pins()
    for text in requirements + ["nox", "ruff"]:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name])


@functools.cache
def _noxfile():
    spec = importlib.util.spec_from_file_location("jdl_noxfile", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Session:
    """Enough of ``nox.Session`` for ``_suite``: records runs, fails the chosen ones."""

    def __init__(self, failing: set[str]):
        self.posargs: list[str] = []
        self.failing = failing
        self.markers: list[str] = []

    def run(self, *args, env=None):
        marker = args[args.index("-m") + 1]
        self.markers.append(marker)
        if marker in self.failing:
            raise nox.command.CommandFailed()

    def error(self, message):
        raise RuntimeError(message)


SINGLE = "not multidevice and not interop and not gallery and not stress"


@pytest.mark.parametrize("failing", [set(), {SINGLE}, {"multidevice"}, {SINGLE, "multidevice"}])
def test_nox_tests_runs_the_multidevice_part_even_when_the_first_fails(failing):
    session = _Session(failing)
    if failing:
        with pytest.raises(RuntimeError, match="part of the suite failed") as err:
            _noxfile()._suite(session)
        assert ("single-device" in str(err.value)) == (SINGLE in failing)
        assert ("multi-device" in str(err.value)) == ("multidevice" in failing)
    else:
        _noxfile()._suite(session)
    assert session.markers == [SINGLE, "multidevice"]
