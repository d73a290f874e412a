"""median_ms against a scripted clock: warm-up calls untimed, the median of the timed calls, in ms."""

from __future__ import annotations

import itertools

import pytest

from lib import timing


def test_median_of_the_timed_calls_after_the_warmup(monkeypatch: pytest.MonkeyPatch) -> None:
    # each timed call reads the clock twice: (start, end) = (0, 0.003), (1, 1.001), (2, 2.010) s
    clock = iter([0.0, 0.003, 1.0, 1.001, 2.0, 2.010])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    calls = itertools.count()
    assert timing.median_ms(lambda: next(calls), repeats=3, warmup=2) == pytest.approx(3.0)
    assert next(calls) == 5  # 2 warm-up + 3 timed
