"""Training data: photos as luma or RGB in [0, 1] and a random textured-patch sampler."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .degrade import add_noise, degrade

#: Full scale of the high-bit-depth greyscale Pillow modes (``"F"`` is taken as already in [0, 1]).
_GREY_FULL_SCALE = {m: 65535.0 for m in ("I;16", "I;16B", "I;16L", "I;16N", "I")} | {"F": 1.0}


def _open_rgb(path: str | Path, max_side: int | None) -> np.ndarray:
    """RGB in [0, 1] (float64, ``(H, W, 3)``), shrunk (Lanczos) to a longer side ≤ ``max_side``.

    8-bit modes go through Pillow's RGB conversion; 16/32-bit greyscale is divided by 65535 and
    float greyscale is kept as is (Pillow's RGB conversion would clip both to 8 bits).
    """
    from PIL import Image

    with Image.open(path) as im:
        full = _GREY_FULL_SCALE.get(im.mode)
        if full is not None:
            grey = Image.fromarray(np.asarray(im, dtype=np.float32) / np.float32(full))
        else:
            im = im.convert("RGB")
        work = grey if full is not None else im
        if max_side and max(work.size) > max_side:
            f = max_side / max(work.size)
            work = work.resize((round(work.size[0] * f), round(work.size[1] * f)), Image.Resampling.LANCZOS)
        if full is not None:
            return np.repeat(np.asarray(work, dtype=np.float64)[..., None], 3, axis=2)
        return np.asarray(work, dtype=np.float64) / 255.0


def load_luma(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """Read a photo as BT.601 luma (``[16, 235]/255``, float32), shrunk so its longer side ≤ ``max_side``.

    8-bit Pillow modes are converted to RGB first and shrunk with Lanczos resampling on the 8-bit
    image; 16-bit greyscale is scaled by 65535 (float greyscale taken as [0, 1]) and shrunk in float.

    Shape:
        ``-> (H, W)``.
    """
    rgb = _open_rgb(path, max_side)
    return ((16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0).astype(
        np.float32
    )


def load_rgb(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """Read a photo as RGB in [0, 1] (float32, channels first), shrunk as :func:`load_luma` does.

    Shape:
        ``-> (3, H, W)``.
    """
    return np.ascontiguousarray(_open_rgb(path, max_side).transpose(2, 0, 1), dtype=np.float32)


def _as_chw(im: Any, what: str, i: int) -> np.ndarray:
    a = np.asarray(im.detach().cpu() if isinstance(im, torch.Tensor) else im)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{what} {i} has shape {a.shape}; pass 2-D (H, W) or 3-D (C, H, W) arrays")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(
            f"{what} {i} has NaN/inf values; crop or fill them first "
            f"(sciSR.train.datasets.load_training_data crops fields to their valid part)"
        )
    return a


class PatchSampler:
    """Random HR patches (flips/rot90 augmented) from a list of fields, with their LR versions.

    Batch ``index`` is a function of ``(seed, index)`` only: its draws come from
    ``np.random.default_rng([seed, index])``, so any thread can build any batch and a resumed run
    sees the same batches. For each of the ``n`` samples, in order:

    1. an image with probability proportional to its area ``H·W``, then the patch's top-left corner
       ``y``, ``x`` uniformly over every position where it fits (in LR cells when ``lr_images`` are
       given; the HR crop then starts at ``s·y``, ``s·x``);
    2. step 1 is repeated while the HR crop's standard deviation is below ``min_std``, at most 10
       draws in all (the last one is kept): wallpapers are full of blurred bokeh that teaches nothing;
    3. with ``augment``: ``k`` uniform in ``{0, 1, 2, 3}`` (``rot90`` by ``k`` over the two spatial
       axes), then a left-right flip when a uniform draw is below ½; LR and HR transform together.

    Then the HR batch is degraded (``method`` with ``degrade_options``) unless LR crops come from
    ``lr_images``; with a ``noise`` option (also applied to ``lr_images`` crops), the noise comes
    from a CPU ``torch.Generator`` seeded by a final draw of the same generator.

    With a ``device`` (e.g. ``"cuda"``) the images are copied there once and crops, flips and the
    degradation run there; the draws and the texture test still use the host copies, so a batch has
    the same values on every device (up to float rounding in the degradation).

    Args:
        images: ``(H, W)`` or ``(C, H, W)`` float arrays (already normalized), all with the same ``C``.
        scale: SR factor.
        patch: HR patch side (multiple of ``scale``).
        method: Degradation (see :func:`~sciSR.train.degrade.degrade`).
        seed: Non-negative RNG seed.
        min_std: Texture threshold (data units).
        augment: Flips and 90° rotations (turn off for oriented or anisotropic data).
        lr_images: LR versions of ``images`` (e.g. DIV2K ``LR_bicubic``): ``(h, w)`` with the HR at
            least ``(s·h, s·w)`` (cropped to it); used instead of degrading.
        device: Where batches are built and returned (default CPU).
        degrade_options: Options of the degradation (``sigma``, ``noise``...).

    Raises:
        ValueError: ``patch`` not a multiple of ``scale``, no image at least ``patch × patch``,
            mixed channel counts, NaN/inf values, LR images that do not match, or a bad
            degradation or option.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        scale: int,
        patch: int = 96,
        method: str = "bicubic",
        seed: int = 0,
        min_std: float = 0.04,
        augment: bool = True,
        lr_images: Sequence[np.ndarray] | None = None,
        device: str | torch.device | None = None,
        degrade_options: dict[str, Any] | None = None,
    ) -> None:
        if int(scale) != scale or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        if int(patch) != patch or patch < 1 or patch % scale:
            raise ValueError(f"patch {patch} must be a multiple of scale {scale}")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        scale, patch = int(scale), int(patch)
        hr = [_as_chw(im, "training image", i) for i, im in enumerate(images)]
        if not hr:
            raise ValueError("PatchSampler got no training images")
        channels = sorted({a.shape[0] for a in hr})
        if len(channels) > 1:
            raise ValueError(
                f"training images have different channel counts {channels}; give them all the same channels"
            )
        lr: list[np.ndarray] | None = None
        if lr_images is not None:
            lr, hr = self._pair(hr, lr_images, scale)
        keep = [i for i, a in enumerate(hr) if min(a.shape[-2:]) >= patch]
        if not keep:
            big = max(hr, key=lambda a: min(a.shape[-2:]))
            hint = (min(big.shape[-2:]) // scale) * scale
            fix = f"pass a smaller patch, e.g. patch={hint}" if hint >= scale else "use larger images"
            raise ValueError(
                f"no training image is at least {patch}×{patch} (the largest is "
                f"{big.shape[-2]}×{big.shape[-1]}); {fix}"
            )
        if len(keep) < len(hr):
            warnings.warn(
                f"{len(hr) - len(keep)} of {len(hr)} training images are smaller than {patch}×{patch} "
                f"and are not sampled",
                stacklevel=2,
            )
        self.images: list[np.ndarray] = [hr[i] for i in keep]
        self.lr_images: list[np.ndarray] | None = None if lr is None else [lr[i] for i in keep]
        self.channels = channels[0]
        self.scale, self.patch, self.method, self.min_std = scale, patch, method, float(min_std)
        self.seed, self.augment = int(seed), bool(augment)
        self.degrade_options = dict(degrade_options or {})
        if "generator" in self.degrade_options:
            raise ValueError("degrade_options must not hold a generator: the sampler seeds the noise itself")
        # check the method and its options now, not at the first batch
        degrade(torch.zeros(1, self.channels, patch, patch), scale, method, **self.degrade_options)
        sizes = np.array([a.shape[-2] * a.shape[-1] for a in self.images], dtype=np.float64)
        self.p = sizes / sizes.sum()
        dev = None if device is None else torch.device(device)
        self.device = dev if dev is not None and dev.type != "cpu" else None
        self._dev_images: list[torch.Tensor] | None = None
        self._dev_lr: list[torch.Tensor] | None = None
        if self.device is not None:
            self._dev_images = [torch.from_numpy(a).to(self.device) for a in self.images]
            if self.lr_images is not None:
                self._dev_lr = [torch.from_numpy(a).to(self.device) for a in self.lr_images]
        self._counter = itertools.count(1)

    @staticmethod
    def _pair(
        hr: list[np.ndarray], lr_images: Sequence[np.ndarray], scale: int
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        lr = [_as_chw(im, "LR image", i) for i, im in enumerate(lr_images)]
        if len(lr) != len(hr):
            raise ValueError(f"{len(lr)} LR images for {len(hr)} HR images; give one LR image per HR image")
        out = []
        for i, (a, b) in enumerate(zip(hr, lr)):
            want = (b.shape[0], scale * b.shape[1], scale * b.shape[2])
            if a.shape[0] != b.shape[0] or a.shape[1] < want[1] or a.shape[2] < want[2]:
                raise ValueError(
                    f"HR image {i} {a.shape} does not match its LR image {b.shape} at scale {scale} "
                    f"(needs at least {want})"
                )
            out.append(a[:, : want[1], : want[2]])
        return lr, out

    def _draw(self, rng: np.random.Generator) -> tuple[int, int, int, int, bool]:
        """One sample's ``(image, y, x, k, flip)``; ``y``, ``x`` in HR cells."""
        p, s = self.patch, self.scale
        unit = s if self.lr_images is not None else 1  # corners drawn on the LR grid for pairs
        for _ in range(10):
            i = int(rng.choice(len(self.images), p=self.p))
            im = self.images[i]
            y = int(rng.integers(0, (im.shape[-2] - p) // unit + 1)) * unit
            x = int(rng.integers(0, (im.shape[-1] - p) // unit + 1)) * unit
            if im[:, y : y + p, x : x + p].std() >= self.min_std:
                break
        k, flip = 0, False
        if self.augment:
            k = int(rng.integers(0, 4))
            flip = bool(rng.random() < 0.5)
        return i, y, x, k, flip

    def _crops(
        self, draws: list[tuple[int, int, int, int, bool]], low: bool
    ) -> torch.Tensor:
        """Stacked crops (HR, or LR when ``low``) for ``draws``, built on the sampler's device."""
        s = self.scale if low else 1
        p = self.patch // s
        if self._dev_images is not None:
            src_t = self._dev_lr if low else self._dev_images
            assert src_t is not None
            out_t = []
            for i, y, x, k, flip in draws:
                c = src_t[i][:, y // s : y // s + p, x // s : x // s + p]
                c = torch.rot90(c, k, dims=(-2, -1)) if k else c
                out_t.append(torch.flip(c, dims=(-1,)) if flip else c)
            return torch.stack(out_t).contiguous()
        src = self.lr_images if low else self.images
        assert src is not None
        out = []
        for i, y, x, k, flip in draws:
            c = src[i][:, y // s : y // s + p, x // s : x // s + p]
            c = np.rot90(c, k, axes=(-2, -1)) if k else c
            out.append(c[..., ::-1] if flip else c)
        return torch.from_numpy(np.ascontiguousarray(np.stack(out)))

    def batch(self, n: int, index: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` (LR, HR) pairs; batch ``index`` is the same on every call, thread and device.

        Args:
            n: Batch size.
            index: Batch number (non-negative); ``None`` takes the next of a counter starting at 1
                (the trainer's first step), so repeated ``batch(n)`` calls give batches 1, 2, 3...

        Shape:
            ``-> (n, C, patch/s, patch/s), (n, C, patch, patch)`` (``"slice"`` shrinks one axis only).
        """
        if index is None:
            index = next(self._counter)
        if int(index) != index or index < 0:
            raise ValueError(f"batch index must be a non-negative integer, got {index!r}")
        rng = np.random.default_rng([self.seed, int(index)])
        draws = [self._draw(rng) for _ in range(int(n))]
        hr = self._crops(draws, low=False)
        opts = dict(self.degrade_options)
        if opts.get("noise"):
            opts["generator"] = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        if self.lr_images is None:
            return degrade(hr, self.scale, self.method, **opts), hr
        lr = self._crops(draws, low=True)
        if opts.get("noise"):
            lr = add_noise(lr, opts["noise"], opts["generator"])
        return lr, hr
