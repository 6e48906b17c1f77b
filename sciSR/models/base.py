"""Model contract shared by every architecture: :class:`ModelSpec` and :class:`SRModel`.

Every network in sciSR maps an LR tensor ``(N, C_in, H, W)`` to ``(N, C_out, sH, sW)`` for any
``H, W``. Pre-upsampling networks (SRCNN, VDSR, DRCN, ...) receive the bicubic-interpolated input
inside :meth:`SRModel.forward`; networks that need a size multiple (U-Net) are padded and cropped
back. Nothing is clamped: physical fields leave ``[0, 1]``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Upsampling = Literal["pre", "post", "progressive", "none"]


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline needs to know about a network.

    Attributes:
        name: Registry name.
        scale: The scale this instance was built for.
        scales: Scales the architecture supports; ``()`` means any integer ≥ 1.
        in_channels: Input channels.
        out_channels: Output channels.
        receptive_field: Half-width of the receptive field in LR pixels: an output pixel depends on
            LR inputs at most this far away. ``None`` means unbounded (global pooling/attention);
            tiling then blends with a finite overlap.
        size_multiple: Input height/width are padded to a multiple of this (and cropped back).
        equivariant: True when the net is translation-equivariant (plain convolutions), so that
            tiles cropped by a halo ≥ ``receptive_field`` reproduce whole-image inference.
        upsampling: ``"pre"`` (interpolate first), ``"post"`` (learned upsampler at the end),
            ``"progressive"`` (pyramid) or ``"none"`` (interpolation baselines).
        params: Number of trainable parameters.
        paper: Short citation.
    """

    name: str
    scale: int
    scales: tuple[int, ...]
    in_channels: int
    out_channels: int
    receptive_field: int | None
    size_multiple: int = 1
    equivariant: bool = True
    upsampling: Upsampling = "post"
    params: int = 0
    paper: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view (for JSON, attrs and tables)."""
        return asdict(self)

    @property
    def halo(self) -> int:
        """LR halo used when tiling: the receptive field, or a blending overlap when unbounded."""
        return self.receptive_field if self.receptive_field is not None else 16


def check_scale(name: str, scale: Any, scales: tuple[int, ...]) -> int:
    """Validate a scale factor against what an architecture supports.

    Raises:
        TypeError: ``scale`` is not an integer.
        ValueError: ``scale`` < 1 or not among ``scales``.
    """
    if (
        isinstance(scale, (bool, np.bool_))
        or not isinstance(scale, (numbers.Integral, numbers.Real))
        or not math.isfinite(scale)
        or int(scale) != scale
    ):
        raise TypeError(f"scale must be a whole number such as 2, 3 or 4, got {scale!r}")
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be ≥ 1, got {scale}")
    if scales and scale not in scales:
        raise ValueError(
            f"model '{name}' supports scales {list(scales)}, not {scale}; "
            f"pick one of those or a pre-upsampling model (e.g. 'vdsr', 'bicubic') for any scale"
        )
    return scale


class SRModel(nn.Module):
    """Base class of every sciSR network.

    Subclasses set the class attributes below, build their layers in ``__init__`` (calling
    ``super().__init__(scale, in_channels, out_channels)`` first) and implement :meth:`forward_sr`.

    Shape:
        forward: ``(N, C_in, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name: ClassVar[str] = "srmodel"
    paper: ClassVar[str] = ""
    scales: ClassVar[tuple[int, ...]] = ()
    upsampling: ClassVar[Upsampling] = "post"
    equivariant: ClassVar[bool] = True
    size_multiple: ClassVar[int] = 1
    #: False for networks that must run in fp32 (numerical solvers without bf16 kernels):
    #: ``precision="auto"`` then picks fp32 and an explicit bf16/fp16 request is refused.
    reduced_precision: ClassVar[bool] = True

    def __init__(self, scale: int, in_channels: int = 1, out_channels: int | None = None) -> None:
        super().__init__()
        self.scale = check_scale(self.name, scale, self.scales)
        if int(in_channels) < 1:
            raise ValueError(f"in_channels must be ≥ 1, got {in_channels}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels if out_channels is not None else in_channels)
        self.registry_name: str = self.name
        self.config: dict[str, Any] = {}
        self.value_range = 1.0
        self.register_buffer("input_mean", None, persistent=False)

    def set_input_transform(self, mean: Any = None, value_range: float = 1.0) -> SRModel:
        """Reproduce a checkpoint's input convention (e.g. EDSR's RGB mean shift and 0..255 range).

        The network then sees ``(x - mean) * value_range`` and its output ``y`` is mapped back to
        ``y / value_range + mean``, so callers keep feeding data in their own units. sciSR's own
        weights use the identity (data are normalized globally by the pipeline instead).
        """
        self.value_range = float(value_range)
        if mean is None:
            self.input_mean = None
        else:
            m = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
            if m.shape[1] not in (1, self.in_channels):
                raise ValueError(f"mean has {m.shape[1]} values for {self.in_channels} channels")
            self.input_mean = m
        return self

    # ------------------------------------------------------------------ contract
    def receptive_field(self) -> int | None:
        """Half-width of the receptive field in LR pixels (``None`` = unbounded).

        The default is the structural bound of :func:`structural_receptive_field` (fast: one
        tiny forward pass); subclasses may override with an analytic value. Tests check both
        against the gradient measurement of :func:`measure_receptive_field`.
        """
        cached = getattr(self, "_rf_cache", "unset")
        if cached == "unset":
            cached = structural_receptive_field(self) if self.equivariant else None
            self._rf_cache = cached
        return cached

    @property
    def spec(self) -> ModelSpec:
        """The :class:`ModelSpec` of this instance."""
        return ModelSpec(
            name=self.registry_name,
            scale=self.scale,
            scales=self.scales,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            receptive_field=self.receptive_field(),
            size_multiple=self.size_multiple,
            equivariant=self.equivariant,
            upsampling=self.upsampling,
            params=sum(p.numel() for p in self.parameters() if p.requires_grad),
            paper=self.paper,
            extra=dict(self.config),
        )

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        """The network proper.

        Post-upsampling nets get the LR tensor (padded to ``size_multiple``) and return it ×scale;
        pre-upsampling nets get the bicubic-upsampled tensor and return the same size.
        """
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``x``.

        Shape:
            ``(N, C_in, H, W) -> (N, C_out, H*scale, W*scale)``.
        """
        if x.ndim != 4:
            raise ValueError(
                f"{self.registry_name} expects a (N, C, H, W) tensor, got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.registry_name} was built for {self.in_channels} input channel(s) but got "
                f"{x.shape[1]}; build it with in_channels={x.shape[1]} or select matching bands"
            )
        h, w = x.shape[-2:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        mean = self.input_mean
        shifted = mean is not None or self.value_range != 1.0
        if shifted:
            x = (x - (mean if mean is not None else 0.0)) * self.value_range
        if self.upsampling == "pre":
            x = upsample_bicubic(x, self.scale, getattr(self, "upsampler", "bicubic"))
        y = self.forward_sr(x)
        if shifted:
            y = y / self.value_range
            if mean is not None and y.shape[1] == mean.shape[1]:
                y = y + mean
        s = self.scale
        return y[..., : h * s, : w * s] if (ph or pw) else y

    def extra_repr(self) -> str:
        return f"scale={self.scale}, in_channels={self.in_channels}, out_channels={self.out_channels}"


def upsample_bicubic(x: torch.Tensor, scale: int, method: str = "bicubic") -> torch.Tensor:
    """Bicubic interpolation on the cell-centred grid (``align_corners=False``), no clamping.

    ``method="matlab"`` uses MATLAB's ``imresize`` convention instead (see :mod:`sciSR.resize`).

    Shape:
        ``(N, C, H, W) -> (N, C, H*scale, W*scale)``.
    """
    if scale == 1:
        return x
    if method != "bicubic":
        from ..resize import upsample

        return upsample(x, scale, method)
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


@torch.no_grad()
def structural_receptive_field(model: SRModel, probe: int = 8) -> int:
    """Upper bound of the LR receptive field from the convolutions a forward pass runs.

    Forward hooks record every ``Conv2d``/``ConvTranspose2d`` call (shared layers of recursive
    nets count once per call) with its reach ``dilation·(k-1)/2`` and the resolution ``r`` it
    runs at relative to the LR input. Reaches are summed in final-HR pixels (``reach·s/r``) and
    converted to whole LR cells, ``ceil(total / s)``, which covers the sub-pixel phase at a
    cell's edge; bicubic pre-upsampling adds its 2-cell support. Summing over parallel branches
    over-estimates (safe: only a wider halo); ``F.interpolate`` calls inside a network are not
    seen, so such networks override :meth:`SRModel.receptive_field` (tests compare with the
    gradient measurement).
    """
    total = [0.0]
    s = float(model.scale)

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], _out: object) -> None:
        r = inp[0].shape[-1] / probe
        k = mod.kernel_size[-1]
        d = mod.dilation[-1] if isinstance(mod, nn.Conv2d) else 1
        total[0] += d * (k - 1) / 2 * s / r

    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    handles = [m.register_forward_hook(hook) for m in convs]
    try:
        p = next(model.parameters(), None)
        x = torch.zeros(1, model.in_channels, probe, probe, device=p.device if p is not None else "cpu")
        was_training = model.training
        model.eval()
        model(x)
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    extra = 2 if model.upsampling == "pre" else 0
    return math.ceil(total[0] / s - 1e-9) + extra


@torch.no_grad()
def measure_receptive_field(model: nn.Module, size: int = 0, max_size: int = 513) -> int | None:
    """Measure the LR receptive-field half-width of a network from its gradients.

    Puts gradient on all ``s × s`` output pixels of the central LR cell and finds the furthest
    input pixel that receives a non-zero gradient (the tiler keeps whole LR cells, so this is the
    halo a tile needs; sub-pixel phases at a cell's edge reach further than its centre). Weights
    are replaced by positive values in a copy so that no path cancels by chance. Returns ``None``
    when the support reaches the input border even at ``max_size`` (unbounded receptive field).
    """
    import copy

    probe = copy.deepcopy(model).float().eval()
    gen = torch.Generator().manual_seed(0)
    for p in probe.parameters():
        fan_in = max(1, p[0].numel()) if p.ndim > 1 else 1
        # positive weights of mean 1/fan_in: no path cancels by chance and gains stay near 1
        p.copy_((0.5 + torch.rand(p.shape, generator=gen)) / fan_in)
    in_ch = getattr(probe, "in_channels", 1)
    size = size or 33
    while True:
        with torch.enable_grad():
            x = torch.zeros(1, in_ch, size, size, requires_grad=True)
            y = probe(x + 0.5)
            sc = getattr(probe, "scale", 1)
            cell = size // 2  # probe every sub-pixel of the central LR cell: tiles keep whole cells
            y[..., cell * sc : (cell + 1) * sc, cell * sc : (cell + 1) * sc].sum().backward()
        g = x.grad.abs().sum(dim=(0, 1))
        nz = torch.nonzero(g > 0)
        if nz.numel() == 0:
            return 0
        reach = float(torch.max(torch.abs(nz.float() - cell)).item())
        touches = int(nz.min()) == 0 or int(nz.max()) == size - 1
        if not touches:
            return int(torch.ceil(torch.tensor(reach)).item())
        if size >= max_size:
            return None
        size = min(max_size, size * 2 + 1)
