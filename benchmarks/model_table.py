"""Print the model-zoo table for every registered model and write it to ``docs/models.md``.

Columns: registry name, paper, parameters of the default configuration (1 channel, ×4 or the
nearest supported scale), the published parameter count of the paper's configuration (where we
could justify one), FLOPs per output pixel (``torch.utils.flop_counter.FlopCounterMode`` on a
32×32 LR input, 2 FLOPs per multiply-add, divided by the number of HR output pixels), the
receptive-field half-width in LR pixels (``model.spec.receptive_field``), scales, upsampling
kind and translation equivariance.

Usage::

    python benchmarks/model_table.py            # print and write docs/models.md
    python benchmarks/model_table.py --no-write # print only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import sciSR
from sciSR.models import get_entry

ROOT = Path(__file__).resolve().parents[1]

#: Published parameter counts of the papers' configurations and what they cover.
PUBLISHED: dict[str, str] = {
    "srcnn": "57 K (9-5-5, Y)",
    "vdsr": "665 K (Y)",
    "fsrcnn": "12.46 K weights (d56 s12 m4, Y)",
    "edsr": "43.1 M (RGB ×4)",
    "edsr_baseline": "1.52 M (RGB ×4)",
    "mdsr": "8.0 M (RGB, ×2/×3/×4 branches)",
    "carn": "1.59 M (RGB, ×2/×3/×4 upsamplers; `multi_scale=True`)",
    "carn_m": "0.41 M (RGB, ×2/×3/×4 upsamplers; `multi_scale=True`)",
    "drcn": "1,774 K (Y)",
    "drrn": "297 K (B1U25, Y)",
    "lapsrn": "812 K (×4, Y; official 3×3 feature up-kernels)",
    "ms_lapsrn": "222 K (D5R8, Y; official 3×3 feature up-kernels)",
    "selnet": "974 K (×2, Y)",
    "cmsc": "— (unverified configuration, see notes)",
    "idn": "553 K (Y)",
    "rcan": "15.6 M (RGB ×4)",
    "esrgan": "16.7 M (RRDBNet, RGB ×4)",
    "srresnet": "1.55 M (RGB ×4)",
    "srgan": "1.55 M (generator, RGB ×4)",
    "msrresnet": "1.52 M (BasicSR MSRResNet, RGB ×4)",
    "swinir": "897 K (light ×4, RGB; excludes the 32 K relative-position tables, see test)",
}

#: What the default configuration rests on, where it is not simply the paper's published one.
NOTES: dict[str, str] = {
    "btsrn": "Layout of the official code (ychfan/sr_ntire2017): 1×1 in/out convs, LeakyReLU(0.2), "
    "nearest + kernel=stride deconvolution per ×2 stage with a PConv block between, residual over "
    "bicubic. No published parameter count.",
    "cmsc": "**Unverified configuration.** Module design, residual-features learning, cascaded "
    "supervision and weighted assembly follow the paper's description; the sizes (64 features, "
    "3 subnetworks × 4 MSC modules × 2 cross layers) are our choice and could not be checked against "
    "the paper.",
    "drrn": "`batch_norm=True` adds the official prototxt's pre-activation BatchNorm (+13,058 "
    "parameters for B1U25, one channel); off by default.",
    "lapsrn": "The paper's 812 K: 814,242 with the official 3×3 feature up-kernels (default); "
    "`up_kernel=4` gives 871,586.",
    "ms_lapsrn": "The paper's 222 K: 222,801 with the official 3×3 feature up-kernel (default).",
    "selnet": "974,849 at ×2 (Y): 22 conv layers (input conv, 10 residual units of two convs, HR conv), "
    "21 identity-gated selection units, a sub-pixel conv; the unit pairing is our reading.",
    "sparse_coding": "Iterative back-projection on by default (20 iterations, as the authors' code); "
    "it widens the receptive field by 5 LR cells per iteration (×2 and above).",
    "unet": "ResNet18-UNet from segmentation-models-pytorch re-used for SR: not a published SR "
    "configuration.",
}


def default_scale(name: str) -> int:
    for s in (4, 2, 3, 8):
        try:
            get_entry(name).builder(scale=s, in_channels=1, **get_entry(name).tiny)
            return s
        except (ValueError, TypeError):
            continue
    return 4


def flops_per_pixel(model: torch.nn.Module, size: int = 32) -> float | None:
    """FLOPs per HR output pixel for a ``size``×``size`` LR input (meta tensors when possible)."""
    x = torch.zeros(1, model.in_channels, size, size)
    for device in ("meta", "cpu"):
        try:
            m = model.to(device)
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                y = m(x.to(device))
            return counter.get_total_flops() / (y.shape[-1] * y.shape[-2])
        except Exception:  # some ops have no meta kernel: retry on CPU
            continue
    return None


def fmt_params(n: int) -> str:
    return f"{n / 1e6:.3f} M" if n >= 1e6 else f"{n / 1e3:.1f} K" if n >= 1e3 else str(n)


def fmt_flops(f: float | None) -> str:
    if f is None:
        return "n/a"
    return f"{f / 1e9:.2f} G" if f >= 1e9 else f"{f / 1e6:.2f} M" if f >= 1e6 else f"{f / 1e3:.1f} K"


def row(name: str) -> list[str]:
    entry = get_entry(name)
    s = default_scale(name)
    model = sciSR.create_model(name, scale=s, in_channels=1, pretrained=False)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    scales = "any" if not model.scales else "/".join(f"×{v}" for v in model.scales)
    rf_val = model.spec.receptive_field
    rf = "unbounded" if rf_val is None else str(rf_val)
    flops = flops_per_pixel(model)
    return [
        f"`{name}`",
        entry.paper or model.paper or "—",
        f"{fmt_params(params)} (×{s})",
        PUBLISHED.get(name, "—"),
        fmt_flops(flops),
        rf,
        scales,
        model.upsampling,
        "yes" if model.equivariant else "no",
    ]


HEADER = ["name", "paper", "params (1-ch, default config)", "params published (paper config)",
          "FLOPs / output px", "receptive field (LR px)", "scales", "upsampling", "equivariant"]


def table(names: list[str]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for n in names:
        try:
            cells = row(n)
        except Exception as err:  # one broken model must not hide the others
            cells = [f"`{n}`", f"error: {type(err).__name__}: {err}"] + ["—"] * (len(HEADER) - 2)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        print(lines[-1], flush=True)
    notes = [f"- `{n}`: {NOTES[n]}" for n in names if n in NOTES]
    if notes:
        lines += ["", "## Configuration notes", "", *notes]
    return "\n".join(lines)


PREAMBLE = """# Model zoo

