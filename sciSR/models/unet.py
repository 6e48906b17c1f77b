"""ResNet18-UNet (segmentation-models-pytorch) used as a residual SR network.

The U-Net layout is Ronneberger et al. (MICCAI 2015); the network itself is the
segmentation-models-pytorch ``Unet`` with a ResNet-18 encoder by default, not the original
U-Net. The LR input is bicubic-upsampled first; the network predicts the residual to add to
it. Any smp encoder name works, always randomly initialized (``encoder_weights=None``:
nothing is downloaded).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..resize import check_upsampler
from .base import SRModel
from .registry import register_model

UNET_PAPER = (
    "ResNet18-UNet (segmentation-models-pytorch); U-Net layout: Ronneberger et al., U-Net: Convolutional "
    "Networks for Biomedical Image Segmentation, MICCAI 2015"
)


class UNetSR(SRModel):
    """ResNet18-UNet (segmentation-models-pytorch): ``bicubic(x) + Unet(bicubic(x))``.

    The default encoder is ResNet-18 (``encoder_name="resnet18"``, depth 5, decoder channels
    256/128/64/32/16, smp's defaults); this is an smp segmentation network re-used for SR, not
    a published SR architecture, so no published parameter count applies.

    The encoder downsamples ``2**encoder_depth`` times, so the HR (bicubic) image must be a
    multiple of ``2**encoder_depth``: the LR input is padded (replicate) to a multiple of
    ``2**encoder_depth / gcd(2**encoder_depth, scale)`` so that ``LR·scale`` is one, and the output
    is cropped back. Strided pooling breaks translation equivariance: tiles are blended. Batch
    norm is used as smp builds it (per-channel affine in eval mode).

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "unet"
    paper = UNET_PAPER
    scales = ()
    upsampling = "pre"
    equivariant = False
    size_multiple = 32

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 encoder_name: str = "resnet18", encoder_depth: int = 5, encoder_weights: str | None = None,
                 decoder_channels: tuple[int, ...] | list[int] | None = None, upsampler: str = "bicubic",
                 **smp_kwargs: Any) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.upsampler = check_upsampler(upsampler)
        if encoder_weights is not None:
            raise ValueError(
                f"unet: encoder_weights must be None (got {encoder_weights!r}); sciSR never downloads "
                f"weights. Train from scratch, or load a checkpoint with pretrained=PATH"
            )
        try:
            import segmentation_models_pytorch as smp
        except ImportError as err:  # pragma: no cover - smp is a declared dependency
            raise ImportError("the 'unet' model needs segmentation-models-pytorch: pip install "
                              "segmentation-models-pytorch") from err
        depth = int(encoder_depth)
        if decoder_channels is None:
            decoder_channels = (256, 128, 64, 32, 16)[5 - depth:] if 1 <= depth <= 5 else ()
        decoder_channels = tuple(int(c) for c in decoder_channels)
        if len(decoder_channels) != depth:
            raise ValueError(
                f"unet: decoder_channels needs {depth} entries (one per encoder stage), "
                f"got {decoder_channels}"
            )
        try:
            self.unet = smp.Unet(
                encoder_name=encoder_name,
                encoder_depth=depth,
                encoder_weights=None,
                decoder_channels=decoder_channels,
                in_channels=self.in_channels,
                classes=self.out_channels,
                activation=None,
                **smp_kwargs,
            )
        except KeyError as err:
            raise ValueError(f"unet: unknown smp encoder {encoder_name!r} ({err})") from None
        hr_multiple = 2**depth
        self.size_multiple = hr_multiple // math.gcd(hr_multiple, self.scale)  # type: ignore[misc]
        self._drop_unused_encoder_modules(hr_multiple)
        self.config = {"encoder_name": encoder_name, "encoder_depth": depth,
                       "decoder_channels": list(decoder_channels), "upsampler": upsampler, **smp_kwargs}

    def _drop_unused_encoder_modules(self, multiple: int) -> None:
        """Replace encoder stages that a shallow ``encoder_depth`` never calls by identities.

        smp keeps the deeper stages of some encoders (e.g. ResNet ``layer4`` at depth 3); their
        parameters would never receive a gradient and would bloat checkpoints.
        """
        was_training = self.unet.training
        try:
            with torch.enable_grad():
                out = self.unet.eval()(torch.zeros(1, self.in_channels, multiple * 2, multiple * 2))
                out.sum().backward()
        finally:
            self.unet.train(was_training)
        unused = {id(p) for p in self.unet.parameters() if p.grad is None}
        self.unet.zero_grad(set_to_none=True)
        if not unused:
            return
        for parent in list(self.unet.modules()):
            for child_name, child in list(parent.named_children()):
                params = list(child.parameters())
                if params and all(id(p) in unused for p in params):
                    setattr(parent, child_name, nn.Identity())

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        y = self.unet(x)
        if x.shape[1] == y.shape[1]:
            return x + y
        return y + x.mean(dim=1, keepdim=True)


@register_model(
    "unet",
    paper=UNET_PAPER,
    tiny={"encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": (16, 8, 4)},
)
def unet(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> UNetSR:
    """ResNet18-UNet (segmentation-models-pytorch): residual over bicubic; any smp encoder, random init."""
    return UNetSR(scale, in_channels, out_channels, **kw)
