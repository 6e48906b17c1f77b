"""Adversarial training: GAN losses (SRGAN's vanilla, ESRGAN's relativistic average) and a discriminator
with its own optimizer.

Losses work on the discriminator's logits ``C(x)`` (the discriminators return logits; the sigmoid
is inside ``binary_cross_entropy_with_logits`` for numerical stability). ``bce(z, t)`` below is
``-mean(t·log σ(z) + (1 - t)·log(1 - σ(z)))`` over the batch.

* ``"vanilla"`` (Ledig et al. 2017, after Goodfellow et al. 2014): the discriminator minimizes
  ``bce(C(x_r), 1) + bce(C(x_f), 0)`` (the paper's ``-E log D(x_r) - E log(1 - D(x_f))``); the
  generator minimizes the non-saturating ``bce(C(x_f), 1) = -E log D(x_f)`` (the paper's
  ``l_Gen``).
* ``"ragan"`` (Wang et al. 2018, relativistic average GAN of Jolicoeur-Martineau 2018):
  ``D_Ra(x_r, x_f) = σ(C(x_r) - E_f[C(x_f)])`` with the expectation over the mini-batch. The
  discriminator minimizes ``(bce(C(x_r) - E C(x_f), 1) + bce(C(x_f) - E C(x_r), 0)) / 2``, the
  generator the symmetric ``(bce(C(x_r) - E C(x_f), 0) + bce(C(x_f) - E C(x_r), 1)) / 2``. The
  paper writes the two terms as a sum; the factor 1/2 follows the authors' released code
  (BasicSR), for which the paper's weight ``λ = 5e-3`` was set. The discriminator's gradient
  flows through both batch means, as the formula reads; BasicSR detaches the other batch's mean in
  each of its two terms.

Discriminators: ``"srgan"`` (:class:`sciSR.models.srresnet.SRGANDiscriminator`) and ``"esrgan"``
(:class:`sciSR.models.esrgan.ESRGANDiscriminator`), built for the data's channel count; both end
in an adaptive average pool, so any patch at least their minimum size works (SRGAN: 16 pixels,
four stride-2 convs; ESRGAN: 32 pixels, five stride-2 convs). Each is updated by Adam with
``β = (0.9, 0.999)`` as in both papers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def vanilla_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """SRGAN discriminator loss ``bce(C(x_r), 1) + bce(C(x_f), 0)``.

    Args:
        real: Logits of real (HR) samples.
        fake: Logits of generated (SR) samples.

    Returns:
        Scalar loss.

    Shape:
        ``(N, 1), (M, 1) -> ()``.
    """
    return _bce(real, 1.0) + _bce(fake, 0.0)


def vanilla_g_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """SRGAN generator loss ``bce(C(x_f), 1)`` (non-saturating; ``real`` is unused).

    Args:
        real: Logits of real samples (ignored; the signature matches :func:`ragan_g_loss`).
        fake: Logits of generated samples.

    Returns:
        Scalar loss.

    Shape:
        ``(N, 1), (M, 1) -> ()``.
    """
    return _bce(fake, 1.0)


def ragan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """ESRGAN discriminator loss ``(bce(C_r - E C_f, 1) + bce(C_f - E C_r, 0)) / 2``.

    Args:
        real: Logits of real (HR) samples.
        fake: Logits of generated (SR) samples.

    Returns:
        Scalar loss.

    Shape:
        ``(N, 1), (M, 1) -> ()``.
    """
    return (_bce(real - fake.mean(), 1.0) + _bce(fake - real.mean(), 0.0)) / 2


def ragan_g_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """ESRGAN generator loss ``(bce(C_r - E C_f, 0) + bce(C_f - E C_r, 1)) / 2``.

    Args:
        real: Logits of real samples (treated as constants by the caller).
        fake: Logits of generated samples.

    Returns:
        Scalar loss.

    Shape:
        ``(N, 1), (M, 1) -> ()``.
    """
    return (_bce(real - fake.mean(), 0.0) + _bce(fake - real.mean(), 1.0)) / 2


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: ``name -> (discriminator loss, generator loss)``; both take ``(real_logits, fake_logits)``.
GAN_LOSSES: dict[str, tuple[LossFn, LossFn, bool]] = {
    "vanilla": (vanilla_d_loss, vanilla_g_loss, False),  # the generator term needs no real logits
    "ragan": (ragan_d_loss, ragan_g_loss, True),
}


@dataclass(frozen=True)
class DiscriminatorSpec:
    """How to build one discriminator and which inputs it takes.

    Attributes:
        build: ``(in_channels, **options) -> module`` returning ``(N, 1)`` logits.
        min_size: Smallest patch side in pixels.
        final_size: Side of the last feature map for an input side (batch norm in train mode
            needs more than one value per channel there, counting the batch).
        paper: Where the architecture comes from.
    """

    build: Callable[..., nn.Module]
    min_size: int
    final_size: Callable[[int], int]
    paper: str


def _srgan(in_channels: int, **options: Any) -> nn.Module:
    from ..models.srresnet import SRGANDiscriminator

    return SRGANDiscriminator(in_channels=in_channels, **options)


def _esrgan(in_channels: int, **options: Any) -> nn.Module:
    from ..models.esrgan import ESRGANDiscriminator

    return ESRGANDiscriminator(in_channels=in_channels, **options)


DISCRIMINATORS: dict[str, DiscriminatorSpec] = {
    # four stride-2 3×3 convs with padding 1: side -> ceil(side / 16)
    "srgan": DiscriminatorSpec(_srgan, 16, lambda s: -(-s // 16), "Ledig et al., CVPR 2017"),
    # five stride-2 4×4 convs with padding 1: side -> floor(side / 32)
    "esrgan": DiscriminatorSpec(_esrgan, 32, lambda s: s // 32, "Wang et al., ECCV Workshops 2018"),
}


class Adversary(nn.Module):
    """A discriminator, its Adam optimizer and one GAN loss.

    Args:
        gan: ``"vanilla"`` or ``"ragan"`` (see the module notes).
        discriminator: ``"srgan"`` or ``"esrgan"``.
        in_channels: Channels of the images it judges.
        lr: Adam learning rate of the discriminator.
        betas: Adam betas.
        options: Keyword arguments of the discriminator class (e.g. ``n_feats``; default: the
            paper's configuration).

    Raises:
        ValueError: Unknown ``gan``, ``discriminator`` or option.
    """

    def __init__(self, gan: str, discriminator: str = "esrgan", in_channels: int = 1, lr: float = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.999), options: dict[str, Any] | None = None) -> None:
        super().__init__()
        if gan not in GAN_LOSSES:
            raise ValueError(f"unknown gan={gan!r}; choose one of {', '.join(GAN_LOSSES)} (or gan=None)")
        if discriminator not in DISCRIMINATORS:
            raise ValueError(
                f"unknown discriminator={discriminator!r}; choose one of {', '.join(DISCRIMINATORS)}"
            )
        self.gan, self.kind = gan, discriminator
        self.spec = DISCRIMINATORS[discriminator]
        self.d_loss_fn, self.g_loss_fn, self._g_needs_real = GAN_LOSSES[gan]
        try:
            self.net = self.spec.build(int(in_channels), **(options or {}))
        except TypeError as err:
            raise ValueError(f"bad discriminator_options for {discriminator!r}: {err}") from None
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=float(lr), betas=betas)

    def check_size(self, batch: int, height: int, width: int) -> None:
        """Refuse patches the discriminator cannot judge.

        Raises:
            ValueError: A side below the minimum, or a 1×1 final map with a batch of one.
        """
        m = self.spec.min_size
        if min(height, width) < m:
            raise ValueError(
                f"the {self.kind} discriminator needs HR patches of at least {m}×{m} pixels, got "
                f"{height}×{width}; use a larger patch size"
            )
        if batch * self.spec.final_size(height) * self.spec.final_size(width) < 2:
            raise ValueError(
                f"the {self.kind} discriminator's batch norm needs a batch of at least 2 for "
                f"{height}×{width} patches; use batch_size ≥ 2 or patches ≥ {2 * m} pixels"
            )

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits in fp32 (the input is moved to the discriminator's device; under autocast the
        discriminator runs in the autocast precision)."""
        p = next(self.net.parameters())
        x = x.to(device=p.device) if torch.is_autocast_enabled() else x.to(device=p.device, dtype=p.dtype)
        return self.net(x).float()

    def generator_loss(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial term for a batch (gradients reach ``sr`` only).

        The discriminator's parameters take no gradient from this term; batch norm runs in train
        mode (its running statistics follow the batch, as in the authors' code).

        Shape:
            ``(N, C, H, W), (N, C, H, W) -> ()``.
        """
        self.check_size(sr.shape[0], *sr.shape[-2:])
        self.net.train()
        flags = [p.requires_grad for p in self.net.parameters()]
        self.net.requires_grad_(False)
        try:
            fake = self._logits(sr)
            if self._g_needs_real:
                with torch.no_grad():
                    real = self._logits(hr)
            else:
                real = fake.detach()
        finally:
            for p, f in zip(self.net.parameters(), flags, strict=True):
                p.requires_grad_(f)
        return self.g_loss_fn(real, fake)

    def step(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        """One discriminator update on a generated batch ``sr`` (detached) and real batch ``hr``.

        Returns:
            ``{"d_loss", "d_real", "d_fake"}``: the loss before the update and the mean
            probabilities ``σ(C(x))`` of the real and generated batches.

        Shape:
            ``(N, C, H, W), (N, C, H, W) -> {}``.
        """
        self.check_size(sr.shape[0], *sr.shape[-2:])
        self.net.train()
        self.net.requires_grad_(True)
        self.optimizer.zero_grad(set_to_none=True)
        real = self._logits(hr.detach())
        fake = self._logits(sr.detach())
        loss = self.d_loss_fn(real, fake)
        loss.backward()
        self.optimizer.step()
        return {
            "d_loss": float(loss.detach()),
            "d_real": float(torch.sigmoid(real.detach()).mean()),
            "d_fake": float(torch.sigmoid(fake.detach()).mean()),
        }

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """``{"discriminator": weights and batch-norm statistics, "optimizer": Adam state}``."""
        return {"discriminator": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(  # type: ignore[override]
        self, state: dict[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Restore what :meth:`state_dict` returned (exact resume).

        Raises:
            ValueError: ``state`` lacks the discriminator or optimizer entry.
        """
        if not isinstance(state, dict) or "discriminator" not in state or "optimizer" not in state:
            raise ValueError(
                "adversarial state must hold 'discriminator' and 'optimizer' (from Objective.state_dict())"
            )
        result = self.net.load_state_dict(state["discriminator"], strict=strict)
        self.optimizer.load_state_dict(state["optimizer"])
        return result
