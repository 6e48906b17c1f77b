"""Checkpoint import: every supported layout reproduces its source implementation's forward pass.

References are the peer packages installed as test-only dependencies (torchsr, super-image,
spandrel), built with random weights in small configurations and saved to disk in the layout users
hold. BasicSR is not installed: its EDSR/RCAN/RRDBNet files are made by renaming peer weights to
BasicSR's key names (same computation; the RRDBNet renaming is checked by spandrel loading it).
"""

from __future__ import annotations

import json
import pickle
import re

import pytest
import torch
from torch import nn

import sciSR
from sciSR.models.checkpoints import (
    DIV2K_RGB_MEAN,
    adapt_input_channels,
    convert_checkpoint,
    known_formats,
)
from sciSR.models.weights_io import save_weights

TOL = 1e-4  # relative to the reference output's range


def save(tmp_path, name: str, sd: dict, nest: str | None = None) -> str:
    path = tmp_path / name
    torch.save({nest: sd} if nest else sd, path)
    return str(path)


def rel_diff(model: nn.Module, ref: nn.Module, x: torch.Tensor) -> float:
    """max |sciSR − reference| / range(reference), asserting the reference output is not degenerate."""
    with torch.no_grad():
        want = ref(x.clone())
        got = model(x.clone())
    assert got.shape == want.shape
    span = float(want.max() - want.min())
    assert span > 1e-3, "reference output is flat: the comparison would prove nothing"
    return float((got - want).abs().max()) / span


def rand_input(h: int = 6, w: int = 8) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1))


def rename_keys(sd: dict, rules: list[tuple[str, str]]) -> dict:
    out = {}
    for k, v in sd.items():
        if k.startswith(("sub_mean.", "add_mean.")):
            continue
        for pat, repl in rules:
            if re.fullmatch(pat, k):
                out[re.sub(pat, repl, k)] = v
                break
        else:
            raise AssertionError(f"test mapping misses {k}")
    return out


# --------------------------------------------------------------------------------------- EDSR / RCAN
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_official_edsr_layout_matches_torchsr(tmp_path, scale: int) -> None:
    from torchsr.models.edsr import EDSR

    torch.manual_seed(scale)
    ref = EDSR(n_resblocks=2, n_feats=8, scale=scale, res_scale=1.0).eval()
    model = sciSR.load_checkpoint(save(tmp_path, "edsr.pt", ref.state_dict()))
    assert model.checkpoint_format == "edsr-official"
    assert (model.scale, model.in_channels, model.config["n_resblocks"], model.config["n_feats"]) == (
        scale,
        3,
        2,
        8,
    )
    assert model.value_range == 255.0
    assert torch.allclose(model.input_mean.flatten(), torch.tensor(DIV2K_RGB_MEAN))
    assert rel_diff(model, ref, rand_input()) < TOL


def test_official_edsr_full_width_uses_res_scale_01(tmp_path) -> None:
    from torchsr.models.edsr import EDSR

    torch.manual_seed(0)
    ref = EDSR(n_resblocks=1, n_feats=256, scale=2, res_scale=0.1).eval()
    model = sciSR.load_checkpoint(save(tmp_path, "edsr.pt", ref.state_dict()))
    assert model.config["res_scale"] == 0.1
    assert rel_diff(model, ref, rand_input(4, 5)) < TOL


@pytest.mark.parametrize("scale", [2, 3, 8])
def test_official_rcan_layout_matches_torchsr(tmp_path, scale: int) -> None:
    from torchsr.models.rcan import RCAN

    torch.manual_seed(scale)
    ref = RCAN(n_resgroups=2, n_resblocks=2, n_feats=16, reduction=4, scale=scale).eval()
    model = sciSR.load_checkpoint(save(tmp_path, "rcan.pt", ref.state_dict()))
    assert model.checkpoint_format == "rcan-official"
    assert model.config["reduction"] == 4 and model.config["n_resgroups"] == 2
    assert rel_diff(model, ref, rand_input()) < TOL


