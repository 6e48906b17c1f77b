"""Sparse-coding SR (Yang et al., IEEE TIP 2010): coupled LR/HR dictionaries, K-SVD + OMP.

The classical baseline of the seed. The LR image is bicubic-interpolated to the HR grid; each
overlapping ``patch × patch`` window is described by the first- and second-order derivatives of
the interpolated image (``[-1, 0, 1]`` and ``[1, 0, -2, 0, 1]`` in both directions, ``4·p²``
values). A joint dictionary over (HR patch, LR feature) pairs is learned with K-SVD (Aharon et
al. 2006) using orthogonal matching pursuit; at inference each window's feature vector is
sparse-coded on the LR half and the HR half reconstructs the patch, overlaps are averaged and
the interpolated patch mean is added back (Yang's recipe; ``residual="bicubic"`` adds the whole
interpolated patch instead, as in Zeyde et al. 2010). Iterative back-projection then enforces
consistency with the LR input (the paper's global reconstruction constraint; on by default).

Everything is written in torch (no scikit-learn): :func:`omp` is a batched OMP with Cholesky
updates (Rubinstein et al. 2008), :func:`ksvd` the (approximate) K-SVD dictionary update.
Dictionaries are buffers, so a fitted model round-trips through ``state_dict``/safetensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..resize import check_upsampler, imresize_matlab
from .base import SRModel, upsample_bicubic
from .registry import register_model

YANG_PAPER = "Yang et al., Image Super-Resolution via Sparse Representation, IEEE TIP 2010"

_EPS_DIAG = 1e-6


# --------------------------------------------------------------------------- sparse coding
def omp(dictionary: torch.Tensor, signals: torch.Tensor, sparsity: int,
        rtol: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched orthogonal matching pursuit with incremental Cholesky factorization.

    Each signal greedily picks up to ``sparsity`` atoms (most correlated with its residual) and
    is re-fitted by least squares on the chosen atoms; the Gram sub-matrix of the chosen atoms is
    factored incrementally (one new row of ``L`` per step). A signal stops early when its
    residual energy falls below ``rtol`` times its energy, or when the next atom is (nearly)
    linearly dependent on the chosen ones; its unused slots get index ``-1`` and coefficient 0.
    Differentiable with respect to ``signals`` for a fixed support.

    Args:
        dictionary: ``(d, K)`` dictionary with unit-norm columns.
        signals: ``(B, d)`` signals.
        sparsity: Maximum number of atoms per signal.
        rtol: Relative residual energy at which a signal stops.

    Returns:
        ``(indices, coefficients)``, both ``(B, T)`` with ``T = min(sparsity, K)``.
    """
    k_atoms = dictionary.shape[1]
    b = signals.shape[0]
    t_max = max(1, min(int(sparsity), k_atoms))
    dev, dt = signals.device, signals.dtype
    dic = dictionary.to(dev, dt)
    gram = dic.T @ dic
    a0 = signals @ dic  # (B, K) correlations of the signals with the atoms
    y2 = (signals.detach() ** 2).sum(1)
    rows = torch.arange(b, device=dev)
    idx = torch.full((b, t_max), -1, dtype=torch.long, device=dev)
    chol = torch.zeros(b, t_max, t_max, device=dev, dtype=dt)
    chosen = torch.zeros(b, k_atoms, dtype=torch.bool, device=dev)
    active = y2 > 0
    rhs_cols: list[torch.Tensor] = []
    resid = signals.detach()
    gamma = signals.new_zeros(b, 1)
    for k in range(t_max):
        corr = (resid @ dic).abs().masked_fill(chosen, -1.0)
        j = corr.argmax(1)
        if k == 0:
            w = signals.new_zeros(b, 0)
            diag2 = torch.ones(b, device=dev, dtype=dt)
        else:
            g = gram[idx[:, :k].clamp_min(0), j[:, None]]  # (B, k)
            g = torch.where(idx[:, :k] >= 0, g, torch.zeros_like(g))
            w = torch.linalg.solve_triangular(chol[:, :k, :k], g.unsqueeze(-1), upper=False).squeeze(-1)
            diag2 = 1.0 - (w * w).sum(1)
        ok = active & (diag2 > _EPS_DIAG)
        active = ok
        chol[:, k, :k] = torch.where(ok[:, None], w, torch.zeros_like(w))
        chol[:, k, k] = torch.where(ok, diag2.clamp_min(_EPS_DIAG).sqrt(), torch.ones_like(diag2))
        idx[:, k] = torch.where(ok, j, torch.full_like(j, -1))
        chosen[rows[ok], j[ok]] = True
        rhs_cols.append(torch.where(ok, a0[rows, j], torch.zeros_like(a0[:, 0])))
        rhs = torch.stack(rhs_cols, 1).unsqueeze(-1)
        gamma = torch.cholesky_solve(rhs, chol[:, : k + 1, : k + 1]).squeeze(-1)  # (B, k+1)
        if k + 1 < t_max:
            atoms = dic.T[idx[:, : k + 1].clamp_min(0)]  # (B, k+1, d)
            resid = signals.detach() - torch.einsum("bk,bkd->bd", gamma.detach(), atoms)
            active = active & ((resid**2).sum(1) > rtol * y2)
    if gamma.shape[1] < t_max:
        gamma = F.pad(gamma, (0, t_max - gamma.shape[1]))
    return idx, gamma


