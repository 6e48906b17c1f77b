"""DAT (Chen et al., ICCV 2023): Dual Aggregation Transformer for image super-resolution.

The trunk alternates two kinds of transformer block inside residual groups:

* spatial blocks (DSTB): self-attention inside rectangular windows, half of the channels in
  ``h × w`` windows and the other half in ``w × h`` windows, with a dynamic position bias (a small
  MLP of the relative offset); every second spatial block shifts its windows by half a window;
* channel blocks (DCTB): attention between channels over the whole image (transposed attention
  with L2-normalised queries/keys and a learned temperature per head).

Each attention runs beside a depthwise-conv branch and the two branches gate each other (the
paper's adaptive interaction module: a channel map from one, a spatial map from the other). The
feed-forward network is gated by a depthwise conv (spatial-gate FFN). The input has the DIV2K RGB
mean subtracted (added back at the end), as in the official code; here that shift is the model's
input transform (:meth:`SRModel.set_input_transform`), so channel adaptation
(:func:`sciSR.models.checkpoints.adapt_input_channels`) folds it like any imported mean shift.

The default configuration is DAT-light (embed dim 60, one group of 18 blocks, 6 heads, windows
8×32, FFN expansion 2, a three-convolution residual tail, one-step pixel-shuffle upsampler), the
configuration of the official ``DAT_light_x{2,3,4}`` weights (573K parameters at ×4).

Interpretation notes: windows are laid on the map zero-padded (after the QKV projection) to a
multiple of the longer window side, and padded tokens take part in attention with zero keys and
values, as the official code does, so any input size works and the output matches the official
model for every size. The official position-bias MLP width ``(dim/2)//4//4`` is kept (it is 1 for
DAT-light), floored at 1 for the small test configurations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import SRModel
from .layers import PixelShuffleUpsampler
from .registry import register_model
from .swinir import DropPath

DAT_PAPER = "Chen et al., Dual Aggregation Transformer for Image Super-Resolution, ICCV 2023"

#: RGB mean of DIV2K subtracted from 3-channel inputs by the official code (fractions of [0, 1]).
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)

#: Logit added between tokens of different regions of a shifted window (the official value).
MASK_LOGIT = -100.0


def to_windows(x: torch.Tensor, wh: int, ww: int) -> torch.Tensor:
    """Split a map into ``wh × ww`` windows (row-major windows, row-major tokens).

    Shape:
        ``(B, H, W, C) -> (B·H/wh·W/ww, wh·ww, C)``.
    """
    b, h, w, c = x.shape
    x = x.view(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c)


def from_windows(windows: torch.Tensor, wh: int, ww: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`to_windows`.

    Shape:
        ``(B·H/wh·W/ww, wh·ww, C) -> (B, H, W, C)``.
    """
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // wh) * (w // ww))
    x = windows.view(b, h // wh, w // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def shifted_window_mask(
    h: int, w: int, window: tuple[int, int], shift: tuple[int, int], device: torch.device | None = None
) -> torch.Tensor:
    """Additive attention mask of cyclically shifted windows (Swin's rule, rectangular windows).

    After rolling the map by ``-shift``, the last window row/column holds tokens from opposite
    borders; token pairs from different regions get :data:`MASK_LOGIT`, others 0.

    Shape:
        ``-> (H/wh·W/ww, wh·ww, wh·ww)``.
    """
    (wh, ww), (sh, sw) = window, shift
    labels = torch.zeros(1, h, w, 1, device=device)
    region = 0
    for rows in (slice(0, -wh), slice(-wh, -sh), slice(-sh, None)):
        for cols in (slice(0, -ww), slice(-ww, -sw), slice(-sw, None)):
            labels[:, rows, cols, :] = region
            region += 1
    win = to_windows(labels, wh, ww).squeeze(-1)  # (nW, N)
    apart = win[:, None, :] != win[:, :, None]
    return torch.zeros(apart.shape, device=device).masked_fill_(apart, MASK_LOGIT)


