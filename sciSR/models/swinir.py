"""SwinIR (Liang et al., ICCVW 2021): image restoration with residual Swin transformer blocks.

Shallow conv → residual Swin transformer blocks (RSTB: windowed self-attention with a learned
relative position bias, alternately shifted windows with an attention mask, MLP, a conv and a
residual per group) → conv (long skip) → upsampler. The lightweight SR configuration (embed dim
60, four groups of six blocks, six heads, window 8, MLP ratio 2, one-step pixel-shuffle upsampler)
is the default; the classical one is ``upsampler="pixelshuffle", embed_dim=180``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import SRModel
from .registry import register_model

SWINIR_PAPER = "Liang et al., SwinIR: Image Restoration Using Swin Transformer, ICCVW 2021"


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """Split a map into non-overlapping windows.

    Shape:
        ``(B, H, W, C) -> (B·H/ws·W/ws, ws·ws, C)``.
    """
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`.

    Shape:
        ``(B·H/ws·W/ws, ws·ws, C) -> (B, H, W, C)``.
    """
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias.

    The bias table has one entry per relative offset ``(2·ws-1)²`` and head.

    Shape:
        ``(B_w, ws·ws, C) -> (B_w, ws·ws, C)``; optional mask ``(n_windows, ws·ws, ws·ws)``.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} heads")
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        ws = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)  # (ws², ws², 2)
        index = rel[..., 0] * (2 * ws - 1) + rel[..., 1]
        self.register_buffer("relative_position_index", index, persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B_w, heads, n, n)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask[None, :, None]
            attn = attn.view(bw, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(x)


class DropPath(nn.Module):
    """Stochastic depth: drops the residual branch per sample in training (identity in eval)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    """``fc1 → GELU → fc2``.

    Shape:
        ``(..., C) -> (..., C)``.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerBlock(nn.Module):
    """LayerNorm → (shifted) window attention → residual; LayerNorm → MLP → residual.

    Shape:
        ``(B, H·W, C) -> (B, H·W, C)`` with ``x_size = (H, W)`` multiples of the window size.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 8, shift_size: int = 0,
                 mlp_ratio: float = 2.0, qkv_bias: bool = True, drop_path: float = 0.0) -> None:
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self._masks: dict[tuple[int, int, str], torch.Tensor] = {}

    def attention_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor | None:
        """Mask keeping shifted windows from attending across the cyclic wrap-around."""
        if self.shift_size == 0:
            return None
        key = (h, w, str(device))
        if key not in self._masks:
            ws, ss = self.window_size, self.shift_size
            img = torch.zeros(1, h, w, 1, device=device)
            cnt = 0
            for hs in (slice(0, -ws), slice(-ws, -ss), slice(-ss, None)):
                for wsl in (slice(0, -ws), slice(-ws, -ss), slice(-ss, None)):
                    img[:, hs, wsl, :] = cnt
                    cnt += 1
            win = window_partition(img, ws).squeeze(-1)  # (nW, ws²)
            diff = win[:, None, :] - win[:, :, None]
            self._masks[key] = torch.zeros_like(diff).masked_fill(diff != 0, -100.0)
        return self._masks[key]

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, ss = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if ss:
            x = torch.roll(x, shifts=(-ss, -ss), dims=(1, 2))
        mask = self.attention_mask(h, w, x.device)
        x = self.attn(window_partition(x, ws), mask=None if mask is None else mask.to(x.dtype))
        x = window_reverse(x, ws, h, w)
        if ss:
            x = torch.roll(x, shifts=(ss, ss), dims=(1, 2))
        x = shortcut + self.drop_path(x.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    """``depth`` Swin blocks, windows shifted by half a window in every second block.

    Shape:
        ``(B, H·W, C) -> (B, H·W, C)``.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 qkv_bias: bool, drop_path: list[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                                 mlp_ratio, qkv_bias, drop_path[i])
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, x_size)
        return x


class RSTB(nn.Module):
    """Residual Swin transformer block: Swin blocks → tokens back to a map → 3×3 conv → + input.

    Shape:
        ``(B, H·W, C) -> (B, H·W, C)``.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 qkv_bias: bool, drop_path: list[float]) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio, qkv_bias, drop_path)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        b, _, c = x.shape
        y = self.residual_group(x, x_size).transpose(1, 2).reshape(b, c, *x_size)
        return self.conv(y).flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """Feature map to tokens, then LayerNorm (``patch_embed.norm``, the official key).

    Shape:
        ``(B, C, H, W) -> (B, H·W, C)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(2).transpose(1, 2))


