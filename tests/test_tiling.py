"""Tiled inference reproduces whole-image inference (DESIGN §5)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sciSR
from sciSR.models.base import SRModel
from sciSR.pipeline import Pipeline
from sciSR.tiling import Tiler, window_starts


@pytest.mark.parametrize(
    ("length", "window", "stride"), [(10, 4, 2), (100, 37, 20), (7, 7, 3), (5, 9, 4), (64, 20, 6)]
)
def test_windows_cover_with_minimum_overlap(length: int, window: int, stride: int) -> None:
    starts = window_starts(length, window, stride)
    w = min(window, length)
    assert starts[0] == 0 and starts[-1] + w == length
    for a, b in itertools.pairwise(starts):
        assert a + w - b >= window - stride  # overlap at least window - stride


@pytest.mark.parametrize("shape", [(45, 38), (17, 101), (64, 64)])
@pytest.mark.parametrize("tile", [5, 16, 33])
def test_crop_windows_partition_and_keep_halo(shape: tuple[int, int], tile: int) -> None:
    h, w = shape
    t = Tiler(tile=tile, halo=4, scale=2)
    cover = np.zeros(shape, dtype=int)
    for win in t.windows(h, w):
        cover[win.ky0 : win.ky1, win.kx0 : win.kx1] += 1
        # every kept cell has ≥ halo context inside the window, except on true borders
        assert win.ky0 - win.y0 >= 4 or win.top
        assert win.y1 - win.ky1 >= 4 or win.bottom
        assert win.kx0 - win.x0 >= 4 or win.left
        assert win.x1 - win.kx1 >= 4 or win.right
    assert (cover == 1).all()


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("tile", [7, 16, 40])
@pytest.mark.parametrize("name", ["edsr_baseline", "espcn", "srcnn"])
def test_tiled_equals_whole_image(name: str, scale: int, tile: int) -> None:
    torch.manual_seed(0)
    m = sciSR.create_model(
        name, scale=scale, in_channels=1, pretrained=False, **sciSR.models.get_entry(name).tiny
    )
    x = np.random.default_rng(scale).standard_normal((2, 1, 43, 57)).astype(np.float32)
    whole = Pipeline.build(m, scale, tile=0, precision="fp32", norm=None)
    tiled = Pipeline.build(m, scale, tile=tile, precision="fp32", norm=None)
    a = whole.run(x, whole.fit(x))
    b = tiled.run(x, tiled.fit(x))
    assert np.abs(a - b).max() < 1e-4


def test_full_size_edsr_baseline_tiled_equals_whole() -> None:
    torch.manual_seed(0)
    m = sciSR.create_model("edsr_baseline", scale=2, in_channels=1, pretrained=False)
    assert m.spec.receptive_field >= 34
    x = np.random.default_rng(0).random((1, 1, 90, 75)).astype(np.float32)
    a = sciSR.downscale(x, model=m, scale=2, tile=0, precision="fp32", norm=None)
    b = sciSR.downscale(x, model=m, scale=2, tile=20, precision="fp32", norm=None)
    assert np.abs(a - b).max() < 1e-4


@pytest.mark.parametrize("blend", ["hann", "gaussian"])
def test_blending_is_exact_for_a_linear_equivariant_map(blend: str) -> None:
    # bicubic is equivariant, so any convex blend of its tiles reproduces it exactly
    x = np.random.default_rng(0).random((1, 1, 50, 61)).astype(np.float32)
    whole = Pipeline.build("bicubic", 3, tile=0, precision="fp32", norm=None)
    tiled = Pipeline.build("bicubic", 3, tile=12, overlap=4, blend=blend, precision="fp32", norm=None)
    np.testing.assert_allclose(tiled.run(x, tiled.fit(x)), whole.run(x, whole.fit(x)), atol=1e-5)


class _EdgeArtefactNet(SRModel):
    """Nearest ×s plus +1 on the outer ``k`` HR pixels of whatever it is given.

    It depends on where the tile ends, so it is not translation-equivariant; a correct blend
    gives zero weight to the outer half of each interior halo and so never sees the artefact.
    """

    name = "edge_artefact"
    equivariant = False
    upsampling = "post"

    def __init__(self, scale: int, k: int) -> None:
        super().__init__(scale, 1)
        self.k = k
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # learned, so the tiler uses a budget

    def receptive_field(self) -> None:
        return None

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest") + self.dummy
        edge = torch.zeros_like(y)
        k = self.k
        edge[..., :k, :] = edge[..., -k:, :] = edge[..., :, :k] = edge[..., :, -k:] = 1.0
        return y + edge


@pytest.mark.parametrize("blend", ["hann", "gaussian"])
def test_blending_hides_tile_edge_artefacts_of_non_equivariant_nets(blend: str) -> None:
    s, halo = 2, 8
    m = _EdgeArtefactNet(s, k=halo // 2 * s)  # artefact exactly as wide as the zero-weight margin
    x = np.random.default_rng(1).random((1, 1, 70, 90)).astype(np.float32)
    whole = Pipeline.build(m, s, tile=0, precision="fp32", norm=None)
    tiled = Pipeline.build(m, s, tile=20, overlap=halo, blend=blend, precision="fp32", norm=None)
    assert tiled.blend == blend and len(tiled.tiler_for(70, 90).windows(70, 90)) > 4
    np.testing.assert_allclose(tiled.run(x, tiled.fit(x)), whole.run(x, whole.fit(x)), atol=1e-6)
    # a margin one pixel too narrow lets the artefact through at interior seams
    wide = _EdgeArtefactNet(s, k=halo // 2 * s + 1)
    tw = Pipeline.build(wide, s, tile=20, overlap=halo, blend=blend, precision="fp32", norm=None)
    ww = Pipeline.build(wide, s, tile=0, precision="fp32", norm=None)
    assert np.abs(tw.run(x, tw.fit(x)) - ww.run(x, ww.fit(x))).max() > 1e-3


def test_non_equivariant_model_defaults_to_blending() -> None:
    torch.manual_seed(0)
    m = sciSR.create_model("rcan", scale=2, pretrained=False, **sciSR.models.get_entry("rcan").tiny)
    p = Pipeline.build(m, 2, tile=24, precision="fp32")
    assert p.blend == "hann" and p.halo == 16
    x = np.random.default_rng(1).random((1, 1, 80, 70)).astype(np.float32)
    whole = Pipeline.build(m, 2, tile=0, precision="fp32")
    a, b = whole.run(x, whole.fit(x)), p.run(x, p.fit(x))
    # only the global pooling of channel attention sees the tile: differences stay ~1e-5 of the range
    assert np.abs(a - b).max() < 1e-4 * (a.max() - a.min())


@pytest.mark.parametrize("mode", ["hann", "gaussian"])
def test_blend_profile_rises_from_the_interior_edge_and_is_flat_at_true_borders(mode: str) -> None:
    t = Tiler(tile=10, halo=4, scale=2, blend=mode)
    wins = t.windows(40, 40)
    inner = next(w for w in wins if not (w.top or w.bottom or w.left or w.right))
    prof = t.weight(inner)[inner.y1 - inner.y0, :].numpy()  # a row through the middle, HR pixels
    n, hh = len(prof), t.halo * t.scale
    assert (prof[: hh // 2] == 0).all() and (prof[n - hh // 2 :] == 0).all()  # outer half-halo unused
    rise = prof[hh // 2 : hh // 2 + hh]
    assert (np.diff(rise) > 0).all() and rise[0] > 0 and rise[-1] <= 1  # rises toward the centre
    np.testing.assert_allclose(prof[n - hh // 2 - hh : n - hh // 2], rise[::-1])  # symmetric
    assert (prof[hh // 2 + hh : n - hh // 2 - hh] == 1).all()  # flat core
    corner = next(w for w in wins if w.top and w.left)
    wc = t.weight(corner).numpy()
    assert (wc[0, : hh * 2] == 1).all() and (wc[: hh * 2, 0] == 1).all()  # true borders stay flat


def test_periodic_wrap_matches_explicit_padding() -> None:
    x = np.random.default_rng(2).random((1, 1, 20, 36)).astype(np.float32)
    p = Pipeline.build("bicubic", 2, tile=0, precision="fp32", norm=None)
    got = p.run(x, p.fit(x), periodic_x=True)
    pad = np.concatenate([x[..., -2:], x, x[..., :2]], axis=-1)
    ref = p.run(pad, p.fit(pad))[..., 4:-4]
    np.testing.assert_allclose(got, ref, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(1, 120),
    w=st.integers(1, 120),
    tile=st.integers(1, 50),
    halo=st.integers(0, 12),
    scale=st.integers(1, 4),
)
def test_windows_property(h: int, w: int, tile: int, halo: int, scale: int) -> None:
    """For any shape, tile and halo: kept regions partition the array and keep ≥ halo context."""
    t = Tiler(tile=tile, halo=halo, scale=scale)
    cover = np.zeros((h, w), dtype=int)
    sizes = set()
    for win in t.windows(h, w):
        sizes.add((win.y1 - win.y0, win.x1 - win.x0))
        assert 0 <= win.y0 <= win.ky0 < win.ky1 <= win.y1 <= h
        assert 0 <= win.x0 <= win.kx0 < win.kx1 <= win.x1 <= w
        assert win.ky0 - win.y0 >= halo or win.top
        assert win.y1 - win.ky1 >= halo or win.bottom
        assert win.kx0 - win.x0 >= halo or win.left
        assert win.x1 - win.kx1 >= halo or win.right
        cover[win.ky0 : win.ky1, win.kx0 : win.kx1] += 1
    assert (cover == 1).all()
    assert len(sizes) == 1  # one window size: tiles batch


@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 200), tile=st.integers(1, 40), halo=st.integers(0, 10))
def test_window_size_is_the_smallest_that_covers_with_the_fewest_windows(
    length: int, tile: int, halo: int
) -> None:
    """Windows are at most ``tile + 2·halo``, as few as that allows, and no larger than needed."""
    t = Tiler(tile=tile, halo=halo, scale=1)
    w = t.window_size(length, 1)[0]
    n = len({(win.y0, win.y1) for win in t.windows(length, 1)})
    if length <= tile + 2 * halo:
        assert (w, n) == (length, 1)
        return
    assert w <= tile + 2 * halo
    assert n == -(-(length - 2 * halo) // tile)  # fewest windows of at most tile + 2·halo
    assert n * w - (n - 1) * 2 * halo >= length  # they cover with overlaps of 2·halo
    assert n * (w - 1) - (n - 1) * 2 * halo < length  # one pixel less would not


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tile": 0, "halo": 2}, r"tile must be ≥ 1 and overlap ≥ 0, got tile=0, overlap=2"),
        ({"tile": 8, "halo": -1}, r"tile must be ≥ 1 and overlap ≥ 0, got tile=8, overlap=-1"),
        (
            {"tile": 8, "halo": 2, "blend": "linear"},
            r"unknown blend 'linear'; choose one of \('crop', 'hann'",
        ),
    ],
)
def test_tiler_refuses_bad_settings_with_a_clear_message(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Tiler(scale=2, **kwargs)


def _flank(mode: str, u: np.ndarray) -> np.ndarray:
    """Rising flank at relative positions ``u`` in (0, 1): raised cosine, or a Gaussian (σ = 0.4)
    centred on the inner end."""
    if mode == "hann":
        return 0.5 - 0.5 * np.cos(np.pi * u)
    return np.exp(-((1.0 - u) ** 2) / (2 * 0.4**2))


def _reference_profile(n: int, halo: int, mode: str, flat_start: bool, flat_end: bool) -> np.ndarray:
    """Weight of each of ``n`` HR pixels from its distance to the window's interior edges."""
    margin = min(halo // 2, n // 4)
    ramp = max(min(halo, n // 2 - margin), 1)
    d = np.arange(n)
    out = np.ones(n)
    for flat, dist in ((flat_start, d), (flat_end, n - 1 - d)):
        if flat:
            continue
        side = np.where(dist < margin, 0.0, 1.0)
        rising = (dist >= margin) & (dist < margin + ramp)
        side[rising] = _flank(mode, (dist[rising] - margin + 0.5) / ramp)
        out = np.minimum(out, side)
    return out


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 60),
    w=st.integers(1, 60),
    tile=st.integers(1, 20),
    halo=st.integers(1, 8),
    scale=st.integers(1, 3),
    mode=st.sampled_from(["hann", "gaussian"]),
)
def test_blend_weights_follow_the_documented_profile(
    h: int, w: int, tile: int, halo: int, scale: int, mode: str
) -> None:
    """Outer ``halo//2`` HR pixels of an interior side weigh 0, then the flank rises over ``halo``
    pixels (shorter in windows too small for two flanks); true borders are flat; the total
    weight is positive everywhere."""
    t = Tiler(tile=tile, halo=halo, scale=scale, blend=mode)
    total = np.zeros((h * scale, w * scale))
    for win in t.windows(h, w):
        got = t.weight(win)
        assert got.dtype == torch.float32
        ny, nx = (win.y1 - win.y0) * scale, (win.x1 - win.x0) * scale
        wy = _reference_profile(ny, halo * scale, mode, win.top, win.bottom)
        wx = _reference_profile(nx, halo * scale, mode, win.left, win.right)
        np.testing.assert_allclose(got.numpy(), np.outer(wy, wx), rtol=1e-6, atol=1e-7)
        total[win.y0 * scale : win.y1 * scale, win.x0 * scale : win.x1 * scale] += got.numpy()
    assert (total > 0).all()


def test_hann_flanks_of_neighbouring_windows_are_complementary() -> None:
    """A raised-cosine flank and its mirror image sum to 1 pixel by pixel (sin² + cos²)."""
    t = Tiler(tile=30, halo=6, scale=2, blend="hann")
    inner = next(w for w in t.windows(120, 120) if not (w.top or w.bottom or w.left or w.right))
    prof = t.weight(inner)[(inner.y1 - inner.y0), :].numpy().astype(np.float64)
    m, r = 6, 12  # halo·s // 2 zero pixels, then halo·s rising ones
    rise = prof[m : m + r]
    np.testing.assert_allclose(rise + rise[::-1], 1.0, atol=1e-6)
    gauss = Tiler(tile=30, halo=6, scale=2, blend="gaussian").weight(inner)[(inner.y1 - inner.y0), :]
    assert np.abs(gauss.numpy()[m : m + r] - rise).max() > 0.05  # the two modes differ


def test_weight_is_made_on_the_requested_device() -> None:
    t = Tiler(tile=8, halo=2, scale=2, blend="hann")
    win = t.windows(30, 30)[4]
    got = t.weight(win, torch.device("meta"))
    assert got.device.type == "meta" and got.dtype == torch.float32


@pytest.mark.parametrize("halo", [0, 1, 3])
def test_merge_into_accumulates_the_window_weight(halo: int) -> None:
    """Blend modes add ``y·weight`` and ``weight`` (all ones without a halo); crop copies the kept part."""
    s = 2
    t = Tiler(tile=6, halo=halo, scale=s, blend="hann")
    wins = t.windows(20, 20)
    inner = next(w for w in wins if not (w.top or w.bottom or w.left or w.right))
    hh, ww = (inner.y1 - inner.y0) * s, (inner.x1 - inner.x0) * s
    y = torch.arange(2 * hh * ww, dtype=torch.float32).reshape(2, hh, ww)
    out, wsum = torch.zeros(2, 40, 40), torch.zeros(40, 40)
    t.merge_into(out, wsum, y, inner)
    expect_w = torch.ones(hh, ww) if halo == 0 else t.weight(inner)
    region = (slice(inner.y0 * s, inner.y1 * s), slice(inner.x0 * s, inner.x1 * s))
    torch.testing.assert_close(wsum[region], expect_w)
    torch.testing.assert_close(out[(slice(None), *region)], y * expect_w)
    assert wsum.sum() == expect_w.sum() and out.abs().sum() == (y * expect_w).abs().sum()
    # the weight follows the tile's device (a GPU tile gets a GPU weight)
    meta = torch.zeros(2, 40, 40, device="meta")
    t.merge_into(meta, torch.zeros(40, 40, device="meta"), y.to("meta"), inner)
    # crop mode copies exactly the kept region
    c = Tiler(tile=6, halo=halo, scale=s)
    win = next(w for w in c.windows(20, 20) if not (w.top or w.bottom or w.left or w.right))
    y = torch.arange(2 * hh * ww, dtype=torch.float32).reshape(2, hh, ww) + 1
    out = torch.zeros(2, 40, 40)
    c.merge_into(out, None, y, win)
    kept = (slice(None), slice(win.ky0 * s, win.ky1 * s), slice(win.kx0 * s, win.kx1 * s))
    oy, ox = (win.ky0 - win.y0) * s, (win.kx0 - win.x0) * s
    torch.testing.assert_close(
        out[kept], y[:, oy : oy + (win.ky1 - win.ky0) * s, ox : ox + (win.kx1 - win.kx0) * s]
    )
    assert int((out != 0).sum()) == 2 * (win.ky1 - win.ky0) * (win.kx1 - win.kx0) * s * s


@pytest.mark.parametrize(
    "length,tile,halo", [(100, 16, 3), (16, 16, 3), (17, 16, 3), (7, 16, 3), (250, 64, 40)]
)
def test_lattice_windows_have_equal_cores_and_full_context(length, tile, halo):
    t = Tiler(tile, halo, 2, "crop", lattice=True)
    wins = t.windows(length, length)
    rows = sorted({(w.y0, w.y1, w.ky0, w.ky1) for w in wins})
    assert [k0 for _, _, k0, _ in rows] == list(range(0, length, tile))
    assert rows[-1][3] == length and all(r[3] == r[2] + tile for r in rows[:-1])
    for y0, y1, k0, k1 in rows:
        assert y0 >= 0 and y1 <= length and y1 - y0 == min(tile + 2 * halo, length)
        assert y0 == 0 or k0 - y0 >= halo  # interior sides keep a halo of context (or all there is)
        assert y1 == length or y1 - k1 >= halo


def test_lattice_tiling_gives_the_same_cropped_result():
    from sciSR.engine import Engine

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 5, padding=2), torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.PixelShuffle(2)
    ).eval()
    x = torch.rand(1, 1, 70, 53)
    eng = Engine(device=torch.device("cpu"), precision="fp32", progress=False)
    with torch.inference_mode():
        whole = net(x)
        lattice = eng.run(net, x, Tiler(20, 4, 2, "crop", lattice=True))
    assert len(Tiler(20, 4, 2, "crop", lattice=True).windows(70, 53)) == 4 * 3
    torch.testing.assert_close(lattice, whole, atol=1e-6, rtol=0)