class NormReluLinear(nn.Module):
    """``LayerNorm → ReLU → Linear``, one stage of the position-bias MLP.

    Shape:
        ``(..., C_in) -> (..., C_out)``.
    """

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.norm(x)))


class DynamicPositionBias(nn.Module):
    """MLP from a relative offset ``(dy, dx)`` to one attention bias per head (no residuals).

    Shape:
        ``(T, 2) -> (T, heads)``.
    """

    def __init__(self, hidden: int, num_heads: int) -> None:
        super().__init__()
        self.embed = nn.Linear(2, hidden)
        self.stages = nn.ModuleList(
            NormReluLinear(hidden, out) for out in (hidden, hidden, num_heads)
        )

    def forward(self, offsets: torch.Tensor) -> torch.Tensor:
        x = self.embed(offsets)
        for stage in self.stages:
            x = stage(x)
        return x


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``wh × ww`` windows with a dynamic position bias.

    Buffers (recomputed, not stored): the table of all relative offsets and, per token pair, its
    row in that table.

    Shape:
        ``q, k, v: (B, H, W, C) -> (B, H, W, C)`` with ``H, W`` multiples of the window;
        optional mask ``(n_windows, wh·ww, wh·ww)``.
    """

    def __init__(self, dim: int, num_heads: int, window: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window = (int(window[0]), int(window[1]))
        self.scale = (dim // num_heads) ** -0.5
        wh, ww = self.window
        self.position_bias = DynamicPositionBias(max(1, dim // 16), num_heads)
        dy, dx = torch.meshgrid(torch.arange(1 - wh, wh), torch.arange(1 - ww, ww), indexing="ij")
        offsets = torch.stack([dy, dx], dim=-1).reshape(-1, 2).float()  # ((2wh-1)(2ww-1), 2)
        self.register_buffer("offsets", offsets, persistent=False)
        rows, cols = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
        coords = torch.stack([rows.flatten(), cols.flatten()])  # (2, N)
        rel = coords[:, :, None] - coords[:, None, :]  # (2, N, N)
        index = (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)
        self.register_buffer("offset_index", index, persistent=False)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        _, h, w, c = q.shape
        (wh, ww), heads = self.window, self.num_heads
        n = wh * ww

        def split(t: torch.Tensor) -> torch.Tensor:
            return to_windows(t, wh, ww).reshape(-1, n, heads, c // heads).transpose(1, 2)

        q, k, v = split(q), split(k), split(v)  # (B·nW, heads, N, d)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.position_bias(self.offsets)[self.offset_index.reshape(-1)]
        attn = attn + bias.view(n, n, heads).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(-1, nw, heads, n, n) + mask[None, :, None]).view(-1, heads, n, n)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(-1, n, c)
        return from_windows(out, wh, ww, h, w)


class LocalConv(nn.Module):
    """Depthwise 3×3 conv → BatchNorm → GELU: the convolution branch beside each attention.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.bn(self.conv(x)))