def test_official_rcan_layout_matches_spandrel(tmp_path) -> None:
    from spandrel.architectures.RCAN import RCAN

    torch.manual_seed(0)
    ref = RCAN(scale=4, n_resgroups=2, n_resblocks=3, n_feats=16, reduction=8).eval()
    model = sciSR.load_checkpoint(save(tmp_path, "rcan.pth", ref.state_dict()))
    assert model.config["n_resblocks"] == 3
    assert rel_diff(model, ref, rand_input()) < TOL


BASICSR_EDSR = [
    (r"head\.0\.(\w+)", r"conv_first.\1"),
    (r"body\.(\d+)\.body\.0\.(\w+)", r"body.\1.conv1.\2"),
    (r"body\.(\d+)\.body\.2\.(\w+)", r"body.\1.conv2.\2"),
    (r"body\.2\.(\w+)", r"conv_after_body.\1"),
    (r"tail\.0\.(\d+)\.(\w+)", r"upsample.\1.\2"),
    (r"tail\.1\.(\w+)", r"conv_last.\1"),
]
BASICSR_RCAN = [
    (r"head\.0\.(\w+)", r"conv_first.\1"),
    (r"body\.(\d)\.body\.(\d)\.body\.([02])\.(\w+)", r"body.\1.residual_group.\2.rcab.\3.\4"),
    (
        r"body\.(\d)\.body\.(\d)\.body\.3\.conv_du\.0\.(\w+)",
        r"body.\1.residual_group.\2.rcab.3.attention.1.\3",
    ),
    (
        r"body\.(\d)\.body\.(\d)\.body\.3\.conv_du\.2\.(\w+)",
        r"body.\1.residual_group.\2.rcab.3.attention.3.\3",
    ),
    (r"body\.(\d)\.body\.2\.(\w+)", r"body.\1.conv.\2"),
    (r"body\.2\.(\w+)", r"conv_after_body.\1"),
    (r"tail\.0\.(\d+)\.(\w+)", r"upsample.\1.\2"),
    (r"tail\.1\.(\w+)", r"conv_last.\1"),
]


@pytest.mark.parametrize("nest", ["params_ema", "params"])
def test_basicsr_edsr_and_rcan(tmp_path, nest: str) -> None:
    """BasicSR EDSR/RCAN compute exactly the official forward ((x-mean)·255 ... /255+mean)."""
    from torchsr.models.edsr import EDSR
    from torchsr.models.rcan import RCAN

    torch.manual_seed(0)
    ref = EDSR(n_resblocks=2, n_feats=8, scale=3, res_scale=1.0).eval()
    path = save(tmp_path, "edsr.pth", rename_keys(ref.state_dict(), BASICSR_EDSR), nest)
    model = sciSR.load_checkpoint(path)
    assert model.checkpoint_format == "basicsr-edsr"
    assert rel_diff(model, ref, rand_input()) < TOL

    ref = RCAN(n_resgroups=2, n_resblocks=2, n_feats=16, reduction=4, scale=4).eval()
    path = save(tmp_path, "rcan.pth", rename_keys(ref.state_dict(), BASICSR_RCAN), nest)
    model = sciSR.load_checkpoint(path)
    assert model.checkpoint_format == "basicsr-rcan"
    assert rel_diff(model, ref, rand_input()) < TOL


def test_comparison_is_sensitive_to_the_input_convention(tmp_path) -> None:
    from torchsr.models.edsr import EDSR

    torch.manual_seed(0)
    ref = EDSR(n_resblocks=2, n_feats=8, scale=2, res_scale=1.0).eval()
    path = save(tmp_path, "edsr.pt", ref.state_dict())
    assert rel_diff(sciSR.load_checkpoint(path, mean=(0.5, 0.5, 0.5)), ref, rand_input()) > 100 * TOL
    assert rel_diff(sciSR.load_checkpoint(path, value_range=1.0), ref, rand_input()) > 100 * TOL