def sparse_matmul(dictionary: torch.Tensor, idx: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """``dictionary @ codes`` for codes given as ``(indices, coefficients)`` from :func:`omp`.

    Shape:
        ``(d, K), (B, T), (B, T) -> (B, d)``.
    """
    atoms = dictionary.T[idx.clamp_min(0)]  # (B, T, d)
    return torch.einsum("bt,btd->bd", coef * (idx >= 0), atoms)


def ksvd(signals: torch.Tensor, n_atoms: int, sparsity: int, n_iter: int = 20,
         generator: torch.Generator | None = None, power_iters: int = 2) -> torch.Tensor:
    """Learn a dictionary with K-SVD (Aharon et al. 2006), OMP sparse coding.

    Alternates OMP coding of all signals and a sequential update of each atom with the leading
    singular pair of the residual restricted to the signals using it (computed by a few power
    iterations, as in the approximate K-SVD of Rubinstein et al. 2008). Unused atoms are replaced
    by the worst-represented signal.

    Args:
        signals: ``(N, d)`` training signals.
        n_atoms: Dictionary size ``K``.
        sparsity: Atoms per signal.
        n_iter: K-SVD iterations.
        generator: Random generator for the initial atoms (a random subset of signals).
        power_iters: Power iterations per rank-1 update.

    Returns:
        ``(d, K)`` dictionary with unit-norm columns.
    """
    x = signals.detach()
    n = x.shape[0]
    if n == 0:
        raise ValueError("K-SVD got no training signals")
    norms = x.norm(dim=1)
    perm = torch.randperm(n, generator=generator)
    pool = perm[norms[perm] > 0]
    if pool.numel() == 0:
        raise ValueError("all training signals are zero")
    init = pool[torch.arange(n_atoms) % pool.numel()]
    dic = x[init].T.clone()
    dic = dic + 1e-3 * torch.randn(dic.shape, generator=generator).to(dic) * dic.abs().mean()
    dic = dic / dic.norm(dim=0, keepdim=True).clamp_min(1e-12)
    for _ in range(n_iter):
        idx, coef = omp(dic, x, sparsity)
        resid = x - sparse_matmul(dic, idx, coef)
        for k in range(n_atoms):
            sig, slot = torch.nonzero(idx == k, as_tuple=True)
            if sig.numel() == 0:
                worst = int((resid**2).sum(1).argmax())
                atom = resid[worst]
                if float(atom.norm()) > 0:
                    dic[:, k] = atom / atom.norm()
                    resid[worst] = 0.0
                continue
            a = coef[sig, slot]
            err = resid[sig] + a[:, None] * dic[:, k][None]
            atom = dic[:, k].clone()
            for _ in range(power_iters):
                atom = err.T @ (err @ atom)
                atom = atom / atom.norm().clamp_min(1e-12)
            a_new = err @ atom
            resid[sig] = err - a_new[:, None] * atom[None]
            dic[:, k] = atom
            coef[sig, slot] = a_new
    return dic


# --------------------------------------------------------------------------- features
def _feature_filters(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    f = torch.zeros(4, 1, 5, 5, dtype=dtype, device=device)
    f[0, 0, 2, 1:4] = torch.tensor([-1.0, 0.0, 1.0])
    f[1, 0, 1:4, 2] = torch.tensor([-1.0, 0.0, 1.0])
    f[2, 0, 2, :] = torch.tensor([1.0, 0.0, -2.0, 0.0, 1.0])
    f[3, 0, :, 2] = torch.tensor([1.0, 0.0, -2.0, 0.0, 1.0])
    return f


def gradient_features(img: torch.Tensor) -> torch.Tensor:
    """First- and second-order derivatives (Yang et al.) of single-channel images.

    Shape:
        ``(B, 1, H, W) -> (B, 4, H, W)`` (replicate padding at the borders).
    """
    return F.conv2d(F.pad(img, (2, 2, 2, 2), mode="replicate"), _feature_filters(img.dtype, img.device))


def back_projection_kernel(dtype: torch.dtype = torch.float32, device: Any = None) -> torch.Tensor:
    """The 5×5 filter of Yang et al.'s back-projection: a σ = 1 Gaussian, squared and renormalised.

    Equals a σ = 1/√2 Gaussian truncated to 5×5 (``fspecial('gaussian', 5, 1).^2`` normalised, as
    in the authors' released ``backprojection.m``).

    Shape:
        ``() -> (1, 1, 5, 5)``.
    """
    r = torch.arange(-2, 3, dtype=torch.float64)
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2))
    return (g / g.sum()).to(dtype=dtype, device=device).reshape(1, 1, 5, 5)


