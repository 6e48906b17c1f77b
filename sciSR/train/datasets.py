"""Training data from anything sciSR reads: photo folders (DIV2K/Flickr2K layouts), xarray objects,
NetCDF/Zarr/GeoTIFF/NIfTI files and numpy arrays, as normalized 2-D fields with a validation split.

:func:`load_training_data` returns a :class:`TrainingData`: lists of fields for
:class:`~sciSR.train.data.PatchSampler`, and the normalization that produced them, which
:meth:`TrainingData.weight_metadata` turns into the ``scisr_norm*`` metadata that
:func:`sciSR.downscale` reads from a weight file (so inference scales data as training did).

Rules, in order:

1. **Reading.** Photos become BT.601 luma in [0, 1] (``channels=1``, :func:`~sciSR.train.data.load_luma`)
   or RGB in [0, 1] (``channels=3``). Domain data: every 2-D spatial slice of every selected
   variable along its other dims (time, level, band...) is one field; NIfTI volumes (and arrays
   given with ``axis``) are cut into slices along ``axis`` (default 2, through-plane), skipping
   near-empty slices (fewer than 5 % of the cells above 10 % of the volume's 99th percentile of
   ``|value|``).
2. **Masked cells.** A field with NaN (fill values, nodata, land in an ocean field) is cropped to
   its largest all-valid rectangle (over all its channels); a field without valid cells is
   skipped; one warning gives the counts and the share of valid cells kept.
3. **Divisibility.** Fields whose sides are not multiples of ``scale`` are cropped at the bottom
   and right, with one warning.
4. **Validation split** by whole fields: ``round(val_fraction·n)`` of them (at least one when there
   are two or more), drawn with ``seed``. A single field is split in two halves along its longer
   side (train: first half, validation: second). A DIV2K-style ``*_valid_HR`` folder is the
   validation set instead.
5. **Normalization.** Domain data: ``norm="global"`` maps one min/max over all training values (all
   channels together) to [0, 1] for training and validation fields and records them as fixed
   statistics; ``"per_field"`` scales each field (each channel) by its own min/max, which is what
   :func:`sciSR.downscale` does by default at inference (recorded as a non-fixed ``minmax``);
   ``"none"`` keeps the values. Photos are already on a known scale and are kept as loaded; their
   weights record ``minmax`` without fixed statistics, the convention of the shipped photo
   weights (``"per_field"`` also stretches each photo to [0, 1]; ``"none"`` records ``none``).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: File extensions read as photos in folders and path lists.
PHOTO_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
#: Values accepted by ``norm=``.
NORMS: tuple[str, ...] = ("global", "per_field", "none")
_SINGLE_PHOTO = (".png", ".jpg", ".jpeg", ".bmp", ".webp")  # a lone .tif path is read as GeoTIFF
_CHANNEL_DIMS = ("band", "bands", "channel", "channels", "rgb")
_VALID_DIR = re.compile(r"(^|[_-])(valid|val|validation)([_-]|$)", re.IGNORECASE)


@dataclass
class TrainingData:
    """Normalized training and validation fields and how they were made.

    Attributes:
        train: Training fields, ``(H, W)`` for one channel, ``(C, H, W)`` otherwise, float32;
            sides are multiples of the scale.
        val: Validation fields (same layout; may be empty).
        train_lr: LR versions of ``train`` (DIV2K ``LR_bicubic`` pairs) or ``None``.
        val_lr: LR versions of ``val`` or ``None``.
        norm: ``{"kind": Normalizer kind, "fixed": bool, "params": {...}}``: the normalization
            applied, as :mod:`sciSR.normalize` names it.
        source: What was read and how it was split, for model cards and weight metadata.
        channels: Channels per field.
    """

    train: list[np.ndarray]
    val: list[np.ndarray]
    train_lr: list[np.ndarray] | None = None
    val_lr: list[np.ndarray] | None = None
    norm: dict[str, Any] = field(default_factory=lambda: {"kind": "minmax", "fixed": False, "params": {}})
    source: str = ""
    channels: int = 1

    def normalizer(self) -> Any:
        """The :class:`~sciSR.normalize.Normalizer` of :attr:`norm` (fixed parameters set when fixed)."""
        from ..normalize import get_normalizer

        params = dict(self.norm.get("params", {})) if self.norm.get("fixed") else {}
        return get_normalizer(self.norm["kind"], **params)

    def weight_metadata(self) -> dict[str, str]:
        """``scisr_norm``, ``scisr_norm_params`` and ``scisr_norm_fixed`` for the weight file.

        :func:`sciSR.downscale` with ``norm="auto"`` uses this normalization; with
        ``scisr_norm_fixed = "1"`` it applies these exact statistics instead of fitting its input.
        """
        fixed = bool(self.norm.get("fixed"))
        params = self.norm.get("params", {}) if fixed else {}
        return {
            "scisr_norm": str(self.norm["kind"]),
            "scisr_norm_params": json.dumps({k: float(v) for k, v in params.items()}, sort_keys=True),
            "scisr_norm_fixed": "1" if fixed else "0",
        }


@dataclass
class _Raw:
    """Fields as read (``(C, H, W)`` float arrays), before cropping, splitting and normalizing."""

    fields: list[np.ndarray]
    source: str
    photos: bool = False
    lr: list[np.ndarray] | None = None
    val: list[np.ndarray] | None = None  # a given validation set (DIV2K *_valid_HR)
    val_lr: list[np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- photos


def _photo_loader(channels: int) -> Any:
    from .data import load_luma, load_rgb

    loaders = {1: load_luma, 3: load_rgb}
    if channels not in loaders:
        raise ValueError(f"photos give 1 (luma) or 3 (RGB) channels, not channels={channels}")
    return loaders[channels]


def _image_error(p: Path, exc: BaseException) -> ValueError:
    return ValueError(f"cannot read image {p}: {' '.join(str(exc).split()) or type(exc).__name__}")


def _check_readable(paths: Sequence[Path]) -> list[tuple[int, int]]:
    """Each image's ``(height, width)`` from its header; a file Pillow cannot open is named."""
    from PIL import Image

    sizes = []
    for p in paths:
        try:
            with Image.open(p) as im:
                sizes.append((im.size[1], im.size[0]))
        except Exception as exc:  # any decoder error means the same to the user
            raise _image_error(p, exc) from exc
    return sizes


