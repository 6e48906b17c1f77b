"""CARN and CARN-M (Ahn, Kang & Sohn, ECCV 2018): cascading residual networks."""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel
from .layers.deconv import lr_cells
from .registry import register_model

CARN_PAPER = ("Ahn et al., Fast, Accurate, and Lightweight Super-Resolution with Cascading Residual Network, "
              "ECCV 2018")


class ResidualUnit(nn.Module):
    """CARN residual block ``relu(x + conv(relu(conv(x))))`` (3×3 convs).

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class EfficientResidualUnit(nn.Module):
    """CARN-M efficient residual block: two 3×3 group convs and a 1×1 conv, ``relu(x + body(x))``.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int, groups: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class Fuse(nn.Module):
    """1×1 conv + ReLU fusing the concatenated cascade (``body.0`` = conv, official layout).

    Shape:
        ``(N, k*C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _cascade(x: torch.Tensor, units: list[nn.Module], fuses: list[nn.Module]) -> torch.Tensor:
    """Cascading connections: each unit's output is concatenated to all previous ones and fused."""
    cat, out = x, x
    for unit, fuse in zip(units, fuses, strict=True):
        cat = torch.cat([cat, unit(out)], dim=1)
        out = fuse(cat)
    return out


class CascadingBlock(nn.Module):
    """Local cascade of ``n_units`` residual units (``b1..bn``) and 1×1 fusions (``c1..cn``).

    With ``shared=True`` (CARN-M) one efficient residual unit ``b1`` is applied recursively.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int, n_units: int = 3, efficient: bool = False, groups: int = 4,
                 shared: bool = False) -> None:
        super().__init__()
        self.n_units = n_units
        self.shared = shared
        n_distinct = 1 if shared else n_units
        for i in range(n_distinct):
            unit = EfficientResidualUnit(n_feats, groups) if efficient else ResidualUnit(n_feats)
            self.add_module(f"b{i + 1}", unit)
        for i in range(n_units):
            self.add_module(f"c{i + 1}", Fuse(n_feats * (i + 2), n_feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        units = [getattr(self, "b1" if self.shared else f"b{i + 1}") for i in range(self.n_units)]
        fuses = [getattr(self, f"c{i + 1}") for i in range(self.n_units)]
        return _cascade(x, units, fuses)


class _Upsample(nn.Module):
    """CARN upsampler for one scale: (conv → ReLU → PixelShuffle(2)) × 2 for ×4, one stage else.

    Shape:
        ``(N, C, H, W) -> (N, C, H*scale, W*scale)``.
    """

    def __init__(self, n_feats: int, scale: int, groups: int = 1) -> None:
        super().__init__()
        stages = [2, 2] if scale == 4 else [scale]
        layers: list[nn.Module] = []
        for r in stages:
            layers += [
                nn.Conv2d(n_feats, n_feats * r * r, 3, padding=1, groups=groups),
                nn.ReLU(inplace=True),
                nn.PixelShuffle(r),
            ]
        self.body = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UpsampleBlock(nn.Module):
    """Single-scale (``up``) or multi-scale (``up2``, ``up3``, ``up4``) CARN upsampler.

    Shape:
        ``(N, C, H, W) -> (N, C, H*scale, W*scale)``.
    """

    def __init__(self, n_feats: int, scale: int, multi_scale: bool = False, groups: int = 1) -> None:
        super().__init__()
        self.multi_scale = multi_scale
        if multi_scale:
            self.up2 = _Upsample(n_feats, 2, groups)
            self.up3 = _Upsample(n_feats, 3, groups)
            self.up4 = _Upsample(n_feats, 4, groups)
        else:
            self.up = _Upsample(n_feats, scale, groups)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        return getattr(self, f"up{scale}")(x) if self.multi_scale else self.up(x)


class CARN(SRModel):
    """Cascading residual network: entry conv → cascade of ``n_blocks`` cascading blocks (global
    cascading with 1×1 fusions ``c1..c3``) → pixel-shuffle upsampler → exit conv.

    CARN: 64 features, 3 blocks × 3 residual units. CARN-M: efficient residual units (3×3 group
    convs, ``groups=4``, then 1×1), one unit shared recursively inside each block, group convs in
    the upsampler. Layer names follow the official release (``entry``, ``b1.b1.body.0``,
    ``b1.c1.body.0``, ``c1.body.0``, ``upsample.up.body.0`` or ``upsample.up2..up4``, ``exit``).

    Parameter counts: the published figures (CARN 1.59 M, CARN-M 0.41 M, RGB) are for the
    multi-scale model with three upsamplers (×2, ×3, ×4) trained jointly — ``multi_scale=True``
    reproduces them (1,591,939 and 414,787). The default single-scale RGB ×4 model has
    1,111,875 (CARN) and 294,147 (CARN-M) parameters.

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "carn"
    paper = CARN_PAPER
    scales = (2, 3, 4)

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 64, n_blocks: int = 3, n_units: int = 3, mobile: bool = False,
                 groups: int = 4, multi_scale: bool = False) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.entry = nn.Conv2d(self.in_channels, n_feats, 3, padding=1)
        for i in range(n_blocks):
            self.add_module(f"b{i + 1}", CascadingBlock(n_feats, n_units, efficient=mobile, groups=groups,
                                                        shared=mobile))
        for i in range(n_blocks):
            self.add_module(f"c{i + 1}", Fuse(n_feats * (i + 2), n_feats))
        self.upsample = UpsampleBlock(n_feats, self.scale, multi_scale, groups=groups if mobile else 1)
        self.exit = nn.Conv2d(n_feats, self.out_channels, 3, padding=1)
        self.n_blocks = n_blocks
        self.config = {"n_feats": n_feats, "n_blocks": n_blocks, "n_units": n_units, "mobile": mobile,
                       "groups": groups, "multi_scale": multi_scale}

    def set_scale(self, scale: int) -> CARN:
        """Switch the upsampler of a ``multi_scale=True`` model (×2, ×3 or ×4); returns ``self``."""
        if not self.config["multi_scale"] and int(scale) != self.scale:
            raise ValueError("set_scale needs a model built with multi_scale=True")
        if int(scale) not in self.scales:
            raise ValueError(f"carn supports scales {list(self.scales)}, not {scale}")
        self.scale = int(scale)
        self._rf_cache = "unset"
        return self

    def receptive_field(self) -> int:
        c = self.config
        per_unit = 2  # two 3×3 convs in both unit kinds
        lr = 1 + c["n_blocks"] * c["n_units"] * per_unit + 1  # entry, blocks, first upsampler conv
        return lr + (lr_cells(1, 2) if self.scale == 4 else 0) + lr_cells(1, self.scale)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(x)
        blocks = [getattr(self, f"b{i + 1}") for i in range(self.n_blocks)]
        fuses = [getattr(self, f"c{i + 1}") for i in range(self.n_blocks)]
        x = _cascade(x, blocks, fuses)
        return self.exit(self.upsample(x, self.scale))


class CARNM(CARN):
    """CARN-M: :class:`CARN` with ``mobile=True`` (efficient residual units with 3×3 group convs,
    ``groups=4``, one unit shared recursively inside each cascading block, group convs in the
    upsampler). Published: 0.41 M parameters (RGB, with ×2/×3/×4 upsamplers).

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "carn_m"

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 **kw: int | bool) -> None:
        kw = {"mobile": True, **kw}
        super().__init__(scale, in_channels, out_channels, **kw)  # type: ignore[arg-type]


@register_model("carn", paper=CARN_PAPER, tiny={"n_feats": 8, "n_blocks": 2, "n_units": 2})
def carn(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> CARN:
    """CARN: 3 cascading blocks × 3 residual units, 64 features (×2/×3/×4)."""
    return CARN(scale, in_channels, out_channels, **kw)


@register_model("carn_m", paper=CARN_PAPER, tiny={"n_feats": 8, "n_blocks": 2, "n_units": 2})
def carn_m(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> CARNM:
    """CARN-M: efficient (group-conv) residual units shared within each block (×2/×3/×4)."""
    return CARNM(scale, in_channels, out_channels, **kw)
