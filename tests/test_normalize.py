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


def test_fitted_needs_every_parameter() -> None:
    x = np.linspace(0.0, 9.0, 50)
    for kind, names in (
        ("zscore", {"mean", "std"}),
        ("minmax", {"min", "max"}),
        ("percentile", {"lo", "hi"}),
    ):
        assert not get_normalizer(kind).fitted
        nz = get_normalizer(kind).fit(x)
        assert nz.fitted and set(nz.params) == names
        partial = get_normalizer(kind, **{sorted(names)[0]: 1.0})  # one of two parameters given
        assert not partial.fitted
    assert get_normalizer("log1p").fit(x).fitted and not get_normalizer("log1p").fitted
    assert set(get_normalizer("log1p").fit(x).params) == {"scale"}
    assert not get_normalizer("log1p", other=1.0).fitted  # a parameter it does not use
    assert get_normalizer(None).fitted  # nothing to fit


def test_none_means_identity() -> None:
    for kind in (None, "none", "None"):
        nz = get_normalizer(kind)
        assert type(nz).__name__ == "Identity" and nz.kind == "none"
    assert type(Normalizer.from_attrs({})).__name__ == "Identity"  # attrs without a normalization


def test_valid_range_and_mask_given_as_integers() -> None:
    """``valid`` may be a 0/1 integer mask (GeoTIFF/NIfTI masks are uint8), not only booleans."""
    x = np.array([1.0, 2.0, 3.0, np.nan, 1e30, -5.0])
    assert get_normalizer("zscore").valid_range is None  # unfitted
    nz = get_normalizer("zscore").fit(x, valid=np.array([1, 1, 1, 1, 0, 0], np.uint8))
    assert nz.params["mean"] == pytest.approx(2.0) and nz.params["std"] == pytest.approx(np.std([1, 2, 3]))
    assert nz.valid_range == (1.0, 3.0)
    assert get_normalizer("minmax").fit(x).valid_range == (-5.0, 1e30)  # NaN skipped without a mask


def test_all_invalid_message_is_one_clear_line() -> None:
    with pytest.raises(
        ValueError, match=r"^no valid values to normalize: the data are all NaN/fill/nodata; check"
    ):
        get_normalizer("minmax").fit(np.array([1.0, np.nan]), valid=np.array([False, True]))


def test_minmax_and_percentile_map_their_anchors_to_0_and_1() -> None:
    x = np.random.default_rng(3).normal(10.0, 4.0, 2001)
    nz = get_normalizer("minmax").fit(x)
    assert nz.forward(x.min()) == 0.0 and nz.forward(x.max()) == pytest.approx(1.0)
    lo, hi = np.percentile(x, [1.0, 99.0])  # documented defaults
    p = get_normalizer("percentile").fit(x)
    assert p.params == pytest.approx({"lo": lo, "hi": hi})
    assert p.forward(lo) == pytest.approx(0.0) and p.forward(hi) == pytest.approx(1.0)
    q = get_normalizer("percentile", lower=5, upper=90).fit(x)
    assert q.params == pytest.approx(dict(zip(("lo", "hi"), np.percentile(x, [5.0, 90.0]))))
    assert get_normalizer("PERCENTILE", upper=80).fit(x).params["hi"] == pytest.approx(np.percentile(x, 80.0))
    assert get_normalizer("percentile", lower=20).fit(x).params["lo"] == pytest.approx(np.percentile(x, 20.0))


@pytest.mark.parametrize(
    ("kind", "offset", "unit"),
    [("zscore", "mean", "std"), ("minmax", "min", "max"), ("percentile", "lo", "hi")],
)
def test_constant_field_is_shifted_not_scaled(kind: str, offset: str, unit: str) -> None:
    """A constant field has no spread: it maps to 0 and one physical unit stays one unit."""
    nz = get_normalizer(kind).fit(np.full((5, 5), 7.0))
    assert nz.params[offset] == 7.0
    assert nz.forward(7.0) == 0.0 and nz.forward(8.0) == 1.0 and nz.forward(5.5) == -1.5
    assert nz.inverse(1.0) == 8.0


def test_log1p_accepts_zeros_clips_negatives_and_scales_by_the_log_spread() -> None:
    rain = np.array([0.0, 0.0, 0.1, 0.4, 1.0, 2.5])  # dry cells are exactly 0
    nz = get_normalizer("log1p").fit(rain)
    s = np.log1p(rain).std()
    assert s < 1 and nz.params["scale"] == pytest.approx(s)
    np.testing.assert_allclose(nz.forward(rain), np.log1p(rain) / s)
    np.testing.assert_array_equal(nz.forward(np.array([-0.3, -2.0])), [0.0, 0.0])  # negatives clip to 0
    wide = np.array([0.0, 10.0, 1000.0])
    assert get_normalizer("log1p").fit(wide).params["scale"] == pytest.approx(np.log1p(wide).std())
    dry = get_normalizer("log1p").fit(np.zeros(10))  # no spread: unit scale
    assert dry.params["scale"] == 1.0 and dry.forward(np.e - 1) == pytest.approx(1.0)


def test_log1p_works_on_torch_tensors_with_gradients() -> None:
    import torch

    nz = get_normalizer("log1p").fit(np.array([0.0, 1.0, 3.0, 7.0]))
    s = nz.params["scale"]
    x = torch.tensor([0.5, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
    y = nz.forward(x)
    assert isinstance(y, torch.Tensor)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([1 / (1.5 * s), 1 / (3.0 * s), 0.0], dtype=torch.float64))
    z = torch.tensor([0.25, 1.0], dtype=torch.float64, requires_grad=True)
    back = nz.inverse(z)
    back.sum().backward()
    torch.testing.assert_close(z.grad, s * torch.exp(z.detach() * s))


def test_attrs_are_sorted_json_and_accept_a_mapping() -> None:
    nz = get_normalizer("minmax").fit(np.array([2.0, 6.0]))
    attrs = nz.to_attrs()
    assert attrs == {"scisr_norm": "minmax", "scisr_norm_params": '{"max": 6.0, "min": 2.0}'}
    back = Normalizer.from_attrs({"scisr_norm": "minmax", "scisr_norm_params": {"min": 2.0, "max": 6.0}})
    assert back.params == {"min": 2.0, "max": 6.0} and back.forward(4.0) == 0.5
    bare = Normalizer.from_attrs({"scisr_norm": "zscore"})  # kind without parameters: unfitted
    assert bare.kind == "zscore" and bare.params == {} and not bare.fitted
    assert repr(get_normalizer("zscore").fit(np.array([1.0, 2.0, 3.0]))) == "ZScore(mean=2, std=0.816497)"


def test_registered_normalizers_are_found_by_kind(monkeypatch) -> None:
    from sciSR import normalize

    monkeypatch.setattr(normalize, "_NORMALIZERS", dict(normalize._NORMALIZERS))

    @normalize.register_normalizer
    class Halve(Normalizer):
        kind = "halve"

        def forward(self, x):
            return x / 2

    assert "halve" in list_normalizers()
    nz = get_normalizer("Halve")
    assert isinstance(nz, Halve) and nz.forward(3.0) == 1.5


def test_percentile_class_defaults_are_the_1st_and_99th_percentiles():
    from sciSR.normalize import Percentile

    x = np.random.default_rng(4).normal(size=1001)
    assert Percentile().fit(x).params == pytest.approx(dict(zip(("lo", "hi"), np.percentile(x, [1.0, 99.0]))))