def _load_photos(paths: Sequence[Path], channels: int, max_side: int | None) -> list[np.ndarray]:
    load = _photo_loader(channels)

    def one(p: Path) -> np.ndarray:
        try:
            a = load(p, max_side)
        except Exception as exc:
            raise _image_error(p, exc) from exc
        return a[None] if a.ndim == 2 else a

    workers = max(1, min(8, os.cpu_count() or 1, len(paths)))
    if workers == 1:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(workers, thread_name_prefix="scisr-load") as pool:
        return list(pool.map(one, paths))


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in PHOTO_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _hr_dirs(root: Path) -> list[Path]:
    """DIV2K/Flickr2K ``*_HR`` folders: ``root`` itself or its sub-folders."""
    if root.name.endswith("_HR"):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.endswith("_HR"))


def _lr_pairs(hr_dir: Path, paths: list[Path], scale: int) -> tuple[list[Path] | None, str]:
    """Matching ``{prefix}_LR_bicubic/X{s}/{stem}x{s}.png`` files, or ``None`` without that folder."""
    lr_dir = hr_dir.parent / f"{hr_dir.name[:-3]}_LR_bicubic" / f"X{scale}"
    if not lr_dir.is_dir():
        text = f"{hr_dir.name} ({len(paths)} images, no {lr_dir.parent.name}/X{scale}: LR made by degrading)"
        return None, text
    lr = []
    for p in paths:
        cand = [lr_dir / f"{p.stem}x{scale}{ext}" for ext in (p.suffix, ".png")]
        hit = next((c for c in cand if c.is_file()), None)
        if hit is None:
            raise ValueError(
                f"{lr_dir} has no LR image for {p.name} (expected {cand[0].name}); "
                f"complete the folder or move {lr_dir} away to make LR by degradation"
            )
        lr.append(hit)
    return lr, f"{hr_dir.name} ({len(paths)} images with {lr_dir.parent.name}/X{scale} pairs)"


