"""LIIF (Chen et al., CVPR 2021): a local implicit image function decoded at any integer scale.

What the paper defines: an encoder (here EDSR-baseline without its upsampler) turns the LR image
into a feature map, one latent code per LR pixel. An MLP ``f(z, x - v, c)`` predicts the value at
a continuous coordinate ``x`` from the latent code ``z`` of a nearby LR pixel centred at ``v`` and
the size ``c`` of the queried cell. Three refinements, all on in the released ``edsr-baseline-liif``
configuration: *feature unfolding* (each code is the concatenation of its 3×3 neighbourhood),
*local ensemble* (the four codes around ``x`` each predict, weighted by the area of the rectangle
between ``x`` and the diagonally opposite code) and *cell decoding* (``c`` is an MLP input). The
network was trained on DIV2K with scales drawn from ×1–×4 and evaluated up to ×30.

sciSR's interpretation (checked against the source package's own model to < 1e-4 by
``tools/weights/convert_liif.py``):

* Queries are the HR pixel centres of the cell-centred grid: LR cell ``i`` covers HR cells
  ``s·i … s·i + s − 1``, so HR pixel ``j`` sits at ``u = (j + ½)/s`` LR pixels. This is LIIF's
  ``make_coord`` convention (centres of ``2/n``-wide cells on ``[-1, 1]``) expressed in LR index
  space: the ensemble codes are ``k₀ = ⌊u − ½⌋`` and ``k₁ = k₀ + 1`` (clamped to the image, as
  LIIF clamps its shifted coordinates), the relative coordinate is ``2(u − k − ½)`` and the cell
  ``2/s``. Ties (odd scales, a query at a cell's centre) break upwards, as LIIF's ``eps_shift``
  makes them. Nothing depends on the image size, so the model is translation-equivariant by
  whole LR cells.
* The ensemble weights are LIIF's normalized areas written as a product of per-axis weights
  (:func:`axis_queries`). They differ from the source in one place: at odd scales, on the HR
  row/column through the centre of the last LR row/column, both codes of that axis are the same
  clamped cell at relative coordinate 0 and LIIF's formula is 0/0 up to its ``1e-9`` guard; the
  source then gives the limit (area weights along the other axis) or equal weights depending on
  the float32 rounding of its coordinates for that image size. sciSR always gives the limit.
* The MLP's first layer is linear in its input, so its feature part is applied once per LR pixel
  as a 3×3 convolution over the codes (the unfolded 3×3 neighbourhood, zero-padded as LIIF's
  ``unfold(padding=1)``) and its coordinate/cell part is added per query; the remaining layers
  are 1×1 convolutions over the HR query grid, evaluated in chunks of rows
  (:attr:`LIIF.query_chunk` queries) to bound memory.
* LIIF's data normalization (``(x − 0.5)/0.5`` in, ``y·0.5 + 0.5`` out) is inside the model, so
  callers feed values in ``[0, 1]`` like every sciSR network. Outputs are not clamped.
* Receptive field: 34 encoder convolutions + 1 for unfolding + 1 for the ensemble neighbour =
  36 LR pixels. Tiles cropped by that halo reproduce whole-image inference (the clamping of
  codes only happens at the true image border, which tiles keep).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from .base import SRModel
from .layers import ResBlock, default_conv
from .registry import register_model

LIIF_PAPER = (
    "Chen et al., Learning Continuous Image Representation with Local Implicit Image Function, CVPR 2021"
)

#: LIIF's data normalization: the network sees ``(x - mean) / std`` and its output is mapped back.
DATA_MEAN = 0.5
DATA_STD = 0.5


class LIIFEncoder(nn.Module):
    """EDSR-baseline without upsampler: head conv → residual blocks + conv (global skip).

    Layer names follow the EDSR release (``head.0``, ``body.N``) used by LIIF's encoder.

    Shape:
        ``(N, C, H, W) -> (N, n_feats, H, W)``.
    """

    def __init__(self, in_channels: int, n_resblocks: int = 16, n_feats: int = 64) -> None:
        super().__init__()
        self.head = nn.Sequential(default_conv(in_channels, n_feats, 3))
        self.body = nn.Sequential(
            *[ResBlock(n_feats, 3) for _ in range(n_resblocks)], default_conv(n_feats, n_feats, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        return x + self.body(x)


class LIIFDecoder(nn.Module):
    """LIIF's MLP, split at its first layer (see the module notes).

    ``feat_proj`` is the first layer's weight on the (unfolded) code, as a 3×3 (or 1×1 without
    unfolding) convolution over the LR feature map; ``coord_proj`` its weight on
    ``(rel_y, rel_x[, cell_y, cell_x])`` and its bias; ``hidden`` the next layers and ``out`` the
    last one, as 1×1 convolutions over the query grid (ReLU between layers, none after ``out``).

    Shape:
        :meth:`mlp`: ``(N, hidden[0], h, w) -> (N, out_channels, h, w)`` (first-layer pre-activations in).
    """

    def __init__(
        self,
        n_feats: int,
        out_channels: int,
        hidden: Sequence[int] = (256, 256, 256, 256),
        feat_unfold: bool = True,
        cell_decode: bool = True,
    ) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1:
            raise ValueError(f"liif hidden must list at least one positive layer width, got {hidden}")
        k = 3 if feat_unfold else 1
        self.feat_proj = nn.Conv2d(n_feats, hidden[0], k, padding=k // 2, bias=False)
        self.coord_proj = nn.Linear(4 if cell_decode else 2, hidden[0])
        self.hidden = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in pairwise(hidden))
        self.out = nn.Conv2d(hidden[-1], out_channels, 1)

    def mlp(self, h: torch.Tensor) -> torch.Tensor:
        """The layers after the first one's affine part."""
        h = F.relu(h)
        for layer in self.hidden:
            h = F.relu(layer(h))
        return self.out(h)


