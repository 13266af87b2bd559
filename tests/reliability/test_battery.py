"""Every bad input of the battery (tests/reliability/battery.py) gets a clear error or a
documented acceptance (issue #14)."""

from __future__ import annotations

import pytest

from .battery import OUTCOMES, Case, cases, outcome

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gets_a_clear_error_or_a_documented_acceptance(case):
    result, detail = outcome(case)
    assert result in ("clear", "warned", "accepted"), f"{result}: {detail}"


def test_the_battery_is_large_and_its_names_unique():
    names = [case.name for case in CASES]
    assert len(names) >= 100 and len(set(names)) == len(names)
    assert all(case.raises or case.warns or case.accepted for case in CASES)


def test_outcome_tells_clear_from_unclear_and_silent():
    # the classifier the battery rests on: each outcome is reachable, none by default
    def fails(message):
        def call(tmp):
            raise ValueError(message)

        return call

    assert outcome(Case("c", fails("batch_size 0"), ValueError, ("batch_size",)))[0] == "clear"
    assert outcome(Case("u", fails("range() arg"), ValueError, ("batch_size",)))[0] == "unclear"
    assert outcome(Case("t", fails("x"), TypeError, ()))[0] == "unclear"
    assert outcome(Case("s", lambda tmp: None, ValueError, ()))[0] == "silent"
    assert outcome(Case("w", lambda tmp: None, warns=UserWarning, says=("x",)))[0] == "silent"
    assert outcome(Case("a", lambda tmp: None, accepted="docs"))[0] == "accepted"
    assert set(OUTCOMES) == {"clear", "warned", "accepted", "unclear", "silent"}