def _read_div2k(root: Path, hr_dirs: list[Path], scale: int, channels: int, max_side: int | None) -> _Raw:
    val_dirs = [d for d in hr_dirs if _VALID_DIR.search(d.name[:-3])]
    train_dirs = [d for d in hr_dirs if d not in val_dirs] or hr_dirs
    if train_dirs is hr_dirs:
        val_dirs = []
    groups: dict[str, list[tuple[list[Path], list[Path] | None]]] = {"train": [], "val": []}
    desc: dict[str, list[str]] = {"train": [], "val": []}
    for role, dirs in (("train", train_dirs), ("val", val_dirs)):
        for d in dirs:
            paths = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_EXTENSIONS)
            if not paths:
                raise ValueError(f"no images in {d} (looked for {', '.join(PHOTO_EXTENSIONS)})")
            lr, text = _lr_pairs(d, paths, scale)
            groups[role].append((paths, lr))
            desc[role].append(text)
    use_pairs = all(lr is not None for g in groups.values() for _, lr in g)
    notes = []
    if use_pairs and max_side:
        warnings.warn(
            f"max_side={max_side} shrinks the HR photos, which breaks their LR_bicubic pairs: "
            f"the pairs are not used and LR patches are made by degradation",
            stacklevel=3,
        )
        use_pairs = False
        notes.append(f"LR pairs not used (max_side={max_side})")
    elif not use_pairs and any(lr is not None for g in groups.values() for _, lr in g):
        notes.append("LR pairs not used (missing for some folders)")
    every = [p for g in groups.values() for paths, lr in g for p in paths + (lr or [])]
    _check_readable(every)
    out: dict[str, tuple[list[np.ndarray], list[np.ndarray] | None]] = {}
    for role, g in groups.items():
        hr_paths = [p for paths, _ in g for p in paths]
        lr_paths = [p for _, lr in g for p in (lr or [])] if use_pairs else []
        hr = _load_photos(hr_paths, channels, max_side)
        out[role] = (hr, _load_photos(lr_paths, channels, None) if use_pairs else None)
    source = f"DIV2K-style folder {root}: train {', '.join(desc['train'])}"
    if val_dirs:
        source += f"; validation {', '.join(desc['val'])}"
    return _Raw(
        out["train"][0],
        source,
        photos=True,
        lr=out["train"][1],
        val=out["val"][0] if val_dirs else None,
        val_lr=out["val"][1] if val_dirs else None,
        notes=notes,
    )


def _read_photo_paths(paths: list[Path], what: str, channels: int, max_side: int | None) -> _Raw:
    _check_readable(paths)
    fields = _load_photos(paths, channels, max_side)
    kind = "luma" if channels == 1 else "RGB"
    shrink = f", longer side ≤ {max_side}" if max_side else ""
    return _Raw(fields, f"{what}: {len(paths)} photos ({kind} in [0, 1]{shrink})", photos=True)


def _read_folder(root: Path, scale: int, channels: int, max_side: int | None) -> _Raw:
    hr_dirs = _hr_dirs(root)
    if hr_dirs:
        return _read_div2k(root, hr_dirs, scale, channels, max_side)
    paths = _images_in(root)
    if not paths:
        raise ValueError(
            f"no images in {root} (looked recursively for {', '.join(PHOTO_EXTENSIONS)}); "
            f"pass a folder of photos, a DIV2K-style folder with *_HR sub-folders, or a data file"
        )
    return _read_photo_paths(paths, f"image folder {root}", channels, max_side)


# --------------------------------------------------------------------------- domain data