def axis_queries(
    n: int, scale: int, ensemble: bool, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Codes, relative coordinates and ensemble weights along one axis for the ``n·scale`` HR pixels.

    LIIF weights the prediction of each of the four codes around a query by the area
    ``|rel_y·rel_x|`` of the diagonally opposite one, normalized by the sum of the four areas. The
    areas are products of per-axis distances, so the normalized weight is the product of per-axis
    weights ``|rel_{1-a}| / (|rel_0| + |rel_1|)``; this function returns those. Where both codes of
    an axis are the same clamped border cell and the query sits on its centre (odd scales, last
    row/column), LIIF's ratio is 0/0 up to its ``1e-9`` guard and the source's result follows its
    float rounding of ``rel``; here the axis weights are then ½ each, which is what the source
    computes whenever that rounding is not exactly zero (the two codes are the same cell either way).

    Args:
        n: LR length of the axis.
        scale: Integer factor.
        ensemble: Two codes per query (LIIF's local ensemble) instead of the nearest one.
        device: Where the tensors go.

    Returns:
        One ``(index, rel, weight)`` triple per code: LR indices (int64), ``2·(u − k − ½)`` and the
        axis weight (float64; all ones without the ensemble) for each HR pixel.

    Shape:
        each tensor: ``(n·scale,)``.
    """
    u = (torch.arange(n * scale, dtype=torch.float64, device=device) + 0.5) / scale
    if not ensemble:
        k = torch.floor(u).clamp(0, n - 1)
        return [(k.long(), 2.0 * (u - k - 0.5), torch.ones_like(u))]
    k0 = torch.floor(u - 0.5)
    ks = [k0.clamp(0, n - 1), (k0 + 1).clamp(0, n - 1)]
    rels = [2.0 * (u - k - 0.5) for k in ks]
    dist = [r.abs() for r in rels]
    tot = dist[0] + dist[1]
    safe = torch.where(tot > 0, tot, torch.ones_like(tot))
    weights = [torch.where(tot > 0, dist[1 - i] / safe, torch.full_like(tot, 0.5)) for i in range(2)]
    return [(k.long(), r, w) for k, r, w in zip(ks, rels, weights)]


class LIIF(SRModel):
    """EDSR-baseline encoder + LIIF decoder, queried at the HR pixel centres of any integer scale.

    Defaults are the released ``edsr-baseline-liif`` configuration (16 residual blocks × 64
    features, MLP 256×4 hidden, unfolding, local ensemble, cell decoding; 1,567,299 parameters
    for RGB). One set of weights serves every scale: build the model for the scale you need and
    load the same file.

    Args:
        scale: Integer factor (any ≥ 1).
        in_channels: Input channels.
        out_channels: Output channels (default ``in_channels``).
        n_resblocks: Encoder residual blocks.
        n_feats: Encoder features (latent code size before unfolding).
        hidden: MLP hidden widths.
        feat_unfold: Concatenate each code's 3×3 neighbourhood.
        local_ensemble: Blend the four surrounding codes by area.
        cell_decode: Feed the cell size to the MLP.
        query_chunk: Queries per MLP call (memory bound; not a hyper-parameter, may be changed on
            the instance).

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "liif"
    paper = LIIF_PAPER
    scales = ()

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        out_channels: int | None = None,
        n_resblocks: int = 16,
        n_feats: int = 64,
        hidden: Sequence[int] = (256, 256, 256, 256),
        feat_unfold: bool = True,
        local_ensemble: bool = True,
        cell_decode: bool = True,
        query_chunk: int = 2**15,
    ) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.encoder = LIIFEncoder(self.in_channels, n_resblocks, n_feats)
        self.decoder = LIIFDecoder(n_feats, self.out_channels, hidden, feat_unfold, cell_decode)
        self.local_ensemble = bool(local_ensemble)
        self.cell_decode = bool(cell_decode)
        self.query_chunk = int(query_chunk)
        self.config = {
            "n_resblocks": n_resblocks,
            "n_feats": n_feats,
            "hidden": [int(h) for h in hidden],
            "feat_unfold": bool(feat_unfold),
            "local_ensemble": self.local_ensemble,
            "cell_decode": self.cell_decode,
        }

    def receptive_field(self) -> int:
        """Encoder convolutions, plus one for unfolding and one for the ensemble neighbour."""
        c = self.config
        return 2 * c["n_resblocks"] + 2 + int(c["feat_unfold"]) + int(c["local_ensemble"])

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        s = self.scale
        proj = self.decoder.feat_proj(self.encoder((x - DATA_MEAN) / DATA_STD))
        dtype = proj.dtype
        wc = self.decoder.coord_proj.weight.to(dtype)  # (D, 2 or 4): rel_y, rel_x[, cell_y, cell_x]
        const = self.decoder.coord_proj.bias.to(dtype)
        if self.cell_decode:
            const = const + (wc[:, 2] + wc[:, 3]) * (2.0 / s)
        rows_q = axis_queries(h, s, self.local_ensemble, x.device)
        cols_q = axis_queries(w, s, self.local_ensemble, x.device)
        col_terms = [wc[:, 1, None] * rx.to(dtype) + const[:, None] for _, rx, _ in cols_q]  # (D, sW)
        n_rows = max(1, self.query_chunk // max(1, n * w * s))
        chunks = []
        for r0 in range(0, h * s, n_rows):
            r1 = min(h * s, r0 + n_rows)
            acc: torch.Tensor | float = 0.0
            for iy, ry, wy in rows_q:
                rows = proj.index_select(2, iy[r0:r1])  # (N, D, R, W)
                row_term = wc[:, 0, None] * ry[r0:r1].to(dtype)  # (D, R)
                for (ix, _, wx), col_term in zip(cols_q, col_terms):
                    pred = self.decoder.mlp(
                        rows.index_select(3, ix) + (row_term[:, :, None] + col_term[:, None, :])
                    )
                    acc = acc + pred * (wy[r0:r1, None] * wx[None, :]).to(pred.dtype)
            chunks.append(acc)
        return torch.cat(chunks, dim=2) * DATA_STD + DATA_MEAN


@register_model(
    "liif",
    paper=LIIF_PAPER,
    tiny={"n_resblocks": 1, "n_feats": 8, "hidden": (16, 16)},
)
def liif(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> LIIF:
    """LIIF: EDSR-baseline encoder + implicit MLP decoder, one network for every integer scale."""
    return LIIF(scale, in_channels, out_channels, **kw)
