"""SRResNet and SRGAN (Ledig et al., CVPR 2017): residual generator with batch norm, and its discriminator.

The generator is shared by ``srresnet`` (trained with MSE) and ``srgan`` (trained with a perceptual
+ adversarial loss against :class:`SRGANDiscriminator`). Batch norm in eval mode is a per-channel
affine map, so the generator is translation-equivariant once in eval mode (the pipeline always
runs models in eval mode).

``msrresnet`` is the modified SRResNet of ESRGAN/BasicSR (no batch norm, bilinear input skip).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import SRModel
from .layers.init import scaled_kaiming_init
from .layers.skip import check_skip_channels, skip
from .registry import register_model

SRGAN_PAPER = (
    "Ledig et al., Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial "
    "Network, CVPR 2017"
)


def upsample_stages(scale: int) -> list[int]:
    """Sub-pixel stages for ``scale``: ×2 stages for powers of two, else one ×scale stage."""
    if scale == 1:
        return []
    if scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    return [scale]


class BNResidualBlock(nn.Module):
    """SRResNet residual block: ``x + bn2(conv2(prelu(bn1(conv1(x)))))``.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int = 64, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(n_feats, n_feats, kernel_size, padding=pad)
        self.bn1 = nn.BatchNorm2d(n_feats)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(n_feats, n_feats, kernel_size, padding=pad)
        self.bn2 = nn.BatchNorm2d(n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class SRResNet(SRModel):
    """SRResNet generator: 9×9 conv + PReLU → B BN-residual blocks → conv + BN (global skip) →
    sub-pixel ×2 stages with PReLU → 9×9 conv.

    Layer names: ``conv_first``, ``prelu_first``, ``body.N.{conv1,bn1,prelu,conv2,bn2}``,
    ``conv_body``, ``bn_body``, ``upconv1``/``prelu_up1`` (``upconv2``, ``upconv3`` for ×4/×8),
    ``conv_last``. A ×3 model has a single ``upconv1`` stage of ×3.

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "srresnet"
    paper = SRGAN_PAPER
    scales = (2, 3, 4, 8)

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        out_channels: int | None = None,
        n_feats: int = 64,
        n_blocks: int = 16,
        head_kernel: int = 9,
    ) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.conv_first = nn.Conv2d(self.in_channels, n_feats, head_kernel, padding=head_kernel // 2)
        self.prelu_first = nn.PReLU()
        self.body = nn.Sequential(*[BNResidualBlock(n_feats) for _ in range(n_blocks)])
        self.conv_body = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.bn_body = nn.BatchNorm2d(n_feats)
        self.stages = upsample_stages(self.scale)
        for i, r in enumerate(self.stages, start=1):
            setattr(self, f"upconv{i}", nn.Conv2d(n_feats, n_feats * r * r, 3, padding=1))
            setattr(self, f"pixel_shuffle{i}", nn.PixelShuffle(r))
            setattr(self, f"prelu_up{i}", nn.PReLU())
        self.conv_last = nn.Conv2d(n_feats, self.out_channels, head_kernel, padding=head_kernel // 2)
        self.config = {"n_feats": n_feats, "n_blocks": n_blocks, "head_kernel": head_kernel}

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.prelu_first(self.conv_first(x))
        feat = feat + self.bn_body(self.conv_body(self.body(feat)))
        for i in range(1, len(self.stages) + 1):
            conv = getattr(self, f"upconv{i}")
            shuffle = getattr(self, f"pixel_shuffle{i}")
            act = getattr(self, f"prelu_up{i}")
            feat = act(shuffle(conv(feat)))
        return self.conv_last(feat)


class SRGANGenerator(SRResNet):
    """The SRGAN generator: the SRResNet architecture, trained adversarially (registry ``srgan``).

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "srgan"


class SRGANDiscriminator(nn.Module):
    """SRGAN discriminator (VGG style): 8 convs 64→512 (stride 2 every second one), LeakyReLU(0.2),
    batch norm after every conv but the first, then dense 1024 → LeakyReLU → dense 1.

    The paper's 96×96 input leaves a 6×6×512 map before the dense layers; an adaptive average
    pool to ``pool_size`` (6 by default, an identity for 96×96 inputs) makes the discriminator
    accept any input size ≥ 16 pixels. Returns logits (use ``BCEWithLogitsLoss``), not the
    sigmoid of the paper, for numerical stability.

    Shape:
        ``(N, C, H, W) -> (N, 1)``.
    """

    def __init__(
        self, in_channels: int = 1, n_feats: int = 64, pool_size: int = 6, dense: int = 1024
    ) -> None:
        super().__init__()
        chans = [n_feats * m for m in (1, 1, 2, 2, 4, 4, 8, 8)]
        layers: list[nn.Module] = []
        prev = in_channels
        for i, c in enumerate(chans):
            stride = 2 if i % 2 == 1 else 1
            layers.append(nn.Conv2d(prev, c, 3, stride=stride, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            prev = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(prev * pool_size * pool_size, dense),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(dense, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


@register_model("srresnet", paper=SRGAN_PAPER, tiny={"n_feats": 8, "n_blocks": 2, "head_kernel": 3})
def srresnet(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> SRResNet:
    """SRResNet: 16 BN residual blocks × 64 features, PReLU, sub-pixel upsampling (×2/×3/×4/×8)."""
    return SRResNet(scale, in_channels, out_channels, **kw)


@register_model("srgan", paper=SRGAN_PAPER, tiny={"n_feats": 8, "n_blocks": 2, "head_kernel": 3})
def srgan(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> SRGANGenerator:
    """SRGAN generator (the SRResNet architecture; train against :class:`SRGANDiscriminator`)."""
    return SRGANGenerator(scale, in_channels, out_channels, **kw)


# ----------------------------------------------------------------------------- MSRResNet
MSRRESNET_PAPER = (
    "Wang et al., ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks, ECCV Workshops "
    "2018 (MSRResNet, the modified SRResNet of BasicSR; after Ledig et al., CVPR 2017)"
)


class ResidualBlockNoBN(nn.Module):
    """Residual block without batch norm: ``x + conv2(relu(conv1(x)))``.

    Args:
        n_feats: Feature channels.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(n_feats, n_feats, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class MSRResNet(SRModel):
    """Modified SRResNet (MSRResNet): the PSNR-oriented baseline of ESRGAN, as trained by BasicSR.

    Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks", ECCV
    Workshops 2018, simplify the SRResNet of Ledig et al. (CVPR 2017): no batch norm, 3×3 convs,
    LeakyReLU(0.1), and the output is a residual on the bilinear-upsampled input::

        feat = lrelu(conv_first(x))
        feat = body(feat)                       # B × (conv1 → ReLU → conv2, + identity)
        feat = lrelu(shuffle(upconv_i(feat)))   # ×2, ×2 for ×4; one ×2 or ×3 stage otherwise
        y = conv_last(lrelu(conv_hr(feat))) + bilinear(x)

    Layer names follow BasicSR's ``MSRResNet`` (``conv_first``, ``body.N.conv1``/``conv2``,
    ``upconv1`` (+ ``upconv2`` for ×4), ``conv_hr``, ``conv_last``), so BasicSR state dicts load
    unchanged. Bilinear interpolation (``align_corners=False``, cell-centred) and pixel shuffle
    commute with whole-LR-cell shifts, so the network is translation-equivariant. The input skip
    needs ``out_channels == in_channels`` or one of them 1 (see :mod:`sciSR.models.layers.skip`).
    Every convolution starts from Kaiming-normal weights × 0.1 and zero biases, as in BasicSR
    (:func:`~sciSR.models.layers.init.scaled_kaiming_init`). The batch-norm SRResNet of Ledig et al.
    (``srresnet``/``srgan``) keeps PyTorch's default init (no 0.1 scaling).

    Args:
        scale: Upscaling factor (2, 3 or 4).
        in_channels: Input channels.
        out_channels: Output channels (default ``in_channels``).
        n_feats: Feature channels (BasicSR ``num_feat``, 64).
        n_blocks: Residual blocks (BasicSR ``num_block``, 16).

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "msrresnet"
    paper = MSRRESNET_PAPER
    scales = (2, 3, 4)

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        out_channels: int | None = None,
        n_feats: int = 64,
        n_blocks: int = 16,
    ) -> None:
        super().__init__(scale, in_channels, out_channels)
        check_skip_channels("msrresnet", self.in_channels, self.out_channels)
        self.conv_first = nn.Conv2d(self.in_channels, n_feats, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(n_feats) for _ in range(n_blocks)])
        self.stages = [2, 2] if self.scale == 4 else [self.scale]
        for i, r in enumerate(self.stages, start=1):
            setattr(self, f"upconv{i}", nn.Conv2d(n_feats, n_feats * r * r, 3, padding=1))
        self.conv_hr = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.conv_last = nn.Conv2d(n_feats, self.out_channels, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.1)
        self.config = {"n_feats": n_feats, "n_blocks": n_blocks}
        # BasicSR initialises every conv of MSRResNet (residual blocks included) with Kaiming × 0.1
        scaled_kaiming_init([m for m in self.modules() if isinstance(m, nn.Conv2d)], 0.1)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.body(self.lrelu(self.conv_first(x)))
        for i, r in enumerate(self.stages, start=1):
            feat = self.lrelu(F.pixel_shuffle(getattr(self, f"upconv{i}")(feat), r))
        y = self.conv_last(self.lrelu(self.conv_hr(feat)))
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return y + skip(base, self.out_channels)


@register_model("msrresnet", paper=MSRRESNET_PAPER, tiny={"n_feats": 8, "n_blocks": 2})
def msrresnet(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> MSRResNet:
    """MSRResNet: 16 BN-free residual blocks × 64 features, pixel shuffle, bilinear input skip (×2/×3/×4)."""
    return MSRResNet(scale, in_channels, out_channels, **kw)
