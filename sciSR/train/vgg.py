"""Frozen VGG19 feature extractor for the perceptual and texture losses, built from a weights file.

The network is the convolutional part of VGG19 (Simonyan & Zisserman 2015): 16 3×3 convolutions
with ReLU in five blocks of 2, 2, 4, 4, 4, each block closed by a 2×2 max pool. Layers use
torchvision's ``features`` indices, so a torchvision ``vgg19`` state dict (``features.N.weight``,
``features.N.bias``; classifier keys are ignored) loads unchanged. The channel widths are read
from the file (64 … 512 for the real network); any file with the same topology loads.

Layer names: ``convB_L`` is the output of the L-th convolution of block B before its ReLU (ESRGAN's
perceptual features, default ``conv5_4``), ``reluB_L`` after it (SRGAN's VGG22 = ``relu2_2``,
VGG54 = ``relu5_4``), ``poolB`` after block B's max pool (EnhanceNet's ``pool2``, ``pool5``).

Inputs are images in ``[0, 1]``: they are normalized with the ImageNet mean and standard deviation
the torchvision weights were trained with; one channel is repeated to three; other channel counts
than 1 and 3 are fed channel by channel (each repeated to three; the feature maps are stacked
along the batch axis).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

#: Convolutions per block of VGG19.
_BLOCKS: tuple[int, ...] = (2, 2, 4, 4, 4)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
_EXPECTED = (
    "a VGG19 state dict in torchvision's layout (features.0.weight … features.34.bias, e.g. "
    "torchvision.models.vgg19(weights='IMAGENET1K_V1').state_dict() saved as .safetensors or a "
    "weights-only .pth)"
)


def _layer_table() -> dict[str, tuple[int, str]]:
    """``name -> (index in torchvision's features, kind)`` with kind ``conv``, ``relu`` or ``pool``."""
    table: dict[str, tuple[int, str]] = {}
    i = 0
    for b, n_conv in enumerate(_BLOCKS, start=1):
        for c in range(1, n_conv + 1):
            table[f"conv{b}_{c}"] = (i, "conv")
            table[f"relu{b}_{c}"] = (i + 1, "relu")
            i += 2
        table[f"pool{b}"] = (i, "pool")
        i += 1
    return table


#: Every named VGG19 layer, in network order.
VGG19_LAYERS: dict[str, tuple[int, str]] = _layer_table()
_CONV_INDICES: tuple[int, ...] = tuple(i for i, kind in VGG19_LAYERS.values() if kind == "conv")
_POOL_INDICES: tuple[int, ...] = tuple(i for i, kind in VGG19_LAYERS.values() if kind == "pool")


def pools_up_to(layer: str) -> int:
    """Number of 2×2 max pools an input passes before (and including) ``layer``."""
    index = VGG19_LAYERS[layer][0]
    return sum(1 for p in _POOL_INDICES if p <= index)


def check_layers(layers: Sequence[str], what: str) -> list[str]:
    """Validate VGG19 layer names.

    Args:
        layers: Names such as ``"conv5_4"``, ``"relu2_2"``, ``"pool5"``.
        what: The option that named them (for the error message).

    Returns:
        The names as a list.

    Raises:
        ValueError: An unknown name or an empty list.
    """
    out = list(layers)
    if not out:
        raise ValueError(f"{what} names no VGG19 layer; give e.g. ['conv5_4']")
    for name in out:
        if name not in VGG19_LAYERS:
            raise ValueError(
                f"unknown VGG19 layer {name!r} in {what}; use convB_L / reluB_L (B = 1..5, L = 1..2 for "
                f"blocks 1-2, 1..4 for 3-5) or poolB"
            )
    return out


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``features`` part of a VGG state dict, keyed ``"<index>.weight"``."""
    out: dict[str, torch.Tensor] = {}
    for key, val in state.items():
        k = key.removeprefix("module.")
        if k.startswith("features."):
            out[k[len("features."):]] = val
        elif k.split(".", 1)[0].isdigit():
            out[k] = val
    return out


class VGG19Features(nn.Module):
    """The first layers of VGG19, up to the deepest requested one, frozen and in eval mode.

    Args:
        state: A VGG19 state dict (torchvision layout; see the module notes).
        layers: Layer names whose outputs :meth:`forward` returns.
        source: Where ``state`` came from (for error messages).

    Raises:
        ValueError: Any of VGG19's 16 convolutions missing, a kernel that is not 3×3, or widths that
            do not chain (checked over the whole network, also when fewer layers are used).

    Shape:
        ``(N, C, H, W) -> {layer: (N', C_l, H_l, W_l)}`` with ``N' = N`` for ``C`` in (1, 3), else
        ``N·C``; ``H_l = H / 2^(pools before l)``.
    """

    def __init__(self, state: Mapping[str, torch.Tensor], layers: Sequence[str], source: str = "state dict"):
        super().__init__()
        self.layers = check_layers(layers, "layers")
        last = max(VGG19_LAYERS[n][0] for n in self.layers)
        feats = _strip_prefix(state)
        prev = 3
        for i in _CONV_INDICES:  # the whole file must be VGG19, even where fewer layers are used
            w, b = feats.get(f"{i}.weight"), feats.get(f"{i}.bias")
            if w is None or b is None:
                raise ValueError(
                    f"vgg_weights={source} has no features.{i}.weight/bias: expected {_EXPECTED}"
                )
            if w.ndim != 4 or tuple(w.shape[1:]) != (prev, 3, 3) or tuple(b.shape) != (w.shape[0],):
                raise ValueError(
                    f"vgg_weights={source}: features.{i}.weight has shape {tuple(w.shape)}, expected "
                    f"(out, {prev}, 3, 3): expected {_EXPECTED}"
                )
            prev = w.shape[0]
        modules: list[nn.Module] = []
        prev = 3
        for i in range(last + 1):
            if i in _CONV_INDICES:
                w, b = feats[f"{i}.weight"], feats[f"{i}.bias"]
                conv = nn.Conv2d(prev, w.shape[0], 3, padding=1)
                with torch.no_grad():
                    conv.weight.copy_(w.float())
                    conv.bias.copy_(b.float())
                modules.append(conv)
                prev = w.shape[0]
            elif i in _POOL_INDICES:
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*modules)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Stays in eval mode (the extractor is frozen)."""
        return super().train(False)

    def min_size(self) -> int:
        """Smallest input side (pixels) that leaves every requested layer at least one pixel."""
        return 2 ** max(pools_up_to(n) for n in self.layers)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalized 3-channel input (see the module notes on channel counts).

        Shape:
            ``(N, C, H, W) -> (N', 3, H, W)``.
        """
        if x.ndim != 4:
            raise ValueError(f"VGG features need an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        if c != 3:
            x = x.reshape(n * c, 1, h, w).expand(-1, 3, -1, -1)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        if min(h, w) < self.min_size():
            raise ValueError(
                f"VGG layers {self.layers} need images of at least {self.min_size()}×{self.min_size()} "
                f"pixels, got {h}×{w}; use larger HR patches or shallower layers"
            )
        want = {VGG19_LAYERS[n][0]: n for n in self.layers}
        out: dict[str, torch.Tensor] = {}
        y = self.prepare(x)
        for i, layer in enumerate(self.features):
            y = layer(y)
            if i in want:
                out[want[i]] = y
        return out


def load_vgg19(path: str | Path | None, layers: Sequence[str], *, for_what: str) -> VGG19Features:
    """Build :class:`VGG19Features` from a weights file, with one-line errors naming ``vgg_weights=``.

    Args:
        path: ``.safetensors`` or weights-only ``.pth`` file (torchvision VGG19 layout), or None.
        layers: Layer names the loss reads.
        for_what: The loss that needs the file (for the error message).

    Returns:
        The frozen extractor (CPU, fp32).

    Raises:
        ValueError: No path, no such file, an unreadable file, or not a VGG19 state dict.
    """
    from ..models.weights_io import read_state_dict

    layers = check_layers(layers, f"the {for_what} layers")
    if path is None:
        raise ValueError(
            f"the {for_what} loss needs VGG19 weights: pass vgg_weights=PATH, a file holding {_EXPECTED} "
            f"(nothing is downloaded)"
        )
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"vgg_weights={str(path)!r} is not a file; expected {_EXPECTED}")
    try:
        state, _ = read_state_dict(p)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"vgg_weights={p.name!r} cannot be read ({first}); expected {_EXPECTED}") from None
    return VGG19Features(state, layers, source=repr(p.name))