# --------------------------------------------------------------------------------------- MDSR
class OfficialMDSR(nn.Module):
    """EDSR-PyTorch ``src/model/mdsr.py`` assembled from torchsr's copy of its ``common`` blocks."""

    def __init__(self, n_resblocks: int, n_feats: int, scales: tuple[int, ...]) -> None:
        from torchsr.models.edsr import MeanShift, ResBlock, Upsampler, default_conv

        super().__init__()
        act = nn.ReLU(True)
        self.sub_mean = MeanShift(255)
        self.head = nn.Sequential(default_conv(3, n_feats, 3))
        self.pre_process = nn.ModuleList(
            nn.Sequential(
                ResBlock(default_conv, n_feats, 5, act=act), ResBlock(default_conv, n_feats, 5, act=act)
            )
            for _ in scales
        )
        self.body = nn.Sequential(
            *[ResBlock(default_conv, n_feats, 3, act=act) for _ in range(n_resblocks)],
            default_conv(n_feats, n_feats, 3),
        )
        self.upsample = nn.ModuleList(Upsampler(default_conv, s, n_feats, act=False) for s in scales)
        self.tail = nn.Sequential(default_conv(n_feats, 3, 3))
        self.add_mean = MeanShift(255, sign=1)
        self.scale_idx = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # official code takes 0..255; torchsr-style wrapper
        x = self.head(self.sub_mean(255 * x))
        x = self.pre_process[self.scale_idx](x)
        x = x + self.body(x)
        return self.add_mean(self.tail(self.upsample[self.scale_idx](x))) / 255


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_official_mdsr_multi_scale(tmp_path, scale: int) -> None:
    torch.manual_seed(0)
    ref = OfficialMDSR(2, 8, (2, 3, 4)).eval()
    ref.scale_idx = (2, 3, 4).index(scale)
    path = save(tmp_path, "MDSR.pt", ref.state_dict())
    model = sciSR.load_checkpoint(path, scale=scale)
    assert model.checkpoint_format == "mdsr-official" and model.scale == scale
    assert rel_diff(model, ref, rand_input()) < TOL


@pytest.mark.parametrize("scale", [4])
def test_super_image_mdsr(tmp_path, scale: int) -> None:
    from super_image import MdsrConfig, MdsrModel

    torch.manual_seed(scale)
    ref = MdsrModel(MdsrConfig(scale=scale)).eval()  # fixed 32 blocks × 64 features
    model = sciSR.load_checkpoint(save(tmp_path, "pytorch_model.pt", ref.state_dict()))
    assert model.checkpoint_format == "super-image-mdsr" and model.scale == scale
    assert model.input_mean is None and model.value_range == 1.0
    assert rel_diff(model, ref, rand_input(4, 5)) < TOL


def test_super_image_edsr_with_config(tmp_path) -> None:
    from super_image import EdsrConfig, EdsrModel

    torch.manual_seed(0)
    ref = EdsrModel(EdsrConfig(scale=3, n_resblocks=2, n_feats=16, res_scale=0.1)).eval()
    ref.save_pretrained(tmp_path / "edsr")
    model = sciSR.load_checkpoint(tmp_path / "edsr" / "pytorch_model_3x.pt")
    assert model.checkpoint_format == "super-image-edsr"
    assert model.config["res_scale"] == 0.1 and model.input_mean is None
    assert rel_diff(model, ref, rand_input()) < TOL
    # without its config.json the keys alone look official; the format can be forced
    path = save(tmp_path, "edsr.pt", ref.state_dict())
    forced = sciSR.load_checkpoint(path, arch="super-image-edsr", res_scale=0.1)
    assert rel_diff(forced, ref, rand_input()) < TOL