Generated by `python benchmarks/model_table.py` (do not edit by hand). Default configurations,
one input/output channel, ×4 (or the nearest supported scale, shown in brackets). FLOPs are counted
by `torch.utils.flop_counter.FlopCounterMode` on a 32×32 LR input (convolutions and matrix
products, 2 FLOPs per multiply-add; interpolation and activations are not counted) and divided
by the number of HR output pixels. The receptive field is the LR halo a tile needs
(`model.spec.receptive_field`, DESIGN §5); "unbounded" models are tiled with blending.
Published counts are the papers' own configurations (Y = luminance, one channel); the docstrings
and `tests/models/test_zoo_params.py` say how each is reproduced, and the configuration notes below
say where a default rests on our reading rather than on the paper or its official code.
Pre-upsampling models (SRCNN, VDSR, DRCN, DRRN, CMSC, U-Net, sparse coding) interpolate with torch
bicubic by default; `upsampler="matlab"` gives MATLAB `imresize` bicubic (`sciSR.resize`), the
input the original published weights expect.

"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--out", default=str(ROOT / "docs" / "models.md"))
    ap.add_argument("names", nargs="*", help="models to include (default: all registered)")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    names = args.names or sciSR.list_models()
    text = table(names)
    if not args.no_write:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(PREAMBLE + text + "\n", encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