def _largest_valid_rectangle(valid: np.ndarray) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the largest all-True axis-aligned rectangle (area; first found on ties)."""
    h, w = valid.shape
    heights = np.zeros(w, dtype=np.int64)
    best = (0, 0, 0, 0, 0)  # area, y0, y1, x0, x1
    for y in range(h):
        heights = np.where(valid[y], heights + 1, 0)
        if heights.max() * w <= best[0]:
            continue
        stack: list[int] = []
        for x in range(w + 1):
            cur = int(heights[x]) if x < w else 0
            while stack and int(heights[stack[-1]]) >= cur:
                top = stack.pop()
                hh = int(heights[top])
                left = stack[-1] + 1 if stack else 0
                area = hh * (x - left)
                if area > best[0]:
                    best = (area, y - hh + 1, y + 1, left, x)
            stack.append(x)
    return best[1], best[2], best[3], best[4]


def _valid_part(fields: list[np.ndarray], scale: int) -> tuple[list[np.ndarray], str | None]:
    """Fields cropped to their largest all-finite rectangle; empty ones dropped; a note when any had NaN."""
    out, cropped, skipped, kept, total = [], 0, 0, 0, 0
    for f in fields:
        valid = np.isfinite(f).all(axis=0)
        if valid.all():
            out.append(f)
            continue
        n_valid = int(valid.sum())
        total += n_valid
        y0, y1, x0, x1 = _largest_valid_rectangle(valid) if n_valid else (0, 0, 0, 0)
        if min(y1 - y0, x1 - x0) < scale:
            skipped += 1
            continue
        cropped += 1
        kept += (y1 - y0) * (x1 - x0)
        out.append(np.ascontiguousarray(f[:, y0:y1, x0:x1]))
    if not (cropped or skipped):
        return out, None
    share = f", keeping {100 * kept / total:.0f}% of their valid cells" if total else ""
    note = (
        f"{cropped + skipped} of {len(fields)} fields have NaN/masked cells: {cropped} cropped to their "
        f"largest all-valid rectangle{share}, {skipped} skipped (no valid rectangle of {scale}×{scale})"
    )
    return out, note


def _near_empty(plane: np.ndarray, level: float) -> bool:
    return float((np.abs(np.nan_to_num(plane)) > level).mean()) < 0.05


def _slice_volume(
    vol: np.ndarray, axis: int | None, name: str, spatial: int = 3
) -> tuple[list[np.ndarray], str]:
    """2-D slices of a volume (spatial axes first, extra axes such as time after) along ``axis``."""
    ax = 2 if axis is None else int(axis)
    if not -spatial <= ax < spatial:
        raise ValueError(
            f"axis {axis} is out of range for {name} with {spatial} spatial axes; pass axis=0, 1 or 2"
        )
    ax %= spatial
    vol = np.asarray(vol, dtype=np.float64)
    extra = vol.shape[spatial:]
    vol = vol.reshape((*vol.shape[:spatial], -1))
    mags = np.abs(vol[np.isfinite(vol)])
    level = 0.1 * float(np.percentile(mags, 99)) if mags.size else 0.0
    slices, skipped = [], 0
    for t in range(vol.shape[-1]):
        v = np.moveaxis(vol[..., t], ax, 0)
        for plane in v:
            if _near_empty(plane, level):
                skipped += 1
                continue
            slices.append(plane[None])
    shape = "×".join(str(n) for i, n in enumerate(vol.shape[:spatial]) if i != ax)
    extra_txt = f" × {int(np.prod(extra))} volumes" if extra else ""
    return slices, (
        f"{name}: {len(slices)} slices along axis {ax} ({shape}){extra_txt}, {skipped} near-empty skipped"
    )


def _is_nifti_like(da: Any) -> bool:
    from ..io.nifti import DIMS

    return tuple(da.dims[:3]) == DIMS[:3]


def _channel_stack(
    arrays: list[tuple[str, Any]], dims_of: Any, channels: int
) -> list[tuple[str, Any]]:
    """Turn ``channels`` variables, or one variable's channel-sized dim, into a ``channel`` dim."""
    import xarray as xr

    if channels == 1:
        return arrays
    if len(arrays) == channels:
        names = [n for n, _ in arrays]
        try:
            stacked = xr.concat([da for _, da in arrays], dim="channel", coords="minimal", compat="override")
        except Exception as exc:
            raise ValueError(f"variables {names} cannot be stacked as {channels} channels: {exc}") from exc
        return [("+".join(names), stacked)]
    if len(arrays) == 1:
        name, da = arrays[0]
        dims = dims_of(da) or ()
        named = [d for d in da.dims if d not in dims and str(d).lower() in _CHANNEL_DIMS]
        cand = [d for d in named if da.sizes[d] == channels]
        if len(cand) == 1:
            return [(name, da.rename({cand[0]: "channel"}))]
    raise ValueError(
        f"channels={channels} needs {channels} variables (variables=[...]) or one variable with a "
        f"band/channel dim of length {channels}; got {[n for n, _ in arrays]}"
    )


