"""The scaling benchmark's fit: a non-negative a + b T + c T^2, so every term is a time and shares stay <= 1."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_scaling import quadratic_fit


def test_recovers_an_exact_quadratic() -> None:
    ts = [16, 27, 81, 243]
    fit = quadratic_fit(ts, [5.0 + 2.0 * t + 0.01 * t * t for t in ts])
    assert (fit["a_ms"], fit["b_ms_per_frame"], fit["c_ms_per_frame2"]) == pytest.approx((5.0, 2.0, 0.01))
    assert fit["t2_share"][-1] == pytest.approx(0.01 * 243 ** 2 / (5 + 2 * 243 + 0.01 * 243 ** 2))


def test_a_negative_linear_term_is_refused() -> None:
    ts = [16, 27, 81, 243]
    ms = [93.6, 158.0, 403.8, 3180.0]  # a measured sweep whose unconstrained fit has b < 0
    t = np.asarray(ts, dtype=float)
    unconstrained = np.linalg.lstsq(np.stack([t ** 0, t, t * t], 1), np.asarray(ms), rcond=None)[0]
    assert unconstrained[1] < 0
    fit = quadratic_fit(ts, ms)
    assert min(fit["a_ms"], fit["b_ms_per_frame"], fit["c_ms_per_frame2"]) >= 0
    assert all(0 <= s <= 1 for s in fit["t2_share"])
    assert quadratic_fit([16, 27], [1.0, 2.0]) is None
