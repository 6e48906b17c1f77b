"""Image adapter (Pillow): PNG/JPEG/BMP/WebP (and photo-like TIFFs), the classic YCbCr SR protocol.

Dataset layout returned by :meth:`ImageAdapter.open`:

- one variable ``image``: dims ``(y, x)`` for grey images, ``(channel, y, x)`` otherwise, with
  coordinate ``channel`` (``R G B``, ``R G B A``, ``L A``); float32 values in the file's units
  (0–255 for 8-bit, 0–65535 for 16-bit);
- ``ds.attrs``: ``bit_depth`` (8 or 16; absent for float images), ``mode`` (Pillow mode of the
  source), ``dpi`` when the file has one; ``ds.encoding``: ``icc_profile`` when present.

Downscaling divides by the full-scale value (255/65535) so the model sees ``[0, 1]``. Colour
images follow the classic SR evaluation protocol by default: RGB → YCbCr (BT.601, ``Y`` in
``[16, 235]/255``), the model on ``Y`` (1-channel model), ``Cb``/``Cr`` bicubic, back to RGB; a
3-channel model gets R, G, B directly. Alpha is upsampled bicubic. Results are float32 in file
units (``dtype="source"`` rounds and clips to 8/16 bit); :meth:`ImageAdapter.write` always
stores the bit depth of ``attrs["bit_depth"]`` (rounded and clipped), so 8/16-bit inputs give
8/16-bit outputs. 16-bit colour PNGs, which Pillow cannot hold, are read and written with GDAL's
PNG driver (rasterio).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ._stack import dataset_attrs, run_block, sr_attrs
from .base import Adapter, register_adapter
from .xarray_core import output_dtype

if TYPE_CHECKING:
    from ..pipeline import Pipeline

VAR = "image"
#: BT.601 "studio swing" RGB → YCbCr on [0, 1] data (MATLAB ``rgb2ycbcr`` divided by 255).
YCBCR_MATRIX = (
    np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
)
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
_CONVERT = {
    "1": "L",
    "P": "RGB",
    "PA": "RGBA",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "RGBX": "RGB",
    "RGBa": "RGBA",
    "La": "LA",
    "I;16B": "I;16",
    "I;16L": "I;16",
    "I;16N": "I;16",
}


def _extensions() -> tuple[str, ...]:
    ext = (".png", ".jpg", ".jpeg", ".bmp")
    try:
        from PIL import features

        if features.check("webp"):
            ext += (".webp",)
    except Exception:  # pragma: no cover - Pillow without the features module
        pass
    return ext


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-swing YCbCr of RGB in ``[0, 1]`` (``Y ∈ [16, 235]/255``).

    Shape:
        ``(3, H, W) -> (3, H, W)``.
    """
    return np.einsum("ij,j...->i...", YCBCR_MATRIX, rgb) + YCBCR_OFFSET.reshape(3, *([1] * (rgb.ndim - 1)))


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` (no clipping).

    Shape:
        ``(3, H, W) -> (3, H, W)``.
    """
    inv = np.linalg.inv(YCBCR_MATRIX)
    return np.einsum("ij,j...->i...", inv, ycc - YCBCR_OFFSET.reshape(3, *([1] * (ycc.ndim - 1))))


def bicubic(x: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upsampling on the cell-centred grid (``align_corners=False``), unclamped.

    Shape:
        ``(C, H, W) -> (C, s·H, s·W)``.
    """
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    return F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)[0].numpy()


@register_adapter
class ImageAdapter(Adapter):
    """Photos and other 8/16-bit images."""

    name = "image"
    extensions = _extensions()
    default_norm = "none"  # pixel values are scaled to [0, 1] by their bit depth instead

    def open(self, path: Path, **kw: Any) -> xr.Dataset:
        """Decode the (first frame of the) image.

        Raises:
            ValueError: Not a decodable image (truncated, unknown format).
        """
        from PIL import Image

        if _is_png16_colour(path):
            arr, mode, info = _read_gdal(path)
        else:
            with Image.open(path) as im:
                _check_decode(path, im)
                im.load()
                info = dict(im.info)
                mode = im.mode
                conv = _CONVERT.get(mode)
                if mode == "P" and "transparency" in im.info:
                    conv = "RGBA"
                img = im.convert(conv) if conv and conv != mode and conv != "I;16" else im
                arr = np.asarray(img)
                if mode.startswith("I;16"):
                    arr = arr.astype(np.uint16)
        return _build_dataset(arr, mode, info, path, self.name)

    def spatial_dims(self, da: xr.DataArray, **kw: Any) -> tuple[str, str] | None:
        if "y" in da.dims and "x" in da.dims:
            return ("y", "x")
        return super().spatial_dims(da, **kw)

    def downscale(
        self,
        ds: xr.Dataset,
        pipe: Pipeline,
        scale: int,
        *,
        variables: str | list[str] | None = None,
        dtype: Any = None,
        ycbcr: bool | None = None,
        **kw: Any,
    ) -> xr.Dataset:
        """Super-resolve an image (Y channel of YCbCr by default for colour with a 1-channel model).

        Args:
            ds: Dataset from :meth:`open`.
            pipe: Built pipeline.
            scale: Integer factor.
            variables: The image variable (default ``image``).
            dtype: ``None`` (float32 in file units), ``"source"`` (8/16 bit, rounded and clipped) or a dtype.
            ycbcr: Force the Y-channel protocol on (needs a 1-channel model) or off (then a
                1-channel model runs on each of R, G, B with shared statistics).
            **kw: Ignored generic options.

        Returns:
            Dataset with ``(s·H, s·W)`` pixels, same channels and attrs (``dpi`` × s).

        Raises:
            ValueError: Channel mismatch between image and model.
        """
        name = _select(ds, variables)
        da = ds[name]
        if "y" not in da.dims or "x" not in da.dims:
            return super().downscale(ds, pipe, scale, variables=variables, dtype=dtype, **kw)
        chans = [str(c) for c in da["channel"].values] if "channel" in da.dims else ["L"]
        arr = np.asarray(
            da.transpose(*(["channel"] if "channel" in da.dims else []), "y", "x").values, dtype=np.float32
        ).reshape(len(chans), da.sizes["y"], da.sizes["x"])
        full = _full_scale(ds, arr)
        _check_memory(
            arr, pipe, scale, output_dtype(np.dtype(da.encoding.get("scisr_source_dtype", da.dtype)), dtype)
        )
        hr, norms, how = super_resolve_image(arr / full, chans, pipe, ycbcr)
        hr = hr * np.float32(full)
        src = np.dtype(da.encoding.get("scisr_source_dtype", da.encoding.get("dtype", da.dtype)))
        target = output_dtype(src, dtype)
        if target.kind in "iu":
            from ..dtypes import cast_output

            hr = cast_output(hr, target, target)
        else:
            hr = hr.astype(target, copy=False)
        if "channel" not in da.dims:
            hr = hr[0]
        dims = [d for d in da.dims if d in ("channel", "y", "x")]
        order = (["channel"] if "channel" in da.dims else []) + ["y", "x"]
        coords = {"channel": da["channel"]} if "channel" in da.dims else {}
        out_da = xr.DataArray(
            hr,
            dims=order,
            coords=coords,
            attrs={**sr_attrs(da.attrs, pipe, scale, norms), "scisr_method": how},
        )
        out_da = out_da.transpose(*dims)
        out_da.encoding["dtype"] = target
        attrs = dataset_attrs(ds.attrs, pipe, scale, [name], self.name)
        if "dpi" in attrs:
            attrs["dpi"] = [float(v) * scale for v in np.ravel(attrs["dpi"])]
        out = xr.Dataset({name: out_da}, attrs=attrs)
        out.encoding.update({k: v for k, v in ds.encoding.items() if k in ("icc_profile",)})
        derived = ds.encoding.get("source") or ds.encoding.get("scisr_derived_from")
        if derived:
            out.encoding["scisr_derived_from"] = derived
        return out

    def check_writable(
        self, ds: xr.Dataset, variables: Any = None, dtype: Any = None, scale: int = 1
    ) -> None:
        """Refuse, before any computation, output an image file cannot hold: several variables,
        dims other than ``(y, x)``/``(channel, y, x)``, more than 4 channels, or an explicit dtype
        other than uint8/uint16 (images store 8/16-bit pixels).

        Raises:
            ValueError: One line naming the problem and the fix.
        """
        from .capability import single_output

        plans = single_output(
            ds, variables, dtype, "an image file holds one variable", "write NetCDF/Zarr/GeoTIFF"
        )
        for plan in plans:
            if set(plan.dims) not in ({"y", "x"}, {"channel", "y", "x"}):
                raise ValueError(
                    f"an image holds dims (y, x) or (channel, y, x) but '{plan.name}' has {plan.dims}; "
                    f"write NetCDF, Zarr or GeoTIFF"
                )
            if plan.sizes.get("channel", 1) > 4:
                raise ValueError(f"an image holds 1-4 channels, '{plan.name}' has {plan.sizes['channel']}")
            if dtype is not None and plan.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
                raise ValueError(
                    f"image files store 8/16-bit pixels, not {plan.dtype}; leave dtype unset (values are "
                    f"rounded to the image's bit depth) or write TIFF/NetCDF"
                )

    def write(self, ds: xr.Dataset, path: Path, *, quality: int = 95, **kw: Any) -> None:
        """Save as PNG/JPEG/BMP/WebP/TIFF (by extension) at the dataset's bit depth.

        Float data are rounded and clipped to ``attrs["bit_depth"]`` (8 or 16; without it 8 bit
        when the values fit 0–255, else 16 bit).

        Raises:
            ValueError: NaN pixels, alpha or 16 bit to JPEG, more than 4 channels.
        """
        from PIL import Image

        name = _select(ds, None)
        da = ds[name]
        chans = [str(c) for c in da["channel"].values] if "channel" in da.dims else None
        other = [d for d in da.dims if d not in ("channel", "y", "x")]
        if other or "y" not in da.dims or "x" not in da.dims:
            raise ValueError(f"an image needs dims (y, x) or (channel, y, x); '{name}' has {da.dims}")
        arr = np.asarray(da.transpose(*(["channel"] if chans else []), "y", "x").values)
        arr = arr.reshape(-1, *arr.shape[-2:])
        if arr.shape[0] > 4:
            raise ValueError(f"an image holds 1–4 channels, '{name}' has {arr.shape[0]}")
        mode = _mode_for(chans, arr.shape[0])
        data = _to_bit_depth(arr, ds.attrs.get("bit_depth"))
        suffix = Path(path).name.lower()
        if suffix.endswith((".jpg", ".jpeg")) and (data.dtype != np.uint8 or mode in ("RGBA", "LA")):
            raise ValueError(
                f"JPEG stores 8-bit L/RGB only; this image is {data.dtype} {mode}: write PNG or TIFF"
            )
        save_kw: dict[str, Any] = {}
        if "dpi" in ds.attrs:
            save_kw["dpi"] = tuple(float(v) for v in np.ravel(ds.attrs["dpi"]))[:2]
        if ds.encoding.get("icc_profile"):
            save_kw["icc_profile"] = ds.encoding["icc_profile"]
        if suffix.endswith((".jpg", ".jpeg", ".webp")):
            save_kw["quality"] = quality
        if data.dtype == np.uint16 and data.shape[0] > 1:
            from .write_errors import disk_full_as_oserror, quiet_libtiff

            with disk_full_as_oserror(path), quiet_libtiff():
                _write_gdal(data, path)
            return
        if suffix.endswith((".tif", ".tiff")):
            save_kw["compression"] = "tiff_deflate"
        hw = np.moveaxis(data, 0, -1)
        img = Image.fromarray(hw[..., 0] if hw.shape[-1] == 1 else hw)
        if img.mode != mode and not (mode == "L" and img.mode == "I;16"):
            img = img.convert(mode)
        img.save(path, **save_kw)


def super_resolve_image(
    x01: np.ndarray, chans: list[str], pipe: Pipeline, ycbcr: bool | None
) -> tuple[np.ndarray, list, str]:
    """SR of an image scaled to ``[0, 1]`` (alpha bicubic, colour by the YCbCr protocol or directly).

    Returns:
        ``(hr in [0, 1] units, normalizers, description)``.

    Shape:
        ``(C, H, W) -> (C, s·H, s·W)``.
    """
    s = pipe.scale
    c = pipe.in_channels
    alpha = [i for i, ch in enumerate(chans) if ch == "A"]
    colour = [chans.index(ch) for ch in ("R", "G", "B")] if {"R", "G", "B"} <= set(chans) else []
    body = colour or [i for i in range(len(chans)) if i not in alpha]
    out = np.empty((len(chans), x01.shape[1] * s, x01.shape[2] * s), dtype=np.float32)
    if alpha:
        out[alpha] = bicubic(x01[alpha], s)
    if colour and c == 1 and ycbcr is not False:
        ycc = rgb_to_ycbcr(x01[colour].astype(np.float64))
        y, norms = run_block(pipe, ycc[None, :1].astype(np.float32), desc="sciSR Y")
        cbcr = bicubic(ycc[1:], s)
        out[colour] = ycbcr_to_rgb(np.concatenate([y[0].astype(np.float64), cbcr])).astype(np.float32)
        return out, norms, "Y of BT.601 YCbCr by the model, CbCr bicubic"
    if ycbcr:
        raise ValueError(
            f"ycbcr=True needs an RGB image and a 1-channel model (model takes {c}, image has {chans})"
        )
    if c == len(body):
        y, norms = run_block(pipe, x01[body][None], desc="sciSR image")
        out[body] = y[0]
        return out, norms, f"{len(body)} channel(s) by the model"
    if c == 1:
        y, norms = run_block(pipe, x01[body][:, None], desc="sciSR image")
        out[body] = y[:, 0]
        return out, norms, "each channel by the model"
    raise ValueError(
        f"the model takes {c} channels but the image has {len(body)} ({''.join(chans)}); "
        f"use a 1-channel model (Y channel / grey) or a {len(body)}-channel model"
    )


# ---------------------------------------------------------------------- helpers
def _check_decode(path: Path, im: Any) -> None:
    """Refuse to decode an image whose pixels do not fit in memory (checked from its header)."""
    from . import memory

    w, h = im.size
    bands = len(im.getbands())
    per_px = bands * (2 + 4 + 4)  # decoded (≤ 16 bit), converted copy, float32 values
    memory.check_read(float(w) * h * per_px, f"{path} ({w}×{h}, {bands} band(s))", "crop the image first")


def _check_memory(arr: np.ndarray, pipe: Pipeline, scale: int, target: np.dtype) -> None:
    """Refuse a call whose estimated memory exceeds what is available (the image is one batch)."""
    from . import memory

    def plans_at(k: int) -> list[memory.VarPlan]:
        return [memory.VarPlan(int(arr.size), int(arr.size), 4 + 8, target.itemsize + 4, 4)]

    memory.check_call(
        plans_at, pipe, scale, f"downscaling a {arr.shape[-1]}×{arr.shape[-2]} image ×{scale}", []
    )


def _build_dataset(arr: np.ndarray, mode: str, info: dict[str, Any], path: Path, fmt: str) -> xr.Dataset:
    """``image`` variable (float32 in file units) from an ``(H, W[, C])`` array."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        da = xr.DataArray(arr.astype(np.float32), dims=("y", "x"))
    else:
        names = {2: ["L", "A"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}.get(arr.shape[-1])
        if names is None:
            raise ValueError(f"unsupported image layout {arr.shape} (mode {mode})")
        da = xr.DataArray(
            np.moveaxis(arr, -1, 0).astype(np.float32),
            dims=("channel", "y", "x"),
            coords={"channel": np.array(names, dtype=object)},
        )
    da.encoding["scisr_source_dtype"] = np.dtype(arr.dtype.newbyteorder("="))
    attrs: dict[str, Any] = {"mode": mode, "scisr_format": fmt}
    if arr.dtype in (np.uint8, np.uint16):
        attrs["bit_depth"] = 8 * arr.dtype.itemsize
    if "dpi" in info:
        attrs["dpi"] = [float(v) for v in info["dpi"]][:2]
    ds = xr.Dataset({VAR: da}, attrs=attrs)
    ds.encoding["source"] = str(path)
    if info.get("icc_profile"):
        ds.encoding["icc_profile"] = info["icc_profile"]
    return ds


def _select(ds: xr.Dataset, variables: str | list[str] | None) -> str:
    if variables is not None:
        names = [variables] if isinstance(variables, str) else list(variables)
        if len(names) != 1 or names[0] not in ds.data_vars:
            raise ValueError(
                f"an image dataset has one variable; got {names}, available: {list(ds.data_vars)}"
            )
        return str(names[0])
    if VAR in ds.data_vars:
        return VAR
    cands = [str(n) for n, v in ds.data_vars.items() if "y" in v.dims and "x" in v.dims]
    if len(cands) != 1:
        raise ValueError(
            f"cannot tell which variable is the image among {list(ds.data_vars)}; name it '{VAR}'"
        )
    return cands[0]


def _full_scale(ds: xr.Dataset, arr: np.ndarray) -> float:
    """255/65535 for 8/16-bit images; float images: 1, or their maximum when it exceeds 1."""
    bits = ds.attrs.get("bit_depth")
    if bits:
        return float(2 ** int(bits) - 1)
    m = float(np.nanmax(np.abs(arr))) if np.isfinite(arr).any() else 1.0
    return m if m > 1.0 else 1.0


def _mode_for(chans: list[str] | None, n: int) -> str:
    if chans:
        joined = "".join(chans)
        if joined in ("RGB", "RGBA", "LA", "L"):
            return joined
    return {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[n]


def _to_bit_depth(arr: np.ndarray, bits: Any) -> np.ndarray:
    """uint8/uint16 pixels: floats rounded and clipped to ``bits`` (auto: 8 if they fit, else 16)."""
    from ..dtypes import cast_output

    if arr.dtype in (np.uint8, np.uint16):
        return arr
    if bits is None:
        finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
        bits = 8 if finite.size == 0 or float(finite.max()) <= 255.5 else 16
    target = np.dtype(np.uint8 if int(bits) <= 8 else np.uint16)
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError("the image has NaN pixels, which 8/16-bit files cannot hold; fill them first")
    return cast_output(arr.astype(np.float64), target, target)


def _is_png16_colour(path: Path) -> bool:
    """PNG with 16 bits per sample and colour (2), grey+alpha (4) or RGBA (6): Pillow would truncate."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26 and head[24] == 16 and head[25] in (2, 4, 6)


def _read_gdal(path: Path) -> tuple[np.ndarray, str, dict[str, Any]]:
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings(), rasterio.Env(GDAL_PAM_ENABLED="NO"):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            arr = src.read()
    mode = {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}.get(arr.shape[0], "16-bit")
    return np.moveaxis(arr, 0, -1), mode, {}


def _write_gdal(data: np.ndarray, path: Path) -> None:
    """16-bit multi-channel PNG/TIFF through GDAL (Pillow has no such modes)."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    name = Path(path).name.lower()
    if name.endswith(".png"):
        driver = "PNG"
    elif name.endswith((".tif", ".tiff")):
        driver = "GTiff"
    else:
        raise ValueError(f"16-bit colour images can be written as PNG or TIFF, not {Path(path).suffix}")
    c, h, w = data.shape
    with warnings.catch_warnings(), rasterio.Env(GDAL_PAM_ENABLED="NO"):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver=driver, width=w, height=h, count=c, dtype="uint16") as dst:
            dst.write(data)
