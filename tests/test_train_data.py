"""The patch sampler: every LR patch is the degradation of its own HR patch, every HR patch is a crop
of a training image under one of the 8 flips/rotations, and the draw covers all positions,
orientations and images (in proportion to their size); the texture filter works."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from sciSR import metrics
from sciSR.data import sample_path
from sciSR.train import degrade
from sciSR.train.data import PatchSampler, load_luma


@pytest.fixture(scope="module")
def luma() -> np.ndarray:
    return load_luma(sample_path("ladybird_crop.png"))


def _dihedral(a: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/rotations of a square patch: rot90^k, then optionally a left-right flip."""
    return [np.rot90(a, k)[:, ::-1] if flip else np.rot90(a, k) for k in range(4) for flip in (False, True)]


def _locate(hr: np.ndarray, images: list[np.ndarray]) -> tuple[int, int, int, int]:
    """(image, y, x, o) of the crop ``raw`` with ``_dihedral(raw)[o] == hr`` (exact match, by search)."""
    for raw in _dihedral(hr):  # the group is closed: the untransformed crop is one of these
        for i, im in enumerate(images):
            ys, xs = np.nonzero((sliding_window_view(im, hr.shape) == raw).all(axis=(2, 3)))
            if len(ys):
                o = next(o for o, t in enumerate(_dihedral(raw)) if np.array_equal(t, hr))
                return i, int(ys[0]), int(xs[0]), o
    raise AssertionError("an HR patch is not a flip/rotation of any crop of the training images")


def test_load_luma_is_bt601_luma_of_the_photo(luma: np.ndarray) -> None:
    from PIL import Image

    with Image.open(sample_path("ladybird_crop.png")) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    assert luma.dtype == np.float32 and luma.shape == (256, 256)
    np.testing.assert_allclose(luma, metrics.rgb_to_y(rgb), rtol=0, atol=1e-6)
    small = load_luma(sample_path("ladybird_crop.png"), max_side=100)
    assert small.shape == (100, 100) and abs(float(small.mean()) - float(luma.mean())) < 0.01


@pytest.mark.parametrize(("scale", "method"), [(2, "bicubic"), (4, "area"), (3, "matlab")])
def test_every_lr_patch_is_the_degradation_of_its_hr_patch_at_the_same_place(luma, scale, method) -> None:
    images = [luma[:70, :90], luma[100:160, 150:230]]
    patch = 8 * scale
    s = PatchSampler(images, scale=scale, patch=patch, method=method, seed=3, min_std=0.0)
    lr, hr = s.batch(12)
    assert lr.shape == (12, 1, 8, 8) and hr.shape == (12, 1, patch, patch)
    assert lr.dtype == hr.dtype == torch.float32
    orientations = set()
    for k in range(12):
        im_i, y, x, o = _locate(hr[k, 0].numpy(), images)
        orientations.add(o)
        raw = images[im_i][y : y + patch, x : x + patch]
        # LR from the raw crop, then the same flip/rotation: pairing and augmentation agree
        lr_raw = degrade(torch.from_numpy(np.ascontiguousarray(raw))[None, None], scale, method)[0, 0].numpy()
        # (all three degradations are symmetric, so they commute with flips and rotations)
        np.testing.assert_allclose(lr[k, 0].numpy(), _dihedral(lr_raw)[o], rtol=0, atol=1e-5)
        # and in every case: LR = degrade(HR) sample by sample, as a batch of one
        alone = degrade(hr[k : k + 1], scale, method)[0, 0]
        torch.testing.assert_close(lr[k, 0], alone, rtol=0, atol=1e-6)
    assert len(orientations) >= 3  # augmentation is on


def test_augmentation_is_applied_to_lr_and_hr_together(luma) -> None:
    """A flipped HR patch must come with the flipped LR (block mean commutes with flips), not the LR of the
    unflipped crop: the sampler's LR equals the LR of the raw crop transformed like the HR."""
    img = luma[40:120, 60:150]
    s = PatchSampler([img], scale=4, patch=32, method="area", seed=11, min_std=0.0)
    lr, hr = s.batch(16)
    mismatched = 0
    for k in range(16):
        _i, y, x, o = _locate(hr[k, 0].numpy(), [img])
        raw = img[y : y + 32, x : x + 32]
        lr_raw = raw.reshape(8, 4, 8, 4).mean(axis=(1, 3))
        np.testing.assert_allclose(lr[k, 0].numpy(), _dihedral(lr_raw)[o], rtol=0, atol=1e-6)
        mismatched += not np.allclose(lr[k, 0].numpy(), lr_raw, atol=1e-6)
    assert mismatched >= 8  # most samples are transformed, so the check above had teeth


def test_draw_covers_every_position_orientation_and_image_by_size(luma) -> None:
    small, big = luma[:34, :35], luma[50:82, 100:164] + 10.0  # 3×4 positions; 1×33 positions, tagged +10
    s = PatchSampler([small, big], scale=2, patch=32, seed=0, min_std=0.0)
    _lr, hr = s.batch(300)
    pos, orient, from_big = set(), set(), 0
    for k in range(300):
        a = hr[k, 0].numpy()
        if a.mean() > 5:
            from_big += 1
            continue
        _i, y, x, o = _locate(a, [small])
        pos.add((y, x))
        orient.add(o)
    assert pos == {(y, x) for y in range(3) for x in range(4)}  # the last row/column is reachable
    assert orient == set(range(8))
    # images drawn in proportion to their size: 2048 / (1190 + 2048) = 0.63
    assert 0.55 < from_big / 300 < 0.71