def degrade(hr: torch.Tensor, scale: int, mode: str = "bicubic") -> torch.Tensor:
    """Simulate the LR image: antialiased bicubic (``"bicubic"``) or block mean (``"area"``).

    Shape:
        ``(B, C, H, W) -> (B, C, H/scale, W/scale)`` (H, W multiples of ``scale``).
    """
    if scale == 1:
        return hr
    if mode == "area":
        return F.avg_pool2d(hr, scale)
    if mode == "bicubic":
        return F.interpolate(hr, scale_factor=1.0 / scale, mode="bicubic", antialias=True,
                             align_corners=False)
    raise ValueError(f"degradation must be 'bicubic' or 'area', got {mode!r}")


def synthetic_texture(size: int = 48) -> torch.Tensor:
    """A deterministic test texture (oriented waves, a disk edge, a ramp, a checkerboard).

    Shape:
        ``() -> (size, size)``.
    """
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    img = 0.3 * torch.sin(0.45 * xx + 0.2 * yy) + 0.2 * torch.cos(0.13 * xx - 0.37 * yy)
    img = img + 0.5 * (((xx - size * 0.6) ** 2 + (yy - size * 0.4) ** 2) < (size * 0.22) ** 2).float()
    img = img + 0.3 * (((xx // 6) + (yy // 6)) % 2) * (xx > size / 2).float() + yy / (2 * size)
    return img


# --------------------------------------------------------------------------- model
class SparseCodingSR(SRModel):
    """Coupled-dictionary sparse-coding SR; call :meth:`fit` (or load a fitted state dict) first.

    Every channel is processed as a grayscale image with the same dictionaries. Patches sit on a
    grid of stride ``patch - overlap`` in HR pixels; with the default full overlap (stride 1)
    every HR position starts a patch, so the method is translation-equivariant with a finite
    receptive field (exact tiling). A stride that does not divide the scale breaks that, and the
    model then declares itself non-equivariant (tiles are blended). Not trainable by gradient
    (no parameters): the dictionaries are buffers learned by :meth:`fit`.

    Back-projection (the paper's global reconstruction constraint, solved by iterative
    back-projection) is on by default with the authors' released settings: 20 iterations of
    ``y += G * up(x - down(y))`` with ``G`` the 5×5 filter of :func:`back_projection_kernel`
    (zero-padded at the image border, as MATLAB's ``conv2(..., 'same')``); ``down`` is the
    model's degradation and ``up`` its interpolation. It widens the receptive field by 5 LR
    cells per iteration at ×2 and above (see :meth:`receptive_field`); ``back_projection=0``
    turns it off.
    Yang et al. interpolate with MATLAB's ``imresize``: ``upsampler="matlab"`` uses it for the
    interpolation, the training pairs and back-projection's ``down`` (with ``degradation="bicubic"``);
    the default is torch bicubic (``a = -0.75``) up and torch antialiased bicubic down. Learning
    the dictionaries by K-SVD/OMP (rather than the paper's L1 sparse coding) follows Zeyde et al.

    Shape:
        ``(N, C, H, W) -> (N, C, H*scale, W*scale)``.
    """

    name = "sparse_coding"
    paper = YANG_PAPER
    scales = ()
    upsampling = "pre"
    equivariant = True
    reduced_precision = False  # orthogonal matching pursuit needs fp32 triangular solves

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_atoms: int = 512, patch: int = 5, overlap: int | None = None, sparsity: int = 3,
                 residual: str = "mean", back_projection: int = 20, degradation: str = "bicubic",
                 fit_on: str | None = None, fit_kwargs: dict[str, Any] | None = None,
                 chunk: int = 32768, upsampler: str = "bicubic") -> None:
        super().__init__(scale, in_channels, out_channels)
        self.upsampler = check_upsampler(upsampler)
        if self.out_channels != self.in_channels:
            raise ValueError(f"sparse_coding maps each channel to itself: out_channels ({self.out_channels}) "
                             f"must equal in_channels ({self.in_channels})")
        if residual not in ("mean", "bicubic"):
            raise ValueError(f"residual must be 'mean' (Yang) or 'bicubic' (Zeyde), got {residual!r}")
        if degradation not in ("bicubic", "area"):
            raise ValueError(f"degradation must be 'bicubic' or 'area', got {degradation!r}")
        if int(back_projection) < 0:
            raise ValueError(f"back_projection must be ≥ 0 iterations, got {back_projection}")
        self.residual = residual
        self.back_projection = int(back_projection)
        self.degradation = degradation
        self.chunk = int(chunk)
        self.sparsity = int(sparsity)
        self._set_geometry(int(n_atoms), int(patch), overlap)
        self.register_buffer("fitted", torch.zeros((), dtype=torch.uint8))
        if fit_on is not None:
            if fit_on != "synthetic":
                raise ValueError(f"fit_on must be None or 'synthetic', got {fit_on!r}")
            kw = {"n_iter": 3, "max_patches": 1500, **(fit_kwargs or {})}
            self.fit([synthetic_texture(max(48, 12 * self.scale))], **kw)

    # ------------------------------------------------------------------ geometry / state
    def _set_geometry(self, n_atoms: int, patch: int, overlap: int | None) -> None:
        if patch < 1 or n_atoms < 1:
            raise ValueError(f"patch and n_atoms must be ≥ 1, got patch={patch}, n_atoms={n_atoms}")
        overlap = patch - 1 if overlap is None else int(overlap)
        if not 0 <= overlap < patch:
            raise ValueError(f"overlap must be in [0, patch), got {overlap} for patch {patch}")
        self.n_atoms, self.patch, self.overlap = n_atoms, patch, overlap
        self.step = patch - overlap
        self.equivariant = self.scale % self.step == 0  # type: ignore[misc]
        self.register_buffer("dict_lr", torch.zeros(4 * patch * patch, n_atoms))
        self.register_buffer("dict_hr", torch.zeros(patch * patch, n_atoms))
        self.config = {"n_atoms": n_atoms, "patch": patch, "overlap": overlap, "sparsity": self.sparsity,
                       "residual": self.residual, "back_projection": self.back_projection,
                       "degradation": self.degradation, "upsampler": self.upsampler}

    def _analytic_rf(self) -> int:
        s = self.scale
        # output pixel ← patches within patch-1 HR px ← features ±2 HR px ← bicubic ±2 LR cells
        rf = math.ceil((self.patch - 1 + 2) / s) + 2
        # each back-projection step: Gaussian (±2 HR px) of bicubic up (±2 cells) of LR - degrade(y)
        # (±2 cells for antialiased bicubic, the cell itself for the block mean)
        step = math.ceil(2 / s) + 2 + (2 if self.degradation == "bicubic" else 0)
        return rf + self.back_projection * step

    def receptive_field(self) -> int:
        """Analytic LR half-width: ``ceil((patch + 1) / s) + 2`` (+ back-projection reach).

        Each back-projection iteration widens it by ``ceil(2/s) + 4`` cells (``ceil(2/s) + 2``
        for ``degradation="area"``): the default 20 iterations at ×4 give a halo of 104 LR cells.
        """
        return self._analytic_rf()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        lr, hr = state_dict.get(prefix + "dict_lr"), state_dict.get(prefix + "dict_hr")
        if lr is not None and hr is not None and tuple(lr.shape) != tuple(self.dict_lr.shape):
            p = math.isqrt(hr.shape[0])
            if p * p != hr.shape[0] or lr.shape[0] != 4 * p * p or lr.shape[1] != hr.shape[1]:
                raise ValueError(f"inconsistent sparse-coding dictionaries: dict_lr {tuple(lr.shape)}, "
                                 f"dict_hr {tuple(hr.shape)}")
            overlap = p - self.step if p >= self.step else p - 1
            self._set_geometry(int(hr.shape[1]), p, overlap)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def is_fitted(self) -> bool:
        """True once dictionaries were learned by :meth:`fit` or loaded."""
        return bool(self.fitted.item())

    def _down(self, hr: torch.Tensor, degradation: str) -> torch.Tensor:
        """The LR image of ``hr`` under ``degradation`` (MATLAB imresize with ``upsampler="matlab"``)."""
        if degradation == "bicubic" and self.upsampler == "matlab" and self.scale > 1:
            h, w = hr.shape[-2] // self.scale, hr.shape[-1] // self.scale
            return imresize_matlab(hr, size=(h, w))
        return degrade(hr, self.scale, degradation)

    # ------------------------------------------------------------------ training
    def _pairs(self, hr: torch.Tensor, degradation: str, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        """LR features and HR targets (before normalization) of every patch of ``(B, 1, H, W)``."""
        s, p = self.scale, self.patch
        lr = self._down(hr, degradation)
        mid = upsample_bicubic(lr, s, self.upsampler)
        feats = F.unfold(gradient_features(mid), p, stride=stride).transpose(1, 2).reshape(-1, 4 * p * p)
        hr_p = F.unfold(hr, p, stride=stride).transpose(1, 2).reshape(-1, p * p)
        mid_p = F.unfold(mid, p, stride=stride).transpose(1, 2).reshape(-1, p * p)
        base = mid_p.mean(1, keepdim=True) if self.residual == "mean" else mid_p
        return feats, hr_p - base

    @torch.no_grad()
    def fit(self, hr_images: Any, scale: int | None = None, n_atoms: int | None = None,
            patch: int | None = None, overlap: int | None = None, sparsity: int | None = None,
            n_iter: int = 20, max_patches: int = 50_000, degradation: str | None = None,
            prune: float = 0.1, refine: bool = True, seed: int = 0) -> SparseCodingSR:
        """Learn the coupled dictionaries from HR training images.

        Each image is cropped to a multiple of the scale, degraded (antialiased bicubic or block
        mean), re-interpolated with bicubic; (feature, HR patch) pairs are sampled, the smoothest
        ``prune`` fraction is dropped (Yang et al. prune low-variance patches), both halves are
        divided by the feature norm, and a joint dictionary is learned by K-SVD. With ``refine``
        the HR dictionary is then re-fitted by least squares to the codes that inference computes
        from the LR features alone (the coupling of Zeyde et al.), which can only lower the
        training error.

        Args:
            hr_images: One array/tensor ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)``, or an
                iterable of such (every channel is a training image).
            scale: Must equal the model's scale (default).
            n_atoms: Dictionary size (default: the constructor's).
            patch: Patch size in HR pixels (default: the constructor's).
            overlap: Patch overlap at inference (default: ``patch - 1``).
            sparsity: Atoms per patch (default: the constructor's).
            n_iter: K-SVD iterations.
            max_patches: Training pairs sampled at most.
            degradation: ``"bicubic"`` (antialiased) or ``"area"`` (block mean) LR simulation.
            prune: Fraction of the smoothest patches dropped.
            refine: Least-squares refit of the HR dictionary on LR-only codes.
            seed: Seed of the patch sampling and dictionary initialization.

        Returns:
            ``self``, fitted.
        """
        if scale is not None and int(scale) != self.scale:
            raise ValueError(f"this model was built for ×{self.scale}; fit(scale={scale}) does not match "
                             f"(build sparse_coding with scale={scale})")
        if degradation is not None:
            if degradation not in ("bicubic", "area"):
                raise ValueError(f"degradation must be 'bicubic' or 'area', got {degradation!r}")
            self.degradation = degradation
        if sparsity is not None:
            self.sparsity = int(sparsity)
        if n_atoms is not None or patch is not None or overlap is not None:
            keep_overlap = None if patch is not None else self.overlap
            self._set_geometry(int(n_atoms or self.n_atoms), int(patch or self.patch),
                               overlap if overlap is not None else keep_overlap)
        gen = torch.Generator().manual_seed(int(seed))
        images = list(_as_images(hr_images))
        s, p = self.scale, self.patch
        feats_l, targ_l = [], []
        for img in images:
            h, w = (img.shape[-2] // s) * s, (img.shape[-1] // s) * s
            if h < max(p, 4 * s) or w < max(p, 4 * s):
                continue
            f, t = self._pairs(img[None, None, :h, :w], self.degradation, 1)
            feats_l.append(f)
            targ_l.append(t)
        if not feats_l:
            raise ValueError(f"no training image is large enough (need ≥ {max(p, 4 * s)} pixels per side "
                             f"after cropping to a multiple of {s})")
        feats, targets = torch.cat(feats_l), torch.cat(targ_l)
        fnorm = feats.norm(dim=1)
        keep = fnorm > 0
        if prune > 0 and keep.any():
            keep &= fnorm >= torch.quantile(fnorm[keep], float(prune))
        feats, targets, fnorm = feats[keep], targets[keep], fnorm[keep]
        if feats.shape[0] > max_patches:
            sel = torch.randperm(feats.shape[0], generator=gen)[:max_patches]
            feats, targets, fnorm = feats[sel], targets[sel], fnorm[sel]
        if feats.shape[0] < self.n_atoms:
            raise ValueError(f"only {feats.shape[0]} training patches for {self.n_atoms} atoms; give more "
                             f"or larger images, or fewer atoms")
        z = feats / fnorm[:, None]
        xh = targets / fnorm[:, None]
        wh = 1.0 / xh.norm(dim=1).pow(2).mean().sqrt().clamp_min(1e-12)  # balance the two halves
        joint = torch.cat([xh * wh, z], 1)
        dic = ksvd(joint, self.n_atoms, self.sparsity, n_iter=n_iter, generator=gen)
        dh, dl = dic[: p * p] / wh, dic[p * p:]
        lnorm = dl.norm(dim=0).clamp_min(1e-12)
        dl = dl / lnorm
        dh = dh / lnorm  # codes on the normalized LR atoms are lnorm times the joint codes
        if refine:
            idx, coef = omp(dl, z, self.sparsity)
            codes = torch.zeros(z.shape[0], self.n_atoms)
            codes.scatter_add_(1, idx.clamp_min(0), coef * (idx >= 0))
            gram = codes.T @ codes
            ridge = 1e-6 * gram.diagonal().mean().clamp_min(1e-12)
            used = gram.diagonal() > 0
            sol = torch.linalg.solve(gram + ridge * torch.eye(self.n_atoms), codes.T @ xh)  # (K, p²)
            dh = torch.where(used[None], sol.T, dh)
        self.dict_lr.copy_(dl)
        self.dict_hr.copy_(dh)
        self.fitted.fill_(1)
        self.config.update({"sparsity": self.sparsity, "degradation": self.degradation})
        return self

    # ------------------------------------------------------------------ inference
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``x`` (then ``back_projection`` steps of iterative back-projection).

        Shape:
            ``(N, C, H, W) -> (N, C, H*scale, W*scale)``.
        """
        if not self.is_fitted:
            raise RuntimeError(
                "sparse_coding has no dictionaries yet: call model.fit(hr_images) first, or load a "
                "fitted state dict (create_model('sparse_coding', pretrained=PATH))"
            )
        y = super().forward(x)
        if self.back_projection:
            kernel = back_projection_kernel(y.dtype, y.device).expand(y.shape[1], 1, 5, 5)
            for _ in range(self.back_projection):
                diff = upsample_bicubic(x - self._down(y, self.degradation), self.scale, self.upsampler)
                y = y + F.conv2d(diff, kernel, padding=2, groups=y.shape[1])
        return y

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p, st = self.patch, self.step
        img = x.reshape(n * c, 1, h, w)
        hp = p if h < p else h + (-(h - p)) % st  # the patch grid covers the whole image
        wp = p if w < p else w + (-(w - p)) % st
        if hp != h or wp != w:
            img = F.pad(img, (0, wp - w, 0, hp - h), mode="replicate")
        dl, dh = self.dict_lr.to(img), self.dict_hr.to(img)
        feats = F.unfold(gradient_features(img), p, stride=st)  # (B, 4p², L)
        mids = F.unfold(img, p, stride=st)  # (B, p², L)
        b, _, n_patch = feats.shape
        feats = feats.transpose(1, 2).reshape(-1, 4 * p * p)
        mids = mids.transpose(1, 2).reshape(-1, p * p)
        outs = []
        tiny = torch.finfo(img.dtype).tiny
        for i in range(0, feats.shape[0], self.chunk):
            f = feats[i : i + self.chunk]
            norm = ((f * f).sum(1, keepdim=True) + tiny).sqrt()
            idx, coef = omp(dl, f / norm, self.sparsity)
            detail = sparse_matmul(dh, idx, coef) * norm
            m = mids[i : i + self.chunk]
            base = m.mean(1, keepdim=True) if self.residual == "mean" else m
            outs.append(detail + base)
        patches = torch.cat(outs).reshape(b, n_patch, p * p).transpose(1, 2)
        acc = F.fold(patches, (hp, wp), p, stride=st)
        cnt = F.fold(torch.ones_like(patches[:1]), (hp, wp), p, stride=st)
        out = acc / cnt
        return out[..., :h, :w].reshape(n, c, h, w)


def _as_images(obj: Any) -> Iterable[torch.Tensor]:
    """Yield 2-D float32 tensors from arrays/tensors of 2-4 dims or iterables of them."""
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        t = torch.as_tensor(np.asarray(obj) if isinstance(obj, np.ndarray) else obj).detach().float().cpu()
        if t.ndim == 2:
            yield t
        elif t.ndim in (3, 4):
            yield from t.reshape(-1, *t.shape[-2:])
        else:
            raise ValueError(f"training images must be 2-D to 4-D, got shape {tuple(t.shape)}")
        return
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
        for item in obj:
            yield from _as_images(item)
        return
    raise TypeError(f"cannot use {type(obj).__name__} as training images")


@register_model(
    "sparse_coding",
    paper=YANG_PAPER,
    tiny={"n_atoms": 16, "patch": 3, "sparsity": 2, "back_projection": 2, "fit_on": "synthetic"},
)
def sparse_coding(scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                  **kw: Any) -> SparseCodingSR:
    """Sparse-coding SR (Yang et al. 2010): coupled dictionaries by K-SVD/OMP; needs ``fit()``."""
    return SparseCodingSR(scale, in_channels, out_channels, **kw)