class SwinIR(SRModel):
    """SwinIR for SR: ``conv_first`` → RSTBs (``layers.N``) → ``norm`` → ``conv_after_body`` (+ skip)
    → upsampler.

    ``upsampler="pixelshuffledirect"`` (lightweight SR): one conv to ``C_out·s²`` + pixel shuffle,
    any integer scale. ``upsampler="pixelshuffle"`` (classical SR): ``conv_before_upsample`` (conv
    + LeakyReLU) → ×2 sub-pixel stages (or one ×3) → ``conv_last``. Inputs are padded to a multiple
    of the window size. Window attention and shifted windows make the network depend on the
    window grid: not translation-equivariant, tiles are blended.

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "swinir"
    paper = SWINIR_PAPER
    scales = ()
    equivariant = False
    size_multiple = 8

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 embed_dim: int = 60, depths: tuple[int, ...] | list[int] = (6, 6, 6, 6),
                 num_heads: tuple[int, ...] | list[int] = (6, 6, 6, 6), window_size: int = 8,
                 mlp_ratio: float = 2.0, qkv_bias: bool = True, drop_path_rate: float = 0.1,
                 upsampler: str = "pixelshuffledirect", num_feat: int = 64) -> None:
        super().__init__(scale, in_channels, out_channels)
        depths, num_heads = list(depths), list(num_heads)
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} differ in length")
        if upsampler not in ("pixelshuffledirect", "pixelshuffle"):
            raise ValueError(f"upsampler must be 'pixelshuffledirect' or 'pixelshuffle', got {upsampler!r}")
        s = self.scale
        if upsampler == "pixelshuffle" and s & (s - 1) and s != 3:
            raise ValueError(f"swinir upsampler='pixelshuffle' supports scales 2^n and 3, not {s}")
        self.size_multiple = int(window_size)  # type: ignore[misc]
        self.upsampler = upsampler
        self.conv_first = nn.Conv2d(self.in_channels, embed_dim, 3, padding=1)
        self.patch_embed = PatchEmbed(embed_dim)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        start = 0
        for d, nh in zip(depths, num_heads):
            self.layers.append(RSTB(embed_dim, d, nh, window_size, mlp_ratio, qkv_bias, dpr[start:start + d]))
            start += d
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        if upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, self.out_channels * s * s, 3, padding=1),
                                          nn.PixelShuffle(s))
        else:
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, padding=1),
                                                      nn.LeakyReLU(inplace=True))
            stages = [2] * int(math.log2(s)) if s & (s - 1) == 0 else [3]
            up: list[nn.Module] = []
            for r in stages if s > 1 else []:
                up += [nn.Conv2d(num_feat, num_feat * r * r, 3, padding=1), nn.PixelShuffle(r)]
            self.upsample = nn.Sequential(*up)
            self.conv_last = nn.Conv2d(num_feat, self.out_channels, 3, padding=1)
        self.apply(self._init_weights)
        self.config = {"embed_dim": embed_dim, "depths": depths, "num_heads": num_heads,
                       "window_size": window_size, "mlp_ratio": mlp_ratio, "upsampler": upsampler}

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """RSTB trunk on a ``(B, C, H, W)`` feature map (H, W multiples of the window size)."""
        b, c, h, w = x.shape
        t = self.patch_embed(x)
        for layer in self.layers:
            t = layer(t, (h, w))
        return self.norm(t).transpose(1, 2).reshape(b, c, h, w)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = self.conv_after_body(self.forward_features(feat)) + feat
        if self.upsampler == "pixelshuffledirect":
            return self.upsample(feat)
        return self.conv_last(self.upsample(self.conv_before_upsample(feat)))


@register_model(
    "swinir",
    paper=SWINIR_PAPER,
    tiny={"embed_dim": 8, "depths": (2,), "num_heads": (2,), "window_size": 4, "drop_path_rate": 0.0},
)
def swinir(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> SwinIR:
    """SwinIR lightweight: 4 RSTBs × 6 Swin blocks, dim 60, window 8, one-step pixel shuffle (any scale)."""
    return SwinIR(scale, in_channels, out_channels, **kw)
