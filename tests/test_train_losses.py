"""Training losses against hand-computed values: EnhanceNet's patch-wise Gram (texture) loss and the
Charbonnier losses of LapSRN (sciSR.models.layers.losses)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sciSR.models.enhancenet import gram_matrix, texture_loss
from sciSR.models.layers.losses import charbonnier_loss, multiscale_charbonnier_loss

# two 2-channel 2×2 feature maps; rows are channels, columns the pixels in raster order
A = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]])
B = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[2.0, 2.0], [2.0, 2.0]]]])


def test_gram_matrix_hand_computed() -> None:
    """A: c0 = (1, 2, 3, 4), c1 = (0, 1, 1, 0): c0·c0 = 30, c0·c1 = 5, c1·c1 = 2, over C·H·W = 8."""
    torch.testing.assert_close(gram_matrix(A), torch.tensor([[[30.0, 5.0], [5.0, 2.0]]]) / 8)
    torch.testing.assert_close(gram_matrix(B), torch.tensor([[[2.0, 4.0], [4.0, 16.0]]]) / 8)


def test_texture_loss_one_window_hand_computed() -> None:
    """patch=2 (one window): G_A - G_B = [[28, 1], [1, -14]]/8, mean of squares = (784+1+1+196)/64/4."""
    assert float(texture_loss(A, B, patch=2)) == pytest.approx(982 / 256, rel=1e-7)
    # a window larger than the map is the whole map
    assert float(texture_loss(A, B, patch=16)) == pytest.approx(982 / 256, rel=1e-7)


def test_texture_loss_per_pixel_windows_hand_computed() -> None:
    """patch=1: each pixel is a window with Gram f·fᵀ/2. Pixel (A; B) pairs and sums of squared
    Gram differences ×4: (1,0;1,2) → 0+4+4+16, (2,1;0,2) → 16+4+4+9, (3,1;0,2) → 81+9+9+9,
    (4,0;1,2) → 225+4+4+16; total 414/4 = 103.5 over 4 windows × 4 entries."""
    assert float(texture_loss(A, B, patch=1)) == pytest.approx(103.5 / 16, rel=1e-7)


def _texture_reference(a: np.ndarray, b: np.ndarray, patch: int) -> float:
    """Loop over windows (right/bottom remainders dropped), Gram by einsum, normalized per window."""
    n, c, h, w = a.shape
    sq, entries = 0.0, 0
    for i in range(n):
        for y in range(0, h - patch + 1, patch):
            for x in range(0, w - patch + 1, patch):
                wa, wb = a[i, :, y : y + patch, x : x + patch], b[i, :, y : y + patch, x : x + patch]
                ga = np.einsum("cyx,dyx->cd", wa, wa) / (c * patch * patch)
                gb = np.einsum("cyx,dyx->cd", wb, wb) / (c * patch * patch)
                sq += float(((ga - gb) ** 2).sum())
                entries += c * c
    return sq / entries


def test_texture_loss_matches_a_window_loop_with_remainders_and_layer_weights() -> None:
    g = torch.Generator().manual_seed(0)
    a1, b1 = (torch.randn(2, 3, 10, 13, generator=g, dtype=torch.float64) for _ in range(2))
    a2, b2 = (torch.rand(2, 5, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))
    r1 = _texture_reference(a1.numpy(), b1.numpy(), 4)  # uses the top-left 8 × 12
    r2 = _texture_reference(a2.numpy(), b2.numpy(), 4)
    assert float(texture_loss(a1, b1, patch=4)) == pytest.approx(r1, rel=1e-10)
    assert float(texture_loss([a1, a2], [b1, b2], patch=4, weights=[0.25, 2.0])) == pytest.approx(
        0.25 * r1 + 2.0 * r2, rel=1e-10
    )
    # the dropped remainder really is ignored: changing it leaves the loss unchanged
    b1x = b1.clone()
    b1x[..., 8:, :] += 5.0
    b1x[..., :, 12:] -= 5.0
    assert float(texture_loss(a1, b1x, patch=4)) == pytest.approx(r1, rel=1e-10)


def test_charbonnier_losses_hand_computed() -> None:
    """sqrt(d² + ε²) with d = (3, 0), ε = 4 → (5 + 4)/2. Multi-scale: the ×2-coarser level is compared
    with the block mean of the target (2.5, 4.5, 10.5, 12.5 for arange(16) in 4×4); ε = 0 makes it L1."""
    pred, target = torch.tensor([[[[3.0, 0.0]]]]), torch.zeros(1, 1, 1, 2)
    assert float(charbonnier_loss(pred, target, eps=4.0)) == pytest.approx(4.5)
    assert float(charbonnier_loss(pred, target)) == pytest.approx((np.sqrt(9 + 1e-6) + 1e-3) / 2, rel=1e-6)
    t = torch.arange(16.0).reshape(1, 1, 4, 4)
    coarse, fine = torch.zeros(1, 1, 2, 2), t + 1.0
    assert float(multiscale_charbonnier_loss([coarse, fine], t, eps=0.0)) == pytest.approx(7.5 + 1.0)
