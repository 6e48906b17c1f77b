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
from sciSR.train.data import PatchSampler, load_luma, load_rgb


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


def test_load_luma_keeps_16_bit_greyscale(tmp_path) -> None:
    from PIL import Image

    grey = (np.arange(40 * 50).reshape(40, 50) * 31 % 65536).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")  # not an 8-bit mode: Pillow's RGB conversion would clip
    want = (16 + 219 * (grey / 65535.0)) / 255.0
    np.testing.assert_allclose(load_luma(tmp_path / "deep.png"), want, atol=1e-6)
    np.testing.assert_allclose(load_rgb(tmp_path / "deep.png"), np.stack([grey / 65535.0] * 3), atol=1e-6)
    assert load_luma(tmp_path / "deep.png", max_side=25).shape == (20, 25)


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


# --------------------------------------------------------------------------- batch index, threads, devices


def test_batch_i_depends_only_on_seed_and_index_whatever_the_order_or_thread(luma) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def sampler() -> PatchSampler:
        return PatchSampler([luma, luma[:100, 40:200]], 2, patch=32, seed=4, method="matlab")

    seq = sampler()
    first = [seq.batch(5) for _ in range(4)]  # no index: batches 1, 2, 3, 4
    s = sampler()
    backwards = {i: s.batch(5, i) for i in (4, 3, 2, 1)}
    with ThreadPoolExecutor(3) as pool:
        threaded = dict(zip((2, 4, 1, 3), pool.map(lambda i: s.batch(5, i), (2, 4, 1, 3))))
    for i in range(1, 5):
        for got in (backwards[i], threaded[i]):
            assert torch.equal(got[0], first[i - 1][0]) and torch.equal(got[1], first[i - 1][1])
    assert not torch.equal(first[0][1], first[1][1])
    assert torch.equal(s.batch(5, 0)[1], sampler().batch(5, 0)[1])  # index 0 is a batch too
    other_seed = PatchSampler([luma, luma[:100, 40:200]], 2, patch=32, seed=5, method="matlab")
    assert not torch.equal(other_seed.batch(5, 1)[1], first[0][1])
    with pytest.raises(ValueError, match="non-negative integer"):
        s.batch(2, -1)


def test_device_cpu_is_the_default_path(luma) -> None:
    a = PatchSampler([luma], 4, patch=32, seed=2, method="gaussian", device="cpu").batch(6, 9)
    b = PatchSampler([luma], 4, patch=32, seed=2, method="gaussian").batch(6, 9)
    assert a[0].device.type == "cpu" and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["bicubic", "matlab", "area", "gaussian", "kspace"])
