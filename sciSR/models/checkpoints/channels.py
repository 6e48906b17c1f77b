"""Adapt RGB (or any C-channel) checkpoint weights to 1 or N channels for scientific data (DESIGN §3).

The first convolution's kernels are collapsed over the input channels (and the last one's over the
outputs), so that a 1-channel image ``g`` gets the response the RGB network gave to ``(g, g, g)``;
a mean shift collapses to its average, the difference folded into the first bias.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..base import SRModel
from .common import MEAN_SHIFT, StateDict


def _collapse_in(w: torch.Tensor, n: int) -> torch.Tensor:
    """Input-side collapse of a convolution weight: each new channel gets ``sum_c W_c / n``.

    Shape:
        ``(O, C, kh, kw) -> (O, n, kh, kw)``.
    """
    return (w.sum(dim=1, keepdim=True) / n).repeat(1, n, 1, 1)


def _collapse_out(w: torch.Tensor, n: int) -> torch.Tensor:
    """Output-side collapse of a weight or bias: every new output row is the average of the C rows.

    Shape:
        ``(C, ...) -> (n, ...)``.
    """
    return w.mean(dim=0, keepdim=True).repeat(n, *([1] * (w.ndim - 1)))


def _collapse_out_subpixel(w: torch.Tensor, c: int, r: int, n: int) -> torch.Tensor:
    """Output-side collapse of a convolution that feeds ``PixelShuffle(r)``: its rows are ordered
    ``(channel, subpixel)``, so each subpixel's row is averaged over the ``c`` channels and repeated
    for the ``n`` new channels.

    Shape:
        ``(c·r², ...) -> (n·r², ...)``.
    """
    rest = w.shape[1:]
    grouped = w.reshape(c, r * r, *rest).mean(dim=0, keepdim=True)
    return grouped.repeat(n, *([1] * (grouped.ndim - 1))).reshape(n * r * r, *rest)


def _output_conv(model: SRModel, convs: list[nn.Conv2d], c_out: int) -> tuple[nn.Conv2d | None, int]:
    """The convolution that writes the output channels, and the pixel-shuffle factor after it (1: none).

    The last convolution a forward pass runs is the output convolution when it has ``c_out``
    channels, or ``c_out·r²`` channels with a ``PixelShuffle(r)`` in the model (sub-pixel output
    layers such as ESPCN's or DAT's); otherwise the last convolution with ``c_out`` channels.
    """
    if convs:
        last = convs[-1]
        if last.out_channels == c_out:
            return last, 1
        shuffles = [m.upscale_factor for m in model.modules() if isinstance(m, nn.PixelShuffle)]
        for r in shuffles:
            if last.out_channels == c_out * r * r:
                return last, int(r)
    return next((m for m in reversed(convs) if m.out_channels == c_out), None), 1


def _fold_mean(w: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
    """Bias correction ``sum_{c,k} W[:, c, k] * (s_c - mean(s))`` for a collapsed input shift.

    ``shifted`` holds the per-channel shift the network sees (``-value_range * mean``); with it the
    adapted first conv answers an equal-channel input exactly like the original away from the
    zero-padded border.

    Shape:
        ``w``: ``(O, C, kh, kw)``, ``shifted``: ``(C,)`` -> ``(O,)``.
    """
    d = (shifted - shifted.mean()).to(w.dtype)
    return (w.sum(dim=(2, 3)) * d.reshape(1, -1)).sum(dim=1)


def _conv_call_order(model: SRModel) -> list[nn.Conv2d]:
    """Convolutions in the order a small forward pass calls them."""
    order: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o: order.append(mod))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(1, model.in_channels, 8, 8, dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return order


def adapt_input_channels(
    model_or_state_dict: SRModel | Mapping[str, torch.Tensor], n: int, adapt_output: bool = True
) -> Any:
    """Adapt RGB (or any C-channel) weights to ``n`` channels for fine-tuning on scientific data.

    The first convolution gets, for each of the ``n`` new channels, ``sum_c W_c / n``: a 1-channel
    image ``g`` then gives exactly the response the RGB net gave to ``(g, g, g)``, and for ``n`` > 1
    an image with ``n`` equal channels does too (the average replicated × C/n). The last
    convolution's rows (and bias) are averaged over the C outputs and replicated ``n`` times, so
    every new output channel is the average of the RGB outputs. A mean shift collapses to its
    average; the difference is folded into the first bias, which keeps the equal-channel property
    exact except at the one-pixel zero-padded border.

    Args:
        model_or_state_dict: An :class:`SRModel` (modified in place and returned), or a state dict in
            any layout (a new dict is returned): its first and last 4-D weights in file order are taken
            as the input and output convolutions, ``sub_mean``/``add_mean`` shifts and a ``mean``
            buffer are collapsed.
        n: New channel count (≥ 1). Equal to the current count: nothing changes.
        adapt_output: Also adapt the output convolution (needed by nets with a global skip).

    Returns:
        The adapted model or state dict.

    Raises:
        ValueError: ``n`` < 1, grouped input convolution, or no convolution found on the data side.
    """
    if int(n) < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    n = int(n)
    if isinstance(model_or_state_dict, nn.Module):
        return _adapt_model(model_or_state_dict, n, adapt_output)
    return _adapt_state_dict(dict(model_or_state_dict), n, adapt_output)


def _adapt_model(model: SRModel, n: int, adapt_output: bool) -> SRModel:
    c_in, c_out = model.in_channels, model.out_channels
    if n == c_in and (not adapt_output or n == c_out):
        return model
    convs = _conv_call_order(model)
    first = next((m for m in convs if m.in_channels == c_in), None)
    last, shuffle = _output_conv(model, convs, c_out)
    if first is None or (adapt_output and last is None):
        raise ValueError(f"cannot find the data-side convolutions of {model.registry_name} to adapt")
    if first.groups != 1:
        raise ValueError("cannot adapt a grouped input convolution")
    mean = model.input_mean
    if mean is not None and mean.shape[1] > 1 and (model.out_channels if not adapt_output else n) != n:
        raise ValueError("an RGB mean shift needs the output adapted too (adapt_output=True)")
    with torch.no_grad():
        w = first.weight.detach()
        if mean is not None and mean.shape[1] == c_in and c_in > 1:
            fold = _fold_mean(w, -model.value_range * mean.flatten().to(w))
            if first.bias is None:
                first.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=w.dtype, device=w.device))
            first.bias.add_(fold)
        first.weight = nn.Parameter(_collapse_in(w, n))
        first.in_channels = n
        if adapt_output and n != c_out:
            if shuffle > 1:
                last.weight = nn.Parameter(_collapse_out_subpixel(last.weight.detach(), c_out, shuffle, n))
                if last.bias is not None:
                    last.bias = nn.Parameter(_collapse_out_subpixel(last.bias.detach(), c_out, shuffle, n))
                last.out_channels = n * shuffle * shuffle
            else:
                last.weight = nn.Parameter(_collapse_out(last.weight.detach(), n))
                if last.bias is not None:
                    last.bias = nn.Parameter(_collapse_out(last.bias.detach(), n))
                last.out_channels = n
            model.out_channels = n
    model.in_channels = n
    if mean is not None:
        model.set_input_transform(mean.flatten().mean().repeat(n), model.value_range)
    model.__dict__.pop("_rf_cache", None)
    return model


def _adapt_state_dict(sd: StateDict, n: int, adapt_output: bool) -> StateDict:
    convs = [k for k, v in sd.items() if k.endswith("weight") and v.ndim == 4 and not MEAN_SHIFT.match(k)]
    if not convs:
        raise ValueError("no convolution weights in the state dict")
    first = convs[0]
    c = sd[first].shape[1]
    if n == c:
        return sd
    last = next((k for k in reversed(convs) if sd[k].shape[0] == c), None)
    out = dict(sd)
    w = sd[first]
    shift = sd.get("sub_mean.bias", sd.get("sub_mean.shifter.bias"))
    bias_key = first[: -len("weight")] + "bias"
    if shift is not None and bias_key in sd:
        out[bias_key] = sd[bias_key] + _fold_mean(w, shift.to(w))
    out[first] = _collapse_in(w, n)
    if adapt_output and last is not None:
        out[last] = _collapse_out(sd[last], n)
        lb = last[: -len("weight")] + "bias"
        if lb in sd:
            out[lb] = _collapse_out(sd[lb], n)
    for k, v in sd.items():
        if not MEAN_SHIFT.match(k):
            continue
        if k.endswith("weight"):
            eye = torch.eye(c, dtype=v.dtype).reshape(v.shape)
            if not torch.allclose(v, eye, atol=1e-6):
                raise ValueError(f"'{k}' is not a plain mean shift (std 1); cannot collapse it")
            out[k] = torch.eye(n, dtype=v.dtype).reshape(n, n, 1, 1)
        else:
            out[k] = v.flatten().mean().repeat(n).reshape((1, n, 1, 1) if v.ndim == 4 else (n,))
    return out