# --------------------------------------------------------------------------------------- CARN / VDSR
@pytest.mark.parametrize(("mobile", "scale"), [(False, 2), (False, 4), (True, 3)])
def test_torchsr_carn(tmp_path, mobile: bool, scale: int) -> None:
    from torchsr.models.carn import CARN, CARNM

    torch.manual_seed(scale)
    ref = (CARNM if mobile else CARN)(scale).eval()
    path = save(tmp_path, "carn.pth", ref.state_dict())
    model = sciSR.load_checkpoint(path, scale=scale)
    assert model.registry_name == ("carn_m" if mobile else "carn")
    assert model.config["multi_scale"] and model.config["mobile"] == mobile
    assert model.value_range == 1.0 and model.input_mean is not None
    assert rel_diff(model, ref, rand_input()) < TOL
    with pytest.raises(ValueError, match="multi-scale CARN checkpoint"):
        sciSR.load_checkpoint(path)


def test_super_image_carn(tmp_path) -> None:
    from super_image import CarnConfig, CarnModel

    torch.manual_seed(0)
    ref = CarnModel(CarnConfig(scale=3)).eval()
    ref.save_pretrained(tmp_path / "carn")
    model = sciSR.load_checkpoint(tmp_path / "carn" / "pytorch_model_3x.pt", scale=3)
    assert rel_diff(model, ref, rand_input()) < TOL


def test_torchsr_vdsr(tmp_path) -> None:
    from torchsr.models.vdsr import VDSR

    torch.manual_seed(0)
    ref = VDSR(n_resblocks=5, n_feats=8, scale=3, pretrained=False).eval()
    path = save(tmp_path, "vdsr.pt", ref.state_dict())
    model = sciSR.load_checkpoint(path, scale=3)
    assert (model.config["depth"], model.config["n_feats"]) == (5, 8)
    assert rel_diff(model, ref, rand_input()) < TOL
    with pytest.raises(ValueError, match="pass scale="):
        sciSR.load_checkpoint(path)


# --------------------------------------------------------------------------------------- ESRGAN
def old_to_new(sd: dict, n_blocks: int, names: str = "basicsr") -> dict:
    """Old ESRGAN layout → BasicSR (``names='basicsr'``) or ESRGAN ``RRDB_trunk`` naming."""
    trunk, rdb, body, up, hr = (
        ("body", "rdb", "conv_body", "conv_up", "conv_hr")
        if names == "basicsr"
        else ("RRDB_trunk", "RDB", "trunk_conv", "upconv", "HRconv")
    )
    idx = sorted({int(k.split(".")[1]) for k in sd if re.fullmatch(r"model\.\d+\.\w+", k)})[1:]
    rules = [
        (r"model\.0\.(\w+)", r"conv_first.\1"),
        (r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(\w+)", rf"{trunk}.\1.{rdb}\2.conv\3.\4"),
        (rf"model\.1\.sub\.{n_blocks}\.(\w+)", rf"{body}.\1"),
        *[(rf"model\.{i}\.(\w+)", rf"{up}{j}.\1") for j, i in enumerate(idx[:-2], 1)],
        (rf"model\.{idx[-2]}\.(\w+)", rf"{hr}.\1"),
        (rf"model\.{idx[-1]}\.(\w+)", r"conv_last.\1"),
    ]
    return rename_keys(sd, rules)


@pytest.mark.parametrize("scale", [4, 8])
def test_esrgan_old_and_new_layouts(tmp_path, scale: int) -> None:
    from spandrel.architectures.ESRGAN import ESRGAN, ESRGANArch

    torch.manual_seed(scale)
    ref = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=2, scale=scale).eval()  # old layout (model.N)
    old = ref.state_dict()
    x = rand_input(5, 6)
    for name, sd, nest in [
        ("old", old, None),
        ("basicsr", old_to_new(old, 2), "params_ema"),
        ("trunk", old_to_new(old, 2, "esrgan"), None),
    ]:
        if name != "old":  # the test's renaming is right: spandrel reads it back to the same network
            assert rel_diff(ESRGANArch().load(sd).model.eval(), ref, x) == 0
        model = sciSR.load_checkpoint(save(tmp_path, f"{name}.pth", sd, nest))
        assert model.checkpoint_format == ("esrgan-old" if name == "old" else "rrdbnet")
        assert (model.scale, model.config["n_blocks"], model.config["gc"]) == (scale, 2, 32)
        assert rel_diff(model, ref, x) < TOL, name