def test_cuda_batches_equal_cpu_batches(luma, method) -> None:
    rgb = np.stack([luma, luma[::-1], luma[:, ::-1]])
    lr_small = rgb[:, ::4, ::4] + 0.01
    for kw in ({"degrade_options": {"noise": 0.02}}, {"lr_images": [lr_small]}):
        cpu = PatchSampler([rgb], 4, patch=48, seed=3, method=method, **kw)
        gpu = PatchSampler([rgb], 4, patch=48, seed=3, method=method, device="cuda", **kw)
        for i in (1, 7):
            (lc, hc), (lg, hg) = cpu.batch(8, i), gpu.batch(8, i)
            assert lg.device.type == hg.device.type == "cuda"
            assert torch.equal(hc, hg.cpu())  # crops, flips and rotations are exact
            torch.testing.assert_close(lg.cpu(), lc, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- options


def test_augment_off_keeps_every_patch_upright(luma) -> None:
    small = luma[:40, :44]
    _lr, hr = PatchSampler([small], scale=2, patch=32, seed=1, min_std=0.0, augment=False).batch(60)
    assert {_locate(hr[k, 0].numpy(), [small])[3] for k in range(60)} == {0}
    _lr, hr = PatchSampler([small], scale=2, patch=32, seed=1, min_std=0.0).batch(60)
    assert len({_locate(hr[k, 0].numpy(), [small])[3] for k in range(60)}) > 4


def test_multichannel_fields_are_cropped_and_degraded_together(luma) -> None:
    from PIL import Image

    with Image.open(sample_path("ladybird_crop.png")) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
    a, b = rgb[:, :40, :50], rgb[:, 100:150, 120:190]
    s = PatchSampler([a, b], 3, patch=24, seed=6, method="area", min_std=0.0)
    lr, hr = s.batch(10)
    assert hr.shape == (10, 3, 24, 24) and lr.shape == (10, 3, 8, 8) and s.channels == 3
    for k in range(10):
        im_i, y, x, o = _locate(hr[k, 1].numpy(), [a[1], b[1]])  # green
        src = [a, b][im_i]
        for c in (0, 2):  # red and blue come from the same place, transformed alike
            np.testing.assert_array_equal(hr[k, c].numpy(), _dihedral(src[c, y : y + 24, x : x + 24])[o])
    torch.testing.assert_close(lr, degrade(hr, 3, "area"), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"different channel counts \[1, 3\]"):
        PatchSampler([rgb, luma], 2, patch=32)


def test_lr_pairs_are_cropped_at_matching_positions(luma) -> None:
    """An LR image that is not a degradation of its HR (block mean plus a tag) shows that the sampler
    takes the LR crop at (y/s, x/s) of the HR crop, transformed alike, and degrades nothing."""
    hr_img = luma[:66, :91]  # 66 × 91: cropped to 64 × 88 = 4 × (16 × 22)
    lr_img = luma[:64, :88].reshape(16, 4, 22, 4).mean(axis=(1, 3)) + np.linspace(0, 0.05, 22)
    s = PatchSampler([hr_img], 4, patch=32, seed=8, min_std=0.0, lr_images=[lr_img])
    lr, hr = s.batch(20)
    assert lr.shape == (20, 1, 8, 8) and s.images[0].shape == (1, 64, 88)
    for k in range(20):
        _i, y, x, o = _locate(hr[k, 0].numpy(), [hr_img[:64, :88]])
        assert y % 4 == 0 and x % 4 == 0
        want = _dihedral(lr_img[y // 4 : y // 4 + 8, x // 4 : x // 4 + 8].astype(np.float32))[o]
        np.testing.assert_array_equal(lr[k, 0].numpy(), want)
    with pytest.raises(ValueError, match="1 LR images for 2 HR images"):
        PatchSampler([hr_img, hr_img], 4, patch=32, lr_images=[lr_img])
    with pytest.raises(ValueError, match="does not match its LR image"):
        PatchSampler([hr_img[:60]], 4, patch=32, lr_images=[lr_img])


def test_noise_option_is_part_of_the_batch_and_reproducible(luma) -> None:
    kw = {"method": "area", "seed": 3, "degrade_options": {"noise": 0.03}}
    a = PatchSampler([luma], 2, patch=64, **kw).batch(16, 2)
    b = PatchSampler([luma], 2, patch=64, **kw).batch(16, 2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    eps = (a[0] - degrade(a[1], 2, "area")).double()
    assert abs(float(eps.std()) - 0.03) < 0.002 and abs(float(eps.mean())) < 0.002
    c = PatchSampler([luma], 2, patch=64, **kw).batch(16, 3)
    eps_c = (c[0] - degrade(c[1], 2, "area")).double()
    assert not torch.allclose(eps[:, :, :4, :4], eps_c[:, :, :4, :4])  # fresh noise per batch


def test_one_axis_degradation_and_options_are_checked_up_front(luma) -> None:
    lr, hr = PatchSampler([luma], 4, patch=32, method="slice", augment=False).batch(3)
    assert lr.shape == (3, 1, 8, 32) and hr.shape == (3, 1, 32, 32)
    torch.testing.assert_close(lr, hr.reshape(3, 1, 8, 4, 32).mean(dim=3), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="unknown degradation 'nearest'"):
        PatchSampler([luma], 2, patch=32, method="nearest")
    with pytest.raises(ValueError, match="takes sigma, truncate"):
        PatchSampler([luma], 2, patch=32, method="gaussian", degrade_options={"sigmaa": 1})
    with pytest.raises(ValueError, match="must not hold a generator"):
        PatchSampler([luma], 2, patch=32, degrade_options={"noise": 0.1, "generator": None})


def test_input_errors_name_the_problem_and_the_fix(luma) -> None:
    with pytest.raises(ValueError, match=r"the largest is 50×200\); pass a smaller patch, e.g. patch=48"):
        PatchSampler([luma[:50, :200], luma[:30, :30]], 3, patch=96)
    bad = luma.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="training image 1 has NaN/inf"):
        PatchSampler([luma, bad], 2, patch=32)
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4, 5\)"):
        PatchSampler([np.zeros((2, 3, 4, 5))], 2, patch=2)
    with pytest.warns(UserWarning, match="1 of 2 training images are smaller than 64×64"):
        s = PatchSampler([luma, luma[:60, :200]], 2, patch=64)
    assert len(s.images) == 1
