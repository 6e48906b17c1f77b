"""NIfTI path to path, streamed slab by slab: the file equals the in-memory path's (header bytes and
voxels), failures leave nothing, and peak memory does not grow with the number of slices."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import sciSR
import sciSR.io.nifti as nifti
from sciSR.data import sample_path

SLAB = "mni152_t1_slab.nii.gz"  # (197, 233, 10) int16, isotropic 1 mm: refined axes (0, 1), loop k
FAST = {"device": "cpu", "precision": "fp32", "progress": False}


@pytest.fixture
def small_slabs(monkeypatch):
    """Slabs of 3 slices for the ×2 sample (394×466 HR per slice), so a volume spans several slabs."""
    monkeypatch.setattr(nifti, "SLAB_HR_CELLS", 3 * 394 * 466)


def _eager(src: Path, out: Path, **kw) -> None:
    sciSR.write(sciSR.downscale(sciSR.open(src).load(), scale=2, **FAST, **kw), out)


def _assert_same_file(streamed: Path, eager: Path) -> None:
    a, b = nib.load(streamed), nib.load(eager)
    ha, hb = a.header, b.header
    assert ha.binaryblock == hb.binaryblock  # every header field: affines, codes, zooms, dtype, slope...
    assert [e.get_content() for e in ha.extensions] == [e.get_content() for e in hb.extensions]
    np.testing.assert_array_equal(a.affine, b.affine)
    assert a.get_data_dtype() == b.get_data_dtype()
    va, vb = np.asanyarray(a.dataobj), np.asanyarray(b.dataobj)
    assert va.dtype == vb.dtype and va.shape == vb.shape
    np.testing.assert_array_equal(va, vb)


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("ext", "kw"),
    [
        (".nii.gz", {"model": "bicubic"}),
        (".nii", {"model": "bicubic", "dtype": "source"}),
        (".nii.gz", {"model": "espcn"}),
        (".nii", {"model": "bicubic", "axes": (0, 2)}),  # loop axis j, not the last stored axis
        (".nii.gz", {"model": "bicubic", "axes": (1, 2)}),  # loop axis i, gzip of a memory-mapped file
        (".nii", {"model": "bicubic", "mask_background": True}),
    ],
)
def test_streamed_equals_eager(tmp_path, small_slabs, ext, kw):
    src = sample_path(SLAB)
    before = _digest(src)
    s_out, e_out = tmp_path / f"s{ext}", tmp_path / f"e{ext}"
    res = sciSR.downscale(src, scale=2, out=s_out, **FAST, **kw)
    assert res["image"].chunks is not None  # the call streamed (lazy result)
    if "axes" not in kw:
        assert len(res["image"].chunks[2]) == 4  # 10 slices in slabs of 3: several blocks were written
    _eager(src, e_out, **kw)
    _assert_same_file(s_out, e_out)
    assert _digest(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([s_out.name, e_out.name])
    if kw.get("dtype") == "source":
        assert nib.load(s_out).get_data_dtype() == np.int16


def test_streamed_4d_and_packed_integers(tmp_path, small_slabs):
    """A 4-D volume (each volume its own statistics) stored as int16 with slope/intercept, written
    back with ``dtype="source"`` (re-packed with the same slope) and as float32."""
    img = nib.load(sample_path(SLAB))
    vol = np.asanyarray(img.dataobj).astype(np.float32)
    data = np.stack([vol, 0.5 * vol + 3.0 * (vol > 0)], axis=-1)
    out = nib.Nifti1Image(data, img.affine, img.header)
    out.header.set_data_dtype(np.int16)
    out.header.set_slope_inter(0.25, 2.0)
    src = tmp_path / "in4d.nii.gz"
    nib.save(out, src)
    for kw, ext in (({"dtype": "source"}, ".nii"), ({}, ".nii.gz")):
        s_out, e_out = tmp_path / f"s{ext}", tmp_path / f"e{ext}"
        res = sciSR.downscale(src, model="bicubic", scale=2, out=s_out, **FAST, **kw)
        assert res["image"].chunks is not None
        _eager(src, e_out, model="bicubic", **kw)
        _assert_same_file(s_out, e_out)
        written = nib.load(s_out)  # nibabel moves the header's slope/intercept to the data proxy
        assert written.shape == (394, 466, 10, 2)
        if kw:
            assert written.get_data_dtype() == np.int16
            assert (written.dataobj.slope, written.dataobj.inter) == (0.25, 2.0)
        else:
            assert written.get_data_dtype() == np.float32
            assert (written.dataobj.slope, written.dataobj.inter) == (1.0, 0.0)


@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
@pytest.mark.parametrize("axes", [None, (0, 2)])
def test_failure_mid_write_leaves_nothing(tmp_path, small_slabs, monkeypatch, ext, axes):
    src = sample_path(SLAB)
    before = _digest(src)
    calls = {"n": 0}
    real = nifti._SlabTask.__call__

    def failing(self, lr, normalizers):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("planted failure in the second slab")
        return real(self, lr, normalizers)

    monkeypatch.setattr(nifti._SlabTask, "__call__", failing)
    with pytest.raises(RuntimeError, match="planted failure"):
        sciSR.downscale(src, model="bicubic", scale=2, out=tmp_path / f"o{ext}", axes=axes, **FAST)
    assert calls["n"] == 2
    assert list(tmp_path.iterdir()) == []  # no output, no temporary, no uncompressed sibling
    assert _digest(src) == before


_RSS_CHILD = textwrap.dedent(
    r"""
    import json, sys
    import numpy as np, nibabel as nib, dask.array, torch, sciSR, sciSR.io.nifti  # before the baseline
    src, out = sys.argv[1], sys.argv[2]
    def hwm():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) * 1024
    base = hwm()
    sciSR.downscale(src, model="bicubic", scale=2, out=out, progress=False)
    print(json.dumps({"growth": hwm() - base}))
    """
)


def _growth(src: Path, out: Path) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(src), str(out)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(json.loads(proc.stdout.strip().splitlines()[-1])["growth"])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_peak_memory_does_not_grow_with_the_number_of_slices(tmp_path):
    """256×256×64 and 256×256×192 float32 volumes ×2 (64 and 192 MiB outputs): the peak RSS of the
    streamed call grows by less than half the 128 MiB between the two outputs (and the 96 MiB between
    the inputs), where holding either would cost all of it."""
    rng = np.random.default_rng(0)
    growth = {}
    for k in (64, 192):
        vol = (rng.random((256, 256, k), dtype=np.float32) * 100.0 + 1.0).astype(np.float32)
        src = tmp_path / f"v{k}.nii"
        nib.save(nib.Nifti1Image(vol, np.eye(4)), src)
        del vol
        growth[k] = _growth(src, tmp_path / f"v{k}_x2.nii.gz")
        assert nib.load(tmp_path / f"v{k}_x2.nii.gz").shape == (512, 512, k)
    out_diff = (192 - 64) * 512 * 512 * 4
    assert growth[192] - growth[64] < out_diff // 2, (growth, out_diff)