def _read_xarray(obj: Any, variables: Any, channels: int, axis: int | None, what: str) -> _Raw:
    import xarray as xr

    from ..io import adapter_for_dataset

    ds = obj.to_dataset(name=obj.name or "data") if isinstance(obj, xr.DataArray) else obj
    adapter = adapter_for_dataset(ds)
    names = [variables] if isinstance(variables, str) else list(variables) if variables is not None else None
    available = [str(v) for v in ds.data_vars]
    if names is not None:
        unknown = [n for n in names if n not in ds.data_vars]
        if unknown:
            raise ValueError(f"no variable {unknown[0]!r} in {what}; available: {', '.join(available)}")
    if ds.attrs.get("scisr_format") == "nifti" or (
        names is None and len(ds.data_vars) == 1 and _is_nifti_like(next(iter(ds.data_vars.values())))
    ):
        var = (names or ["image" if "image" in ds.data_vars else available[0]])[0]
        slices, text = _slice_volume(ds[var].values, axis, f"{what} {var}")
        return _Raw(slices, text)
    if axis is not None:
        raise ValueError(f"axis= slices volumes (NIfTI, 3-D arrays); {what} is a gridded dataset: drop axis")
    chosen = names if names is not None else [v for v in available if adapter.spatial_dims(ds[v])]
    if not chosen:
        raise ValueError(
            f"no variable with two spatial dims in {what} (variables: {', '.join(available)}); "
            f"pass variables=[...] or rename the dims to y/x"
        )
    arrays = []
    for n in chosen:
        if adapter.spatial_dims(ds[n]) is None:
            from ..grid import no_spatial_dims_error

            raise no_spatial_dims_error(n, ds[n].dims)
        arrays.append((n, ds[n]))
    arrays = _channel_stack(arrays, adapter.spatial_dims, channels)
    fields, parts = [], []
    for n, da in arrays:
        ydim, xdim = adapter.spatial_dims(da) or ("", "")
        chan = ["channel"] if "channel" in da.dims else []
        loop = [d for d in da.dims if d not in (ydim, xdim, *chan)]
        vals = np.asarray(da.transpose(*loop, *chan, ydim, xdim).values, dtype=np.float64)
        h, w = vals.shape[-2:]
        vals = vals.reshape(-1, channels, h, w)
        fields += list(vals)
        along = f" along {', '.join(str(d) for d in loop)}" if loop else ""
        parts.append(f"{n} ({len(vals)} fields {h}×{w}{along})")
    return _Raw(fields, f"{what}: {'; '.join(parts)}")


def _is_zarr(p: Path) -> bool:
    return p.suffix.lower() == ".zarr" or (p / "zarr.json").exists() or (p / ".zgroup").exists()


def _read_path(
    p: Path, scale: int, variables: Any, channels: int, axis: int | None, max_side: int | None
) -> _Raw:
    from ..io import open_dataset

    if not p.exists():
        raise FileNotFoundError(f"no such file or folder: {p}")
    if p.is_dir() and not _is_zarr(p):
        return _read_folder(p, scale, channels, max_side)
    if p.is_file() and p.suffix.lower() in _SINGLE_PHOTO:
        return _read_photo_paths([p], f"photo {p}", channels, max_side)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*times .* kept as raw numbers.*")
        ds = open_dataset(p)
    return _read_xarray(ds, variables, channels, axis, str(p))