def test_real_esrgan_x2_unshuffle(tmp_path) -> None:
    from spandrel.architectures.ESRGAN import ESRGAN, ESRGANArch

    torch.manual_seed(0)
    ref = ESRGAN(in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2).eval()
    sd = old_to_new(ref.state_dict(), 1)
    desc = ESRGANArch().load(sd)
    assert desc.scale == 2
    model = sciSR.load_checkpoint(save(tmp_path, "RealESRGAN_x2plus.pth", sd, "params_ema"))
    assert model.scale == 2 and model.in_channels == 3
    assert rel_diff(model, desc.model.eval(), rand_input(6, 8)) < TOL


# --------------------------------------------------------------------------------------- MSRResNet
def msrresnet_reference(sd: dict, scale: int) -> nn.Module:
    """BasicSR ``MSRResNet`` forward written from its documented structure with plain torch ops
    (BasicSR is not installed and spandrel has no MSRResNet): ``lrelu(conv_first)`` → B × (conv1 →
    ReLU → conv2, + identity) → pixel-shuffle stages with LeakyReLU(0.1) → ``conv_hr`` → LeakyReLU →
    ``conv_last``, plus the bilinear (``align_corners=False``) upsampled input."""
    import torch.nn.functional as F

    w = {k: v.clone() for k, v in sd.items()}
    n_blocks = len({k.split(".")[1] for k in w if k.startswith("body.")})

    def conv(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.conv2d(x, w[f"{name}.weight"], w[f"{name}.bias"], padding=1)

    class Ref(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = F.leaky_relu(conv(x, "conv_first"), 0.1)
            for i in range(n_blocks):
                h = h + conv(torch.relu(conv(h, f"body.{i}.conv1")), f"body.{i}.conv2")
            for i, r in enumerate([2, 2] if scale == 4 else [scale], start=1):
                h = F.leaky_relu(F.pixel_shuffle(conv(h, f"upconv{i}"), r), 0.1)
            h = conv(F.leaky_relu(conv(h, "conv_hr"), 0.1), "conv_last")
            return h + F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)

    return Ref().eval()


def basicsr_msrresnet_sd(
    scale: int, n_feats: int = 8, n_blocks: int = 3, c_in: int = 3, c_out: int = 3
) -> dict:
    """Random weights under BasicSR's MSRResNet key names and shapes (std large enough to matter)."""
    g = torch.Generator().manual_seed(scale)

    def conv(o: int, i: int) -> dict:
        return {
            "weight": torch.randn(o, i, 3, 3, generator=g) / (3 * i**0.5),
            "bias": 0.1 * torch.randn(o, generator=g),
        }

    parts = {"conv_first": conv(n_feats, c_in)}
    for b in range(n_blocks):
        parts[f"body.{b}.conv1"] = conv(n_feats, n_feats)
        parts[f"body.{b}.conv2"] = conv(n_feats, n_feats)
    for i, r in enumerate([2, 2] if scale == 4 else [scale], start=1):
        parts[f"upconv{i}"] = conv(n_feats * r * r, n_feats)
    parts["conv_hr"] = conv(n_feats, n_feats)
    parts["conv_last"] = conv(c_out, n_feats)
    return {f"{m}.{p}": t for m, d in parts.items() for p, t in d.items()}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("nest", ["params", "params_ema"])
def test_basicsr_msrresnet(tmp_path, scale: int, nest: str) -> None:
    sd = basicsr_msrresnet_sd(scale)
    ref = msrresnet_reference(sd, scale)
    model = sciSR.load_checkpoint(save(tmp_path, "MSRResNet.pth", sd, nest))
    assert model.checkpoint_format == "basicsr-msrresnet" and model.registry_name == "msrresnet"
    assert (model.scale, model.in_channels, model.out_channels) == (scale, 3, 3)
    assert model.config == {"n_feats": 8, "n_blocks": 3}
    assert model.input_mean is None and model.value_range == 1.0
    x = rand_input()
    assert rel_diff(model, ref, x) < TOL
    # the conv path matters: the comparison is not carried by the bilinear skip alone
    with torch.no_grad():
        base = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        want = ref(x)
    assert float((want - base).abs().max()) > 0.05 * float(want.max() - want.min())
    # the create_model(pretrained=PATH) route and sciSR's own layout load the file too
    again = sciSR.create_model(
        "msrresnet",
        scale=scale,
        in_channels=3,
        n_feats=8,
        n_blocks=3,
        pretrained=save(tmp_path, "plain.pth", sd),
    )
    assert rel_diff(again, ref, x) < TOL


def test_basicsr_msrresnet_gray_and_wrong_stages(tmp_path) -> None:
    sd = basicsr_msrresnet_sd(2, c_in=1, c_out=1)
    model = sciSR.load_checkpoint(save(tmp_path, "gray.pth", sd, "params_ema"))
    assert (model.in_channels, model.out_channels) == (1, 1)
    assert rel_diff(model, msrresnet_reference(sd, 2), rand_input()[:, :1]) < TOL
    sd["upconv1.weight"] = torch.zeros(8 * 16, 8, 3, 3)  # a single ×4 stage: not a BasicSR variant
    sd["upconv1.bias"] = torch.zeros(8 * 16)
    with pytest.raises(ValueError, match=r"pixel-shuffle stages \[4\] is not a BasicSR variant"):
        sciSR.load_checkpoint(save(tmp_path, "x4one.pth", sd))


# --------------------------------------------------------------------------------------- create_model route
def test_create_model_pretrained_converts_foreign_layouts(tmp_path) -> None:
    from torchsr.models.edsr import EDSR

    torch.manual_seed(0)
    ref = EDSR(n_resblocks=2, n_feats=8, scale=2, res_scale=1.0).eval()
    path = save(tmp_path, "edsr.pt", ref.state_dict())
    model = sciSR.create_model(
        "edsr_baseline", scale=2, in_channels=3, n_resblocks=2, n_feats=8, pretrained=path
    )
    assert model.checkpoint_format == "edsr-official" and model.value_range == 255.0
    assert rel_diff(model, ref, rand_input()) < TOL
    with pytest.raises(ValueError, match=r"n_resblocks=2, n_feats=8, .* does not fit edsr "):
        sciSR.create_model("edsr", scale=2, in_channels=3, n_resblocks=3, n_feats=8, pretrained=path)
    with pytest.raises(ValueError, match="×2 'edsr-official' checkpoint; the model is ×4"):
        sciSR.create_model("edsr", scale=4, in_channels=3, n_resblocks=2, n_feats=8, pretrained=path)
    with pytest.raises(ValueError, match=r"channel mismatch: edsr.pt has 3→3 channels, the model 1→1"):
        sciSR.create_model("edsr", scale=2, in_channels=1, n_resblocks=2, n_feats=8, pretrained=path)


def test_scisr_native_file_roundtrip(tmp_path) -> None:
    torch.manual_seed(0)
    model = sciSR.create_model(
        "rcan", scale=2, in_channels=2, n_resgroups=1, n_resblocks=1, n_feats=8, reduction=2, pretrained=False
    )
    path = save_weights(model, tmp_path / "rcan.safetensors")
    again = sciSR.load_checkpoint(path)
    assert again.checkpoint_format == "scisr" and again.in_channels == 2
    x = torch.rand(1, 2, 5, 6)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert torch.equal(
        sciSR.create_model(
            "rcan",
            scale=2,
            in_channels=2,
            n_resgroups=1,
            n_resblocks=1,
            n_feats=8,
            reduction=2,
            pretrained=path,
        )(x),
        again(x),
    )


# --------------------------------------------------------------------------------------- channel adaptation
def _edsr_rgb(tmp_path):
    from torchsr.models.edsr import EDSR

    torch.manual_seed(0)
    ref = EDSR(n_resblocks=2, n_feats=8, scale=2, res_scale=1.0).eval()
    return ref, save(tmp_path, "edsr.pt", ref.state_dict())


def test_adapt_first_conv_gray_equals_rgb_with_equal_channels(tmp_path) -> None:
    _, path = _edsr_rgb(tmp_path)
    rgb = sciSR.load_checkpoint(path, mean=None, value_range=1.0)
    gray = adapt_input_channels(sciSR.load_checkpoint(path, mean=None, value_range=1.0), 1)
    g = torch.rand(1, 1, 7, 9)
    with torch.no_grad():
        assert torch.allclose(gray.head(g), rgb.head(g.repeat(1, 3, 1, 1)), atol=1e-5)
        # whole net: every output equals the average of the RGB outputs
        assert torch.allclose(gray(g), rgb(g.repeat(1, 3, 1, 1)).mean(1, keepdim=True), atol=1e-5)
    assert gray.spec.in_channels == 1 and gray.spec.out_channels == 1


@pytest.mark.parametrize("n", [1, 5])
def test_adapt_with_mean_shift_is_exact_away_from_the_border(tmp_path, n: int) -> None:
    ref, path = _edsr_rgb(tmp_path)
    model = sciSR.load_checkpoint(path, in_channels=n)
    assert model.in_channels == n and model.out_channels == n
    assert torch.allclose(model.input_mean.flatten(), torch.full((n,), sum(DIV2K_RGB_MEAN) / 3))
    g = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        want = ref(g.repeat(1, 3, 1, 1)).mean(1, keepdim=True)
        got = model(g.repeat(1, n, 1, 1))
    assert got.shape == (1, n, 24, 24)
    # the receptive field of this tiny EDSR is 6 LR px (12 HR px): 12×12 LR leaves no interior,
    # so compare the first conv's response (exact away from its 1-px zero-padded border)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    x_rgb = (g.repeat(1, 3, 1, 1) - torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1)) * 255
    x_n = (g.repeat(1, n, 1, 1) - model.input_mean) * 255
    rgb_head = sciSR.load_checkpoint(path).head
    with torch.no_grad():
        assert torch.allclose(model.head(x_n)[inner], rgb_head(x_rgb)[inner], atol=1e-3)
    assert float((got - want).abs().mean()) < 0.05 * float(want.max() - want.min())


def test_adapt_n_channels_properties(tmp_path) -> None:
    _, path = _edsr_rgb(tmp_path)
    rgb = sciSR.load_checkpoint(path, mean=None, value_range=1.0)
    four = adapt_input_channels(sciSR.load_checkpoint(path, mean=None, value_range=1.0), 4)
    w3, w4 = rgb.head[0].weight, four.head[0].weight
    assert torch.allclose(w4.sum(1), w3.sum(1), atol=1e-6)  # average replicated × 3/4
    assert torch.allclose(w4[:, 0], w4[:, 3])
    g = torch.rand(1, 1, 6, 6)
    with torch.no_grad():
        out4 = four(g.repeat(1, 4, 1, 1))
        want = rgb(g.repeat(1, 3, 1, 1)).mean(1, keepdim=True)
    assert torch.allclose(out4, want.expand_as(out4), atol=1e-5)


def test_adapt_state_dict_matches_model_adaptation(tmp_path) -> None:
    ref, path = _edsr_rgb(tmp_path)
    sd1 = adapt_input_channels(ref.state_dict(), 1)
    assert sd1["head.0.weight"].shape[1] == 1 and sd1["tail.1.weight"].shape[0] == 1
    assert sd1["sub_mean.weight"].shape == (1, 1, 1, 1)
    from_sd = sciSR.load_checkpoint(save(tmp_path, "gray.pt", sd1))
    from_model = sciSR.load_checkpoint(path, in_channels=1)
    g = torch.rand(1, 1, 6, 7)
    with torch.no_grad():
        assert torch.allclose(from_sd(g), from_model(g), atol=1e-5)


# --------------------------------------------------------------------------------------- bad input
def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_unknown_layout_lists_keys_and_formats(tmp_path) -> None:
    # a BasicSR-like net with an unknown trunk (no body.N.conv1, rdb or residual_group keys)
    sd = {
        "conv_first.weight": torch.zeros(8, 3, 3, 3),
        "trunk.0.dw.weight": torch.zeros(8, 1, 3, 3),
        "upconv1.weight": torch.zeros(32, 8, 3, 3),
        "conv_hr.weight": torch.zeros(8, 8, 3, 3),
        "conv_last.weight": torch.zeros(3, 8, 3, 3),
    }
    with pytest.raises(ValueError) as err:
        sciSR.load_checkpoint(save(tmp_path, "mystery.pth", sd, "params"))
    msg = one_line(err)
    assert "unknown checkpoint layout in mystery.pth" in msg and "conv_first.weight" in msg
    assert all(name in msg for name in known_formats())


def test_scale_errors(tmp_path) -> None:
    from torchsr.models.edsr import EDSR

    path = save(tmp_path, "x8.pt", EDSR(n_resblocks=1, n_feats=4, scale=8, res_scale=1.0).state_dict())
    with pytest.raises(ValueError) as err:
        sciSR.load_checkpoint(path)
    assert "supports scales [2, 3, 4], not 8" in one_line(err)
    path = save(tmp_path, "x4.pt", EDSR(n_resblocks=1, n_feats=4, scale=4, res_scale=1.0).state_dict())
    with pytest.raises(ValueError) as err:
        sciSR.load_checkpoint(path, scale=2)
    assert "is a ×4 'edsr-official' checkpoint" in one_line(err)
    _, conv = convert_checkpoint(path)
    assert conv.scale == 4


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickle_with_code_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"w": torch.zeros(1)}, "payload": Evil()}, f, protocol=2)
    with pytest.raises(ValueError) as err:
        sciSR.load_checkpoint(path)
    assert "refusing to load evil.pth" in one_line(err)
    with pytest.raises(ValueError, match="refusing to load"):
        sciSR.create_model("edsr", scale=2, pretrained=path)


