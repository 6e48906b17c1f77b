"""Normalizers: global stats over valid values, exact inverse, attrs round trip."""

from __future__ import annotations

import numpy as np
import pytest

from sciSR.normalize import Normalizer, get_normalizer, list_normalizers


@pytest.mark.parametrize("kind", ["zscore", "minmax", "percentile", "log1p", "none"])
def test_forward_inverse_round_trip(kind: str) -> None:
    x = np.random.default_rng(0).gamma(2.0, 3.0, size=(4, 20, 30))
    x[0, :3, :3] = np.nan
    nz = get_normalizer(kind).fit(x)
    y = nz.forward(x)
    np.testing.assert_allclose(nz.inverse(y), x, rtol=1e-10, atol=1e-10)
    back = Normalizer.from_attrs(nz.to_attrs())
    assert back.kind == nz.kind and back.params == pytest.approx(nz.params)


def test_zscore_uses_valid_values_only() -> None:
    x = np.array([1.0, 2.0, 3.0, np.nan, 1e30])
    nz = get_normalizer("zscore").fit(x, valid=np.array([1, 1, 1, 1, 0], bool))
    assert nz.params["mean"] == pytest.approx(2.0)
    assert nz.params["std"] == pytest.approx(np.std([1, 2, 3]))


def test_constant_field_does_not_divide_by_zero() -> None:
    for kind in ("zscore", "minmax", "percentile"):
        nz = get_normalizer(kind).fit(np.full((5, 5), 7.0))
        assert np.isfinite(nz.forward(np.full((5, 5), 7.0))).all()


def test_all_invalid_and_bad_kind_errors() -> None:
    with pytest.raises(ValueError, match="all NaN"):
        get_normalizer("zscore").fit(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="unknown norm"):
        get_normalizer("gauss")
    with pytest.raises(ValueError, match="non-negative"):
        get_normalizer("log1p").fit(np.array([-1.0, 2.0]))
    assert "zscore" in list_normalizers()