def _read_arrays(arrays: list[np.ndarray], channels: int, axis: int | None) -> _Raw:
    if axis is not None:
        if len(arrays) != 1 or arrays[0].ndim not in (3, 4):
            raise ValueError("axis= slices one 3-D (or 4-D) volume array; pass a single volume")
        slices, text = _slice_volume(arrays[0], axis, f"array {arrays[0].shape}")
        return _Raw(slices, text)
    fields = []
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        if a.ndim == 2 and channels == 1:
            fields.append(a[None])
        elif a.ndim == 3 and channels == 1:
            fields += [f[None] for f in a]
        elif a.ndim == 3 and a.shape[0] == channels:
            fields.append(a)
        elif a.ndim == 4 and a.shape[1] == channels:
            fields += list(a)
        else:
            raise ValueError(
                f"cannot read an array of shape {a.shape} as {channels}-channel fields: pass (H, W), a stack "
                f"(N, H, W), (C, H, W) or (N, C, H, W) with C = channels, or a volume with axis="
            )
    shapes = {f.shape[-2:] for f in fields}
    size = "×".join(map(str, next(iter(shapes)))) if len(shapes) == 1 else "various sizes"
    return _Raw(fields, f"numpy: {len(fields)} fields ({size})")


def _read(
    data: Any, scale: int, channels: int, variables: Any, axis: int | None, max_side: int | None
) -> _Raw:
    """Dispatch on the type of ``data``."""
    import xarray as xr

    if isinstance(data, (xr.Dataset, xr.DataArray)):
        what = "DataArray" if isinstance(data, xr.DataArray) else "Dataset"
        if getattr(data, "name", None):
            what += f" {data.name}"
        src = data.encoding.get("source")
        return _read_xarray(data, variables, channels, axis, what + (f" ({src})" if src else ""))
    if hasattr(data, "get_fdata") and hasattr(data, "affine"):  # a nibabel image
        return _Raw(*_slice_volume(np.asarray(data.dataobj, dtype=np.float64), axis, "NIfTI image"))
    if isinstance(data, (str, os.PathLike)):
        return _read_path(Path(data), scale, variables, channels, axis, max_side)
    if isinstance(data, np.ndarray) or (hasattr(data, "__array__") and not isinstance(data, (list, tuple))):
        return _read_arrays([np.asarray(data)], channels, axis)
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("no training data: the list is empty")
        if all(isinstance(d, (str, os.PathLike)) for d in data):
            paths = [Path(d) for d in data]
            missing = [p for p in paths if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"no such file: {missing[0]}")
            if all(p.suffix.lower() in _SINGLE_PHOTO for p in paths):  # .tif paths are read as GeoTIFF
                return _read_photo_paths(paths, f"{len(paths)} image paths", channels, max_side)
            raws = [_read_path(p, scale, variables, channels, axis, max_side) for p in paths]
            if any(r.photos for r in raws) and not all(r.photos for r in raws):
                raise ValueError("the path list mixes photos and data files; train on one kind at a time")
            return _Raw(
                [f for r in raws for f in r.fields], "; ".join(r.source for r in raws), photos=raws[0].photos
            )
        if all(hasattr(d, "__array__") for d in data):
            return _read_arrays([np.asarray(d) for d in data], channels, axis)
    raise TypeError(
        f"cannot train on {type(data).__name__}: pass a folder, image paths, a data file path, an xarray "
        f"object, a nibabel image or numpy arrays"
    )


# --------------------------------------------------------------------------- assembly