def test_refusal_names_the_blocked_global_and_never_suggests_unsafe_loading(tmp_path) -> None:
    path = tmp_path / "module.pth"
    torch.save(sciSR.create_model("espcn", scale=2, pretrained=False), path)  # a whole pickled module
    with pytest.raises(ValueError) as err:
        sciSR.load_checkpoint(path)
    msg = one_line(err)
    assert "refusing to load module.pth" in msg and "ESPCN" in msg and "weights_only" not in msg


def test_corrupt_safetensors_is_explained(tmp_path) -> None:
    good = tmp_path / "good.safetensors"
    save_weights(sciSR.create_model("espcn", scale=2, pretrained=False), good)
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError) as err:
        sciSR.load_checkpoint(bad)
    assert "cannot read cut.safetensors as safetensors" in one_line(err)


def test_variant_keys_are_reported(tmp_path) -> None:
    from torchsr.models.edsr import EDSR

    sd = EDSR(n_resblocks=1, n_feats=4, scale=2, res_scale=1.0).state_dict()
    sd["body.0.attention.weight"] = torch.zeros(4, 4, 1, 1)
    with pytest.raises(ValueError) as err:
        sciSR.load_checkpoint(save(tmp_path, "odd.pt", sd))
    msg = one_line(err)
    assert "unexpected key" in msg and "'body.0.attention.weight'" in msg


def test_super_image_config_is_read(tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "EDSR", "res_scale": 0.5}))
    from torchsr.models.edsr import EDSR

    sd = EDSR(n_resblocks=1, n_feats=4, scale=2, res_scale=1.0).state_dict()
    fmt, conv = convert_checkpoint(save(tmp_path, "pytorch_model_2x.pt", sd))
    assert fmt.name == "super-image-edsr" and conv.kwargs["res_scale"] == 0.5 and conv.mean is None