def test_texture_filter_redraws_flat_patches(luma) -> None:
    img = np.full((64, 160), 0.5, np.float32)
    img[:, 100:] = luma[96:160, 64:124]  # textured strip on the right; most windows are flat
    flat = PatchSampler([img], 2, patch=32, seed=5, min_std=0.0).batch(40)[1].std(dim=(1, 2, 3))
    assert (flat < 1e-6).sum() >= 10
    kept = PatchSampler([img], 2, patch=32, seed=5, min_std=0.04).batch(40)[1].std(dim=(1, 2, 3))
    assert float(kept.min()) >= 0.04


def test_sampler_is_deterministic_per_seed_and_checks_its_input(luma) -> None:
    a = PatchSampler([luma], 2, patch=32, seed=7).batch(4)
    b = PatchSampler([luma], 2, patch=32, seed=7).batch(4)
    c = PatchSampler([luma], 2, patch=32, seed=8).batch(4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    with pytest.raises(ValueError, match="multiple of scale"):
        PatchSampler([luma], 3, patch=32)
    with pytest.raises(ValueError, match="at least 96"):
        PatchSampler([luma[:50, :200]], 2, patch=96)


def test_load_luma_converts_any_mode_and_shrinks_the_longer_side(luma, tmp_path) -> None:
    from PIL import Image

    with Image.open(sample_path("ladybird_crop.png")) as im:
        rgb_img = im.convert("RGB")
    gray = np.asarray(rgb_img.convert("L"))  # uint8
    Image.fromarray(gray).save(tmp_path / "gray.png")
    # a grey pixel g has R = G = B = g, so its luma is (16 + 219·g/255)/255
    want = (16 + 219 * (gray / 255.0)) / 255.0
    np.testing.assert_allclose(load_luma(tmp_path / "gray.png"), want, atol=1e-6)
    rgb_img.crop((0, 0, 256, 200)).save(tmp_path / "wide.png")  # 256 wide, 200 high
    small = load_luma(tmp_path / "wide.png", max_side=100)
    assert small.shape == (78, 100)
    ref = np.asarray(rgb_img.crop((0, 0, 256, 200)).resize((100, 78), Image.Resampling.LANCZOS), np.float64)
    np.testing.assert_allclose(small, metrics.rgb_to_y(ref / 255.0), atol=1e-6)
    assert load_luma(tmp_path / "wide.png", max_side=256).shape == (200, 256)  # already small enough


def test_sampler_defaults_and_dtype(luma) -> None:
    s = PatchSampler([luma.astype(np.float64)], 2)
    lr, hr = s.batch(2)
    assert hr.shape == (2, 1, 96, 96) and lr.shape == (2, 1, 48, 48)
    assert hr.dtype == lr.dtype == torch.float32
    assert s.min_std == 0.04
    assert torch.equal(hr, PatchSampler([luma], 2, seed=0).batch(2)[1])


def test_rotations_and_flips_are_uniform(luma) -> None:
    """rot90 by k ∈ {0, 1, 2, 3} and a flip with probability ½: each of the 8 orientations ≈ 1/8."""
    small = luma[:34, :35]
    _lr, hr = PatchSampler([small], scale=2, patch=32, seed=1, min_std=0.0).batch(400)
    counts = np.bincount([_locate(hr[k, 0].numpy(), [small])[3] for k in range(400)], minlength=8)
    rotations = counts.reshape(4, 2).sum(axis=1)  # orientation index o = 2·k + flip
    assert ((rotations > 70) & (rotations < 130)).all(), rotations  # 100 expected, sd 8.7
    assert 160 < counts[1::2].sum() < 240, counts  # flipped: 200 expected, sd 10


def test_draws_follow_the_documented_procedure(luma) -> None:
    """Replay with the same generator: image with probability ∝ its size, y and x uniform over every
    valid corner, redrawn while std < min_std (at most 10 tries, the last one kept), then rot90 by
    k ∈ [0, 4) and a left-right flip when a uniform draw is below ½."""
    flat = np.full((40, 40), 0.5, np.float32)
    flat[:, 30:] = luma[100:140, 100:110]  # only windows reaching x ≥ 30 have some texture
    images = [flat, luma[:50, :70]]
    s = PatchSampler(images, scale=2, patch=32, seed=21, min_std=0.12)
    got = s.batch(30)[1][:, 0].numpy()
    rng = np.random.default_rng([21, 1])  # batch(30) without an index is batch 1
    p = np.array([40 * 40, 50 * 70]) / (40 * 40 + 50 * 70)
    tries_used = []
    for k in range(30):
        tries = 0
        while tries < 10:
            tries += 1
            im = images[rng.choice(2, p=p)]
            y = rng.integers(0, im.shape[0] - 31)
            x = rng.integers(0, im.shape[1] - 31)
            crop = im[y : y + 32, x : x + 32]
            if crop.std() >= 0.12:
                break
        tries_used.append(tries if crop.std() >= 0.12 else 11)  # 11: gave up, kept the 10th draw
        crop = np.rot90(crop, int(rng.integers(0, 4)))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        np.testing.assert_array_equal(got[k], crop, err_msg=f"sample {k}")
    # the texture rule was exercised: first-try hits, redraws, and samples that gave up after 10 tries
    assert 1 in tries_used and 11 in tries_used and any(1 < t < 11 for t in tries_used), tries_used