def _crop_to_scale(
    fields: list[np.ndarray], scale: int, lr: list[np.ndarray] | None
) -> tuple[list[np.ndarray], int]:
    """Fields cropped (bottom/right) to multiples of ``scale`` (to ``scale ×`` their LR pair's size)."""
    out, n = [], 0
    for i, f in enumerate(fields):
        if lr is not None:
            h, w = scale * lr[i].shape[-2], scale * lr[i].shape[-1]
            if f.shape[-2] < h or f.shape[-1] < w:
                raise ValueError(
                    f"HR image {i} ({f.shape[-2]}×{f.shape[-1]}) is smaller than {scale} × its LR image "
                    f"({lr[i].shape[-2]}×{lr[i].shape[-1]}); the LR_bicubic/X{scale} folder does not match"
                )
        else:
            h, w = (f.shape[-2] // scale) * scale, (f.shape[-1] // scale) * scale
        if (h, w) != f.shape[-2:]:
            n += 1
            f = np.ascontiguousarray(f[:, :h, :w])
        out.append(f)
    return out, n


def _split(
    raw: _Raw, scale: int, val_fraction: float, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray] | None, list[np.ndarray] | None, str]:
    if raw.val is not None:
        return raw.fields, raw.val, raw.lr, raw.val_lr, ""
    n = len(raw.fields)
    if val_fraction <= 0:
        return raw.fields, [], raw.lr, None if raw.lr is None else [], "no validation split"
    if n == 1:
        f = raw.fields[0]
        ax = -2 if f.shape[-2] >= f.shape[-1] else -1
        cut = (f.shape[ax] // 2 // scale) * scale
        if cut < scale:
            return raw.fields, [], raw.lr, None if raw.lr is None else [], "one field too small to split"
        first, second = (f[:, :cut], f[:, cut:]) if ax == -2 else (f[:, :, :cut], f[:, :, cut:])
        lr_pair = None
        if raw.lr is not None:
            g, c = raw.lr[0], cut // scale
            lr_pair = (g[:, :c], g[:, c:]) if ax == -2 else (g[:, :, :c], g[:, :, c:])
        side = ("top", "bottom") if ax == -2 else ("left", "right")
        return (
            [np.ascontiguousarray(first)],
            [np.ascontiguousarray(second)],
            None if lr_pair is None else [np.ascontiguousarray(lr_pair[0])],
            None if lr_pair is None else [np.ascontiguousarray(lr_pair[1])],
            f"single field split in two halves: train the {side[0]} {cut} cells, validation the {side[1]} "
            f"{f.shape[ax] - cut}",
        )
    n_val = min(n - 1, max(1, round(val_fraction * n)))
    pick = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    tr = [f for i, f in enumerate(raw.fields) if i not in pick]
    va = [f for i, f in enumerate(raw.fields) if i in pick]
    tr_lr = None if raw.lr is None else [f for i, f in enumerate(raw.lr) if i not in pick]
    va_lr = None if raw.lr is None else [f for i, f in enumerate(raw.lr) if i in pick]
    return tr, va, tr_lr, va_lr, f"{len(tr)} train / {len(va)} validation fields (seed {seed})"


def _per_field(fields: list[np.ndarray], lr: list[np.ndarray] | None) -> tuple[list[np.ndarray], Any]:
    """Each field (each channel) to [0, 1] by its own min/max; its LR pair by the same numbers."""
    out, out_lr = [], []
    for i, f in enumerate(fields):
        lo = f.min(axis=(-2, -1), keepdims=True)
        span = f.max(axis=(-2, -1), keepdims=True) - lo
        span = np.where(span > 0, span, 1.0)
        out.append((f - lo) / span)
        if lr is not None:
            out_lr.append((lr[i] - lo) / span)
    return out, (out_lr if lr is not None else None)


def _normalize(
    raw: _Raw, norm: str, groups: list[tuple[list[np.ndarray], list[np.ndarray] | None]]
) -> tuple[dict[str, Any], list[tuple[list[np.ndarray], Any]]]:
    """The norm record and the normalized ``(fields, lr)`` groups (training first)."""
    if norm == "none":
        return {"kind": "none", "fixed": False, "params": {}}, groups
    if norm == "per_field":
        return {"kind": "minmax", "fixed": False, "params": {}}, [_per_field(f, lr) for f, lr in groups]
    if raw.photos:  # global: photos keep their [0, 1] scale (the shipped photo weights' convention)
        return {"kind": "minmax", "fixed": False, "params": {}}, groups
    from ..normalize import MinMax

    train = groups[0][0]
    lo = min(float(f.min()) for f in train)
    hi = max(float(f.max()) for f in train)
    nz = MinMax(min=lo, max=hi if hi > lo else lo + 1.0)
    record = {"kind": "minmax", "fixed": True, "params": dict(nz.params)}
    return record, [([nz.forward(f) for f in fs], lr) for fs, lr in groups]  # domain data have no LR pairs


def _out(fields: list[np.ndarray] | None, channels: int) -> list[np.ndarray] | None:
    if fields is None:
        return None
    return [np.ascontiguousarray(f[0] if channels == 1 else f, dtype=np.float32) for f in fields]


def load_training_data(
    data: Any,
    *,
    scale: int,
    channels: int = 1,
    variables: str | Sequence[str] | None = None,
    axis: int | None = None,
    val_fraction: float = 0.1,
    max_side: int | None = None,
    norm: str = "global",
    seed: int = 0,
) -> TrainingData:
    """Read, crop, split and normalize training data (see the module notes for every rule).

    Args:
        data: A folder (DIV2K/Flickr2K layout with ``*_HR`` and optional ``*_LR_bicubic/X{s}``
            sub-folders, or any folder of images, searched recursively), a list of image paths, a
            NetCDF/Zarr/GeoTIFF/NIfTI path (or a list of them), an ``xr.Dataset``/``xr.DataArray``,
            a nibabel image, or numpy arrays (``(H, W)``, a stack ``(N, H, W)``, ``(C, H, W)`` or
            ``(N, C, H, W)`` with ``C = channels``, or a volume sliced along ``axis``).
        scale: SR factor (fields are cropped to multiples of it; LR pairs are looked up for it).
        channels: Channels per field: photos 1 (luma) or 3 (RGB); domain data stack that many
            variables, or one variable's ``band``/``channel`` dim of that length, as channels.
        variables: Dataset variables to use (default: every one with two spatial dims).
        axis: Slicing axis of volumes (NIfTI default 2; numpy volumes need it).
        val_fraction: Share of fields held out (``0``: none).
        max_side: Shrink photos to this longer side (Lanczos); not used for domain data.
        norm: ``"global"``, ``"per_field"`` or ``"none"``.
        seed: Seed of the validation split.

    Returns:
        The :class:`TrainingData`.

    Raises:
        FileNotFoundError: A path that does not exist.
        ValueError: An empty folder, an unreadable image (named), an unknown variable (the
            available ones listed), a NIfTI axis out of range, or bad options; all before the
            bulk of the reading.
        TypeError: ``data`` of a type none of the readers takes.
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if int(channels) != channels or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    if not (isinstance(val_fraction, (int, float)) and 0 <= val_fraction < 1):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    if max_side is not None and (int(max_side) != max_side or max_side < 1):
        raise ValueError(f"max_side must be a positive number of pixels, got {max_side!r}")
    scale, channels = int(scale), int(channels)
    raw = _read(data, scale, channels, variables, axis, max_side)
    if max_side and not raw.photos:
        warnings.warn("max_side shrinks photos only; domain fields are used at full size", stacklevel=2)
    notes = list(raw.notes)
    if not raw.photos:
        raw.fields, note = _valid_part(raw.fields, scale)
        if note:
            warnings.warn(note, stacklevel=2)
            notes.append(note)
    if not raw.fields:
        raise ValueError(f"no usable training field in {raw.source}")
    raw.fields, n_crop = _crop_to_scale(raw.fields, scale, raw.lr)
    if raw.val is not None:
        raw.val, n_val_crop = _crop_to_scale(raw.val, scale, raw.val_lr)
        n_crop += n_val_crop
    if n_crop:
        total = len(raw.fields) + len(raw.val or [])
        warnings.warn(
            f"{n_crop} of {total} fields have sides that are not multiples of scale {scale}: "
            f"cropped at the bottom/right",
            stacklevel=2,
        )
    train, val, train_lr, val_lr, split_note = _split(raw, scale, float(val_fraction), int(seed))
    record, [(train, train_lr), (val, val_lr)] = _normalize(raw, norm, [(train, train_lr), (val, val_lr)])
    if split_note:
        notes.append(split_note)
    source = raw.source + "".join(f"; {n}" for n in notes)
    return TrainingData(
        train=_out(train, channels) or [],
        val=_out(val, channels) or [],
        train_lr=_out(train_lr, channels),
        val_lr=_out(val_lr, channels),
        norm=record,
        source=source,
        channels=channels,
    )
