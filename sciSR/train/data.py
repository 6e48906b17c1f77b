"""Training data: photos as luma in [0, 1] and a random textured-patch sampler."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .degrade import degrade


def load_luma(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """Read a photo as BT.601 luma (``[16, 235]/255``, float32), shrunk so its longer side ≤ ``max_side``.

    Any Pillow mode is converted to RGB first; shrinking uses Lanczos resampling on the 8-bit image.

    Shape:
        ``-> (H, W)``.
    """
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if max_side and max(im.size) > max_side:
            f = max_side / max(im.size)
            im = im.resize((round(im.size[0] * f), round(im.size[1] * f)), Image.Resampling.LANCZOS)
        rgb = np.asarray(im, dtype=np.float64) / 255.0
    return ((16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0).astype(
        np.float32
    )


class PatchSampler:
    """Random HR patches (flips/rot90 augmented) from a list of 2-D fields, with their LR versions.

    Low-texture patches (std below ``min_std``) are re-drawn up to 10 times: wallpapers are
    full of blurred bokeh that teaches nothing.

    Args:
        images: 2-D float arrays (already normalized).
        scale: SR factor.
        patch: HR patch side (multiple of ``scale``).
        method: Degradation (see :func:`degrade`).
        seed: RNG seed.
        min_std: Texture threshold.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        scale: int,
        patch: int = 96,
        method: str = "bicubic",
        seed: int = 0,
        min_std: float = 0.04,
    ) -> None:
        if patch % scale:
            raise ValueError(f"patch {patch} must be a multiple of scale {scale}")
        self.images = [np.ascontiguousarray(im, dtype=np.float32) for im in images if min(im.shape) >= patch]
        if not self.images:
            raise ValueError(f"no training image is at least {patch}×{patch}")
        self.scale, self.patch, self.method, self.min_std = scale, patch, method, min_std
        self.rng = np.random.default_rng(seed)
        sizes = np.array([im.size for im in self.images], dtype=np.float64)
        self.p = sizes / sizes.sum()

    def _one(self) -> np.ndarray:
        for _ in range(10):
            im = self.images[self.rng.choice(len(self.images), p=self.p)]
            y = self.rng.integers(0, im.shape[0] - self.patch + 1)
            x = self.rng.integers(0, im.shape[1] - self.patch + 1)
            crop = im[y : y + self.patch, x : x + self.patch]
            if crop.std() >= self.min_std:
                break
        k = int(self.rng.integers(0, 4))
        crop = np.rot90(crop, k)
        if self.rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` (LR, HR) pairs.

        Shape:
            ``-> (n, 1, patch/s, patch/s), (n, 1, patch, patch)``.
        """
        hr = torch.from_numpy(np.stack([self._one() for _ in range(n)]))[:, None]
        return degrade(hr, self.scale, self.method), hr