class ChannelMap(nn.Module):
    """Global average pool → 1×1 conv (C/8) → BatchNorm → GELU → 1×1 conv (C): a per-channel logit.

    Shape:
        ``(B, C, H, W) -> (B, C, 1, 1)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(dim, dim // 8, 1)
        self.bn = nn.BatchNorm2d(dim // 8)
        self.expand = nn.Conv2d(dim // 8, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(F.gelu(self.bn(self.reduce(x.mean(dim=(2, 3), keepdim=True)))))


class SpatialMap(nn.Module):
    """1×1 conv (C/16) → BatchNorm → GELU → 1×1 conv (1): a per-pixel logit.

    Shape:
        ``(B, C, H, W) -> (B, 1, H, W)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(dim, dim // 16, 1)
        self.bn = nn.BatchNorm2d(dim // 16)
        self.expand = nn.Conv2d(dim // 16, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(F.gelu(self.bn(self.reduce(x))))


class SpatialWindowAttention(nn.Module):
    """Spatial attention of a DSTB: two window shapes on the two channel halves, a conv branch, and
    the interaction (the conv branch's channel map gates the attention, the attention's spatial
    map gates the conv branch).

    Shape:
        ``(B, H·W, C) -> (B, H·W, C)``.
    """

    def __init__(
        self, dim: int, num_heads: int, split_size: tuple[int, int], shifted: bool, qkv_bias: bool = True
    ) -> None:
        super().__init__()
        s0, s1 = int(split_size[0]), int(split_size[1])
        self.pad_multiple = max(s0, s1)
        self.shifted = bool(shifted)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.branches = nn.ModuleList(
            [WindowAttention(dim // 2, num_heads // 2, win) for win in ((s0, s1), (s1, s0))]
        )
        self.local = LocalConv(dim)
        self.channel_map = ChannelMap(dim)
        self.spatial_map = SpatialMap(dim)
        self.proj = nn.Linear(dim, dim)

    def masks(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
        """Shifted-window masks of both branches for an ``h × w`` padded map.

        Built at every call and not kept: a mask holds ``n_windows · (wh·ww)²`` values (about 0.9 GB
        for a 1152×768 map), as large as a third of the attention it masks.
        """
        out = []
        for br in self.branches:
            wh, ww = br.window
            out.append(shifted_window_mask(h, w, (wh, ww), (wh // 2, ww // 2), device).to(dtype))
        return out

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, c).permute(2, 0, 1, 3)  # (3, B, H·W, C)
        v_map = qkv[2].transpose(1, 2).reshape(b, c, h, w)
        m = self.pad_multiple
        ph, pw = (-h) % m, (-w) % m
        grid = F.pad(qkv.reshape(3, b, h, w, c), (0, 0, 0, pw, 0, ph))  # zero tokens after the projection
        hp, wp = h + ph, w + pw
        masks = self.masks(hp, wp, x.device, x.dtype) if self.shifted else [None, None]
        outs = []
        for half, branch, mask in zip(grid.chunk(2, dim=-1), self.branches, masks):
            sh, sw = (branch.window[0] // 2, branch.window[1] // 2) if self.shifted else (0, 0)
            if self.shifted:
                half = torch.roll(half, shifts=(-sh, -sw), dims=(2, 3))
            y = branch(half[0], half[1], half[2], mask)
            if self.shifted:
                y = torch.roll(y, shifts=(sh, sw), dims=(1, 2))
            outs.append(y[:, :h, :w].reshape(b, n, c // 2))
        attended = torch.cat(outs, dim=-1)
        conv = self.local(v_map)
        channel_logit = self.channel_map(conv).reshape(b, 1, c)
        spatial_logit = self.spatial_map(attended.transpose(1, 2).reshape(b, c, h, w))
        attended = attended * torch.sigmoid(channel_logit)
        conv = (torch.sigmoid(spatial_logit) * conv).flatten(2).transpose(1, 2)
        return self.proj(attended + conv)


class ChannelSelfAttention(nn.Module):
    """Channel attention of a DCTB: attention between channels (per head, over all tokens), a conv
    branch, and the interaction (the attention's channel map gates the conv branch, the conv
    branch's spatial map gates the attention).

    Shape:
        ``(B, H·W, C) -> (B, H·W, C)``.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.local = LocalConv(dim)
        self.channel_map = ChannelMap(dim)
        self.spatial_map = SpatialMap(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 4, 1)  # (3, B, heads, d, N)
        q, k, v = qkv[0], qkv[1], qkv[2]
        v_map = v.reshape(b, c, h, w)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)  # (B, heads, d, d)
        attended = (attn @ v).permute(0, 3, 1, 2).reshape(b, n, c)
        conv = self.local(v_map)
        channel_logit = self.channel_map(attended.transpose(1, 2).reshape(b, c, h, w))
        spatial_logit = self.spatial_map(conv).flatten(2).transpose(1, 2)  # (B, N, 1)
        attended = attended * torch.sigmoid(spatial_logit)
        conv = (conv * torch.sigmoid(channel_logit)).flatten(2).transpose(1, 2)
        return self.proj(attended + conv)


class SpatialGateFFN(nn.Module):
    """``fc1 → GELU →`` split in halves, ``a · dwconv(LayerNorm(b)) → fc2`` (spatial-gate FFN).

    Shape:
        ``(B, H·W, C) -> (B, H·W, C)``.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.gate_norm = nn.LayerNorm(hidden // 2)
        self.gate_conv = nn.Conv2d(hidden // 2, hidden // 2, 3, padding=1, groups=hidden // 2)
        self.fc2 = nn.Linear(hidden // 2, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        a, g = F.gelu(self.fc1(x)).chunk(2, dim=-1)
        b, _, c = g.shape
        g = self.gate_conv(self.gate_norm(g).transpose(1, 2).reshape(b, c, h, w))
        return self.fc2(a * g.flatten(2).transpose(1, 2))


class DualBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))``, then ``x + FFN(LN(x))``.

    ``spatial=True`` makes a DSTB (window attention), ``False`` a DCTB (channel attention).

    Shape:
        ``(B, H·W, C) -> (B, H·W, C)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        spatial: bool,
        split_size: tuple[int, int],
        shifted: bool,
        expansion_factor: float,
        qkv_bias: bool,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn: nn.Module = (
            SpatialWindowAttention(dim, num_heads, split_size, shifted, qkv_bias)
            if spatial
            else ChannelSelfAttention(dim, num_heads, qkv_bias)
        )
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = SpatialGateFFN(dim, int(dim * expansion_factor))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.ffn(self.norm2(x), h, w))


class ResidualConv(nn.Module):
    """Convolution closing a residual group (and the trunk): one 3×3 conv (``"1conv"``), or 3×3 to
    C/4 → 1×1 → 3×3 back to C with LeakyReLU(0.2) between (``"3conv"``, fewer parameters).

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, dim: int, kind: str) -> None:
        super().__init__()
        if kind not in ("1conv", "3conv"):
            raise ValueError(f"resi_connection must be '1conv' or '3conv', got {kind!r}")
        self.kind = kind
        if kind == "1conv":
            self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        else:
            self.reduce = nn.Conv2d(dim, dim // 4, 3, padding=1)
            self.mix = nn.Conv2d(dim // 4, dim // 4, 1)
            self.expand = nn.Conv2d(dim // 4, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "1conv":
            return self.conv(x)
        x = F.leaky_relu(self.reduce(x), 0.2)
        return self.expand(F.leaky_relu(self.mix(x), 0.2))


def is_shifted(group: int, block: int) -> bool:
    """Whether spatial block ``block`` of residual group ``group`` shifts its windows.

    The official rule: in even groups blocks 2, 6, 10, ... shift; in odd groups blocks 0, 4, 8, ...
    (spatial blocks are the even-numbered ones, so shifted and plain spatial blocks alternate).
    """
    if group % 2 == 0:
        return block > 0 and (block - 2) % 4 == 0
    return block % 4 == 0


class ResidualGroup(nn.Module):
    """``depth`` blocks alternating DSTB (even) and DCTB (odd), a residual conv and a skip.

    Shape:
        ``(B, H·W, C) -> (B, H·W, C)``.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        split_size: tuple[int, int],
        expansion_factor: float,
        qkv_bias: bool,
        drop_paths: Sequence[float],
        resi_connection: str,
        index: int,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            DualBlock(dim, num_heads, i % 2 == 0, split_size, is_shifted(index, i), expansion_factor,
                      qkv_bias, drop_paths[i])
            for i in range(depth)
        )
        self.conv = ResidualConv(dim, resi_connection)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        y = x
        for blk in self.blocks:
            y = blk(y, h, w)
        b, _, c = y.shape
        y = self.conv(y.transpose(1, 2).reshape(b, c, h, w))
        return x + y.flatten(2).transpose(1, 2)


class OneStepUpsampler(nn.Module):
    """3×3 conv to ``C_out·s²`` channels, then pixel shuffle (the lightweight reconstruction).

    Shape:
        ``(B, C, H, W) -> (B, C_out, H*s, W*s)``.
    """

    def __init__(self, dim: int, out_channels: int, scale: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, out_channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


class DAT(SRModel):
    """Dual Aggregation Transformer: ``conv_first`` → tokens + LayerNorm → residual groups of
    alternating spatial/channel blocks → LayerNorm → residual conv (+ skip) → upsampler.

    ``upsampler="pixelshuffledirect"`` (DAT-light): one conv + pixel shuffle.
    ``upsampler="pixelshuffle"`` (DAT, DAT-S, DAT-2): conv + LeakyReLU to ``num_feat``, ×2 (or ×3)
    sub-pixel stages, ``conv_last``. The input mean ``img_mean`` (default: the DIV2K RGB mean for 3
    channels, zeros otherwise, as in the official code) is the model's input transform: subtracted
    before ``conv_first`` and added back to outputs with as many channels. A mean of another length
    than ``in_channels`` is collapsed to its average (the rule of channel adaptation), and
    ``config["img_mean"]`` follows :meth:`set_input_transform`, so the configuration of a
    channel-adapted model rebuilds it. ``init_std`` is the standard deviation of the truncated-normal
    initialisation of the linear layers (0.02 upstream; the small test configuration uses a larger
    one so that its attention is not negligible at initialisation); it only affects training from
    scratch and is not part of the configuration. Channel attention is global and window attention
    depends on the window grid: not translation-equivariant, tiles are blended.

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "dat_light"
    paper = DAT_PAPER
    scales = (2, 3, 4)
    equivariant = False

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        out_channels: int | None = None,
        embed_dim: int = 60,
        depths: Sequence[int] = (18,),
        num_heads: Sequence[int] = (6,),
        split_size: Sequence[int] = (8, 32),
        expansion_factor: float = 2.0,
        qkv_bias: bool = True,
        resi_connection: str = "3conv",
        upsampler: str = "pixelshuffledirect",
        img_mean: Sequence[float] | None = None,
        drop_path_rate: float = 0.1,
        num_feat: int = 64,
        init_std: float = 0.02,
    ) -> None:
        super().__init__(scale, in_channels, out_channels)
        depths, num_heads = [int(d) for d in depths], [int(n) for n in num_heads]
        split = (int(split_size[0]), int(split_size[1]))
        check_config(embed_dim, depths, num_heads, split, upsampler)
        s = self.scale
        self.upsampler = upsampler
        self.conv_first = nn.Conv2d(self.in_channels, embed_dim, 3, padding=1)
        self.embed_norm = nn.LayerNorm(embed_dim)
        total = sum(depths)
        rates = [drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        self.groups = nn.ModuleList()
        start = 0
        for g, (d, nh) in enumerate(zip(depths, num_heads)):
            self.groups.append(ResidualGroup(embed_dim, d, nh, split, expansion_factor, qkv_bias,
                                             rates[start:start + d], resi_connection, g))
            start += d
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = ResidualConv(embed_dim, resi_connection)
        if upsampler == "pixelshuffledirect":
            self.upsample: nn.Module = OneStepUpsampler(embed_dim, self.out_channels, s)
        else:
            self.conv_before_upsample = nn.Conv2d(embed_dim, num_feat, 3, padding=1)
            self.upsample = PixelShuffleUpsampler(s, num_feat)
            self.conv_last = nn.Conv2d(num_feat, self.out_channels, 3, padding=1)
        self.init_std = float(init_std)
        self.apply(self._init_weights)
        self.config = {
            "embed_dim": embed_dim, "depths": depths, "num_heads": num_heads, "split_size": list(split),
            "expansion_factor": expansion_factor, "qkv_bias": qkv_bias, "resi_connection": resi_connection,
            "upsampler": upsampler,
        }
        if img_mean is None:
            img_mean = DIV2K_RGB_MEAN if self.in_channels == 3 else (0.0,) * self.in_channels
        mean = [float(m) for m in img_mean]
        if len(mean) != self.in_channels:
            mean = [sum(mean) / len(mean)] * self.in_channels
        self.set_input_transform(mean if any(mean) else None)

    def set_input_transform(self, mean: object = None, value_range: float = 1.0) -> DAT:
        """:meth:`SRModel.set_input_transform`, also recorded as ``config["img_mean"]`` (zeros for none)."""
        super().set_input_transform(mean, value_range)
        if mean is None:
            values = [0.0] * self.in_channels
        else:
            values = torch.as_tensor(mean, dtype=torch.float64, device="cpu").flatten().tolist()
            values = values * self.in_channels if len(values) == 1 else values
        self.config["img_mean"] = [float(v) for v in values]
        return self

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=self.init_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Transformer trunk on a ``(B, C, H, W)`` feature map (any ``H, W``).

        Shape:
            ``(B, C, H, W) -> (B, C, H, W)``.
        """
        b, c, h, w = x.shape
        t = self.embed_norm(x.flatten(2).transpose(1, 2))
        for group in self.groups:
            t = group(t, h, w)
        return self.norm(t).transpose(1, 2).reshape(b, c, h, w)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = self.conv_after_body(self.forward_features(feat)) + feat
        if self.upsampler == "pixelshuffledirect":
            y = self.upsample(feat)
        else:
            y = F.leaky_relu(self.conv_before_upsample(feat), 0.01)
            y = self.conv_last(self.upsample(y))
        return y


def check_config(
    embed_dim: int, depths: list[int], num_heads: list[int], split: tuple[int, int], upsampler: str
) -> None:
    """Reject DAT settings the architecture cannot build (one line naming the fix).

    Raises:
        ValueError: Mismatched group lists, heads that do not split the channels or the two window
            branches, an embed dim below 16 (the spatial map has C/16 channels), bad windows or an
            unknown upsampler.
    """
    if len(depths) != len(num_heads) or not depths or min(depths) < 1:
        raise ValueError(f"depths {depths} and num_heads {num_heads} must be non-empty lists of one length")
    if embed_dim < 16:
        raise ValueError(
            f"embed_dim must be at least 16 (the spatial map has embed_dim/16 channels), got {embed_dim}"
        )
    for nh in num_heads:
        if nh < 2 or nh % 2 or embed_dim % nh:
            raise ValueError(
                f"num_heads {nh} must be even and divide embed_dim {embed_dim} "
                f"(half of the heads serve each window branch)"
            )
    if min(split) < 2:
        raise ValueError(f"split_size {list(split)} must be window sides of at least 2 (shifted by half)")
    if upsampler not in ("pixelshuffledirect", "pixelshuffle"):
        raise ValueError(f"upsampler must be 'pixelshuffledirect' or 'pixelshuffle', got {upsampler!r}")


@register_model(
    "dat_light",
    paper=DAT_PAPER,
    tiny={
        "embed_dim": 16,
        "depths": (2,),
        "num_heads": (2,),
        "split_size": (4, 8),
        "drop_path_rate": 0.0,
        "init_std": 0.3,
    },
)
def dat_light(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> DAT:
    """DAT-light: 18 dual-aggregation blocks (spatial/channel attention), dim 60, 8×32 windows (×2/×3/×4)."""
    return DAT(scale, in_channels, out_channels, **kw)


__all__ = ["DAT", "DIV2K_RGB_MEAN", "dat_light", "shifted_window_mask"]
