"""Bad scales, models, weights, data and options: one clear error, nothing written, inputs intact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sciSR
from sciSR.data import sample_path

from .conftest import NC, TIF

A = np.random.default_rng(0).random((12, 16)).astype(np.float32)


def _single_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg, msg
    return msg


# ---------------------------------------------------------------- scale
@pytest.mark.parametrize(
    ("scale", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (2.5, TypeError),
        ("4", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_bad_scale_is_refused(guard, scale, error) -> None:
    out = guard.root / "o.nc"
    with pytest.raises(error) as e:
        sciSR.downscale(guard.sample(NC), model="bicubic", scale=scale, out=out)
    assert "scale" in _single_line(e)
    assert not out.exists()


@pytest.mark.parametrize("scale", [2, 2.0, np.int64(2), np.int32(2), np.uint8(2), np.float64(2.0)])
def test_whole_number_scales_of_any_type_are_accepted(scale) -> None:
    assert sciSR.downscale(A, model="bicubic", scale=scale).shape == (24, 32)


def test_scale_one_is_identity_shaped() -> None:
    assert sciSR.downscale(A, model="bicubic", scale=1).shape == A.shape


def test_unsupported_scale_of_a_fixed_scale_model_names_the_choices() -> None:
    with pytest.raises(ValueError) as e:
        sciSR.downscale(A, model="rcan", scale=7, pretrained=False)
    assert "supports scales" in _single_line(e)


# ---------------------------------------------------------------- models
@pytest.mark.parametrize("name", ["bogus", "", "RCAN-XL", "bicubic "])
def test_unknown_model_name(name) -> None:
    with pytest.raises(ValueError) as e:
        sciSR.downscale(A, model=name, scale=2)
    assert "unknown model" in _single_line(e)


def test_unknown_model_option_is_named() -> None:
    with pytest.raises((TypeError, ValueError)) as e:
        sciSR.downscale(A, model="espcn", scale=2, pretrained=False, n_feets=8)
    assert "n_feets" in _single_line(e)


def test_model_of_wrong_type() -> None:
    with pytest.raises((TypeError, ValueError)) as e:
        sciSR.downscale(A, model=42, scale=2)
    assert "42" in _single_line(e)


def test_identity_module_gets_the_pipelines_message() -> None:
    with pytest.raises(ValueError) as e:
        sciSR.downscale(A, model=torch.nn.Identity(), scale=2)
    assert "expected ×2" in _single_line(e)


def test_weights_with_nan_fail_instead_of_writing_nan(guard) -> None:
    net = sciSR.create_model("espcn", scale=2, pretrained=False)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan"))
    out = guard.root / "o.tif"
    with pytest.raises(ValueError) as e:
        sciSR.downscale(guard.sample(TIF), model=net, scale=2, out=out)
    assert "NaN" in _single_line(e)
    assert not out.exists()


def test_missing_weight_file(guard) -> None:
    with pytest.raises((FileNotFoundError, ValueError)) as e:
        sciSR.downscale(A, model="espcn", scale=2, weights=guard.root / "none.safetensors")
    assert "none.safetensors" in _single_line(e)


@pytest.mark.parametrize("name", ["w.safetensors", "w.pth", "w.pt"])
def test_corrupt_weight_file(guard, name) -> None:
    w = guard.file(name, np.random.default_rng(1).bytes(3000))
    with pytest.raises(ValueError) as e:
        sciSR.downscale(A, model="espcn", scale=2, weights=w)
    assert name in _single_line(e)


def test_empty_weight_file(guard) -> None:
    w = guard.file("empty.safetensors", b"")
    with pytest.raises(ValueError) as e:
        sciSR.downscale(A, model="espcn", scale=2, weights=w)
    assert "empty.safetensors" in _single_line(e)


def test_weights_of_another_architecture_are_refused(guard) -> None:
    from safetensors.torch import save_file

    espcn = sciSR.create_model("espcn", scale=2, pretrained=False)
    w = guard.root / "espcn.safetensors"
    save_file({k: v.contiguous() for k, v in espcn.state_dict().items()}, w)
    guard.watch(w)
    with pytest.raises(ValueError) as e:
        sciSR.load_checkpoint(w, arch="vdsr", scale=2)
    assert "espcn.safetensors" in _single_line(e) or "vdsr" in _single_line(e)


def test_unknown_checkpoint_architecture(guard) -> None:
    from safetensors.torch import save_file

    w = guard.root / "w.safetensors"
    save_file({"conv.weight": torch.zeros(4, 1, 3, 3)}, w)
    guard.watch(w)
    with pytest.raises(ValueError) as e:
        sciSR.load_checkpoint(w, arch="bogus")
    assert "bogus" in _single_line(e)


def test_pickled_code_in_a_checkpoint_is_not_run(guard, tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    w = guard.root / "evil.pth"
    torch.save({"state_dict": Evil()}, w)
    guard.watch(w)
    with pytest.raises(ValueError):
        sciSR.downscale(A, model="espcn", scale=2, weights=w)
    assert not marker.exists()


# ---------------------------------------------------------------- data
@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (np.full((8, 8), np.nan, np.float32), ValueError, "NaN"),
        (np.full((8, 8), np.inf, np.float32), ValueError, "NaN/inf"),
        (np.zeros((0, 8), np.float32), ValueError, "empty"),
        (np.zeros(8, np.float32), ValueError, "2 dims"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "dtype"),
        (np.zeros((4, 4), complex), TypeError, "dtype"),
        (np.zeros((4, 4), bool), TypeError, "dtype"),
        (np.zeros((4, 4), object), TypeError, "dtype"),
        ({"a": 1}, TypeError, "dict"),
    ],
)
def test_bad_arrays(data, error, words) -> None:
    with pytest.raises(error) as e:
        sciSR.downscale(data, model="bicubic", scale=2)
    assert words in _single_line(e)


def test_nan_only_variable_in_a_file(guard) -> None:
    ds = sciSR.open(sample_path(NC))
    ds["tas"] = ds["tas"] * np.nan
    p = guard.root / "nan.nc"
    sciSR.write(ds, p)
    guard.watch(p)
    with pytest.raises(ValueError) as e:
        sciSR.downscale(p, model="bicubic", scale=2, out=guard.root / "o.nc")
    assert "NaN" in _single_line(e) or "valid" in _single_line(e)
    assert not (guard.root / "o.nc").exists()


def test_tiny_arrays_work() -> None:
    assert sciSR.downscale(np.ones((1, 1), np.float32), model="bicubic", scale=3).shape == (3, 3)


def test_huge_values_do_not_overflow_to_inf() -> None:
    big = (A * 3e38).astype(np.float32)
    out = sciSR.downscale(big, model="bilinear", scale=2)
    assert np.isfinite(out).all()


def test_integer_input_with_source_dtype() -> None:
    ints = (A * 100).astype(np.int16)
    out = sciSR.downscale(ints, model="bicubic", scale=2, dtype="source")
    assert out.dtype == np.int16


@pytest.mark.parametrize("dtype", ["bogus", "float128x", object])
def test_bad_output_dtype(dtype) -> None:
    with pytest.raises(TypeError) as e:
        sciSR.downscale(A, model="bicubic", scale=2, dtype=dtype)
    assert "dtype" in _single_line(e)


def test_missing_variable_lists_the_real_ones(guard) -> None:
    with pytest.raises(ValueError) as e:
        sciSR.downscale(guard.sample(NC), model="bicubic", scale=2, variables=["nope"])
    assert "'tas'" in _single_line(e)


def test_channel_mismatch() -> None:
    with pytest.raises(ValueError) as e:
        sciSR.downscale(A, model="espcn", scale=2, pretrained=False, in_channels=3)
    assert "channels" in _single_line(e)


def test_out_for_arrays_is_refused(guard) -> None:
    with pytest.raises(ValueError) as e:
        sciSR.downscale(A, model="bicubic", scale=2, out=guard.root / "a.nc")
    assert "out=" in _single_line(e)
    assert not (guard.root / "a.nc").exists()


def test_bad_tile_and_overlap(guard) -> None:
    for kw in ({"tile": -1}, {"overlap": -3}, {"batch_size": 0}):
        with pytest.raises((ValueError, TypeError)) as e:
            sciSR.downscale(A, model="bicubic", scale=2, **kw)
        _single_line(e)


def test_bad_precision_and_device() -> None:
    for kw in ({"precision": "fp8"}, {"device": "tpu"}, {"norm": "bogus"}, {"blend": "smear"}):
        with pytest.raises((ValueError, TypeError, RuntimeError)) as e:
            sciSR.downscale(A, model="bicubic", scale=2, **kw)
        _single_line(e)
