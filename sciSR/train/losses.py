"""Training objectives: pixel losses, VGG perceptual and texture losses, adversarial terms and
multi-scale supervision, behind one callable :class:`Objective`.

``build_objective(loss, scale=...)`` turns a loss specification into an :class:`Objective`;
``loss, logs = objective(outputs, hr)`` scores a batch. Terms:

* ``"l1"``, ``"mse"`` (alias ``"l2"``), ``"charbonnier"`` (``mean(sqrt(d² + ε²))``, ε = 1e-3,
  Lai et al. 2017) or any callable ``(sr, hr) -> scalar``: pixel terms, applied to every output.
* ``"perceptual"``: distance between VGG19 features of SR and HR (:mod:`sciSR.train.vgg`; the
  weights come from a file the user passes as ``vgg_weights=``). Default ESRGAN's: ``conv5_4``
  before the activation, L1 (Wang et al. 2018). SRGAN's VGG54 is ``perceptual_layer="relu5_4",
  perceptual_criterion="mse"`` (VGG22: ``"relu2_2"``); SRGAN rescales the features by 1/12.75,
  the same as ``perceptual_weight = 1 / 12.75²`` with MSE.
* ``"texture"``: EnhanceNet's texture loss (Sajjadi et al. 2017): MSE between Gram matrices of VGG
  features over non-overlapping 16×16 windows (:func:`sciSR.models.enhancenet.texture_loss`),
  on ``conv1_1``, ``conv2_1`` and ``conv3_1`` (the layers of EnhanceNet-PAT), each weight 1. The
  paper's absolute weights belong to its un-normalized Gram matrices; the Gram matrices here are
  divided by ``C·h·w``, so ``texture_weight`` is set afresh.
* adversarial (``gan="vanilla"`` for SRGAN, ``"ragan"`` for ESRGAN; :mod:`sciSR.train.adversarial`):
  the generator term, weighted by ``gan_weight``, is part of the returned loss; the discriminator
  is updated separately by :meth:`Objective.discriminator_step`.

Combine terms with ``"+"`` (``"l1+perceptual"``: pixel terms weight 1, ``perceptual_weight``,
``texture_weight``) or a dict of explicit weights (ESRGAN: ``{"l1": 1e-2, "perceptual": 1.0}``,
``gan="ragan", gan_weight=5e-3``; SRGAN: ``{"perceptual": 1 / 12.75**2}`` with
``perceptual_criterion="mse", perceptual_layer="relu5_4", gan="vanilla", gan_weight=1e-3``).

Multi-scale supervision: ``outputs`` may be a list of predictions, coarsest to finest, the last one
the final output (``model.forward_train(lr)`` of LapSRN, MS-LapSRN and DRCN). Each pixel term is
``Σ_i w_i · loss(outputs[i], target_i)`` with ``w = weights`` (default 1 each: the sum over levels
of LapSRN's loss) and ``target_i = hr`` when the output has hr's size, else hr degraded to the
output's size by ``degradation`` (:func:`sciSR.train.degrade.degrade`; the factor must be an
integer dividing ``scale``). DRCN's recursive supervision ``α/D · Σ_d l(y_d) + (1 - α) · l(ŷ)``
is ``weights=[α / D] * D + [1 - α]``; its schedule for α belongs to the caller, which may assign
``objective.weights`` between steps. Perceptual, texture and adversarial terms see the final output
only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.layers.losses import charbonnier_loss
from .adversarial import DISCRIMINATORS, GAN_LOSSES, Adversary
from .degrade import degrade

PixelLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossSpec = str | Mapping[str, float] | PixelLoss


def l1_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute error.

    Shape:
        ``(N, C, H, W), (N, C, H, W) -> ()``.
    """
    return F.l1_loss(sr, hr)


def mse_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean squared error.

    Shape:
        ``(N, C, H, W), (N, C, H, W) -> ()``.
    """
    return F.mse_loss(sr, hr)


#: Pixel losses by name (aliases included).
PIXEL_LOSSES: dict[str, PixelLoss] = {
    "l1": l1_loss,
    "mse": mse_loss,
    "l2": mse_loss,
    "charbonnier": charbonnier_loss,  # sqrt(d² + ε²), ε = 1e-3
}
_ALIASES = {"l2": "mse"}
#: Losses on VGG19 features (need ``vgg_weights=``).
FEATURE_LOSSES: tuple[str, ...] = ("perceptual", "texture")
#: Criteria for the perceptual feature distance.
PERCEPTUAL_CRITERIA: dict[str, PixelLoss] = {"l1": l1_loss, "mse": mse_loss}
#: Layers of EnhanceNet-PAT's texture loss.
TEXTURE_LAYERS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1")


def _names() -> str:
    return ", ".join([*PIXEL_LOSSES, *FEATURE_LOSSES])


def _weight(name: str, value: Any) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the weight of loss term {name!r} must be a number, got {value!r}") from None
    if not math.isfinite(w) or w < 0:
        raise ValueError(f"the weight of loss term {name!r} must be finite and ≥ 0, got {value!r}")
    return w


def parse_loss(loss: LossSpec, perceptual_weight: float = 1.0, texture_weight: float = 1.0
               ) -> list[tuple[str, float, PixelLoss | None]]:
    """Split a loss specification into ``(name, weight, pixel function or None)`` terms.

    Args:
        loss: A name, a ``"+"``-combination of names, a ``{name: weight}`` dict or a callable
            ``(sr, hr) -> scalar`` (named ``"custom"``).
        perceptual_weight: Weight of ``"perceptual"`` when ``loss`` is a string.
        texture_weight: Weight of ``"texture"`` when ``loss`` is a string.

    Returns:
        The terms in the given order; feature terms have no function (``None``).

    Raises:
        ValueError: An unknown or repeated name, an empty specification, a bad weight, or an
            adversarial term named in ``loss`` (that is ``gan=``).
    """
    if callable(loss) and not isinstance(loss, (str, Mapping)):
        return [("custom", 1.0, loss)]
    if isinstance(loss, str):
        parts = [p.strip().lower() for p in loss.split("+")]
        defaults = {"perceptual": perceptual_weight, "texture": texture_weight}
        items = [(p, defaults.get(p, 1.0)) for p in parts]
    elif isinstance(loss, Mapping):
        items = [(str(k).strip().lower(), v) for k, v in loss.items()]
    else:
        raise ValueError(
            f"loss must be a name, a '+'-combination, a {{name: weight}} dict or a callable, got "
            f"{type(loss).__name__}"
        )
    if not items:
        raise ValueError(f"loss names no term; use one or more of {_names()}")
    terms: list[tuple[str, float, PixelLoss | None]] = []
    seen: set[str] = set()
    for name, value in items:
        if name in ("gan", "adversarial", "ragan", "vanilla"):
            raise ValueError(
                f"loss={loss!r} names an adversarial term; set it with gan='vanilla' or gan='ragan' "
                f"and gan_weight="
            )
        if name not in PIXEL_LOSSES and name not in FEATURE_LOSSES:
            raise ValueError(f"unknown loss term {name!r} in loss={loss!r}; choose from {_names()}")
        canon = _ALIASES.get(name, name)
        if canon in seen:
            raise ValueError(f"loss term {canon!r} appears twice in loss={loss!r}")
        seen.add(canon)
        terms.append((canon, _weight(name, value), PIXEL_LOSSES.get(canon)))
    return terms


def _as_layers(layers: str | Sequence[str]) -> list[str]:
    return [layers] if isinstance(layers, str) else list(layers)


class Objective(nn.Module):
    """A weighted sum of loss terms with an optional discriminator (see the module notes).

    Build it with :func:`build_objective`. Calling it returns ``(loss, logs)``: the scalar to
    back-propagate and the unweighted value of each term (``logs["loss"]`` is the total, weighted).

    Attributes:
        weights: Per-output weights for list outputs (None: 1 each); may be reassigned between
            steps (DRCN's α schedule).
        adversary: The :class:`~sciSR.train.adversarial.Adversary`, or None.
    """

    def __init__(self, terms: list[tuple[str, float, PixelLoss | None]], *, scale: int,
                 weights: Sequence[float] | None = None, vgg: nn.Module | None = None,
                 perceptual_layers: Sequence[str] = (), perceptual_criterion: str = "l1",
                 texture_layers: Sequence[str] = (), texture_patch: int = 16,
                 adversary: Adversary | None = None, gan_weight: float = 0.0,
                 degradation: str = "bicubic") -> None:
        super().__init__()
        self.terms = terms
        self.scale = int(scale)
        self.weights = None if weights is None else [float(w) for w in weights]
        self.vgg = vgg
        self.perceptual_layers = list(perceptual_layers)
        self.perceptual_criterion = PERCEPTUAL_CRITERIA[perceptual_criterion]
        self.texture_layers = list(texture_layers)
        self.texture_patch = int(texture_patch)
        self.adversary = adversary
        self.gan_weight = float(gan_weight)
        self.degradation = degradation

    @property
    def adversarial(self) -> bool:
        """True when a discriminator takes part (call :meth:`discriminator_step` each step)."""
        return self.adversary is not None

    @property
    def min_patch(self) -> int:
        """Smallest HR patch side the feature and adversarial terms accept (1 for pixel losses)."""
        sizes = [1]
        if self.vgg is not None:
            sizes.append(self.vgg.min_size())
        if self.adversary is not None:
            sizes.append(self.adversary.spec.min_size)
        return max(sizes)

    def check_patch(self, batch: int, height: int, width: int) -> None:
        """Raise before training when HR patches of this size cannot be scored.

        Raises:
            ValueError: Patches smaller than the VGG layers or the discriminator accept.
        """
        if self.vgg is not None and min(height, width) < self.vgg.min_size():
            m = self.vgg.min_size()
            raise ValueError(
                f"VGG layers {self.vgg.layers} need HR patches of at least {m}×{m} pixels, got "
                f"{height}×{width}; use a larger patch size or shallower layers"
            )
        if self.adversary is not None:
            self.adversary.check_size(batch, height, width)

    # ------------------------------------------------------------------ scoring
    def _targets(self, outs: list[torch.Tensor], hr: torch.Tensor) -> list[torch.Tensor]:
        cache: dict[tuple[int, int], torch.Tensor] = {tuple(hr.shape[-2:]): hr}
        targets = []
        for i, o in enumerate(outs):
            size = tuple(o.shape[-2:])
            if size not in cache:
                fh, fw = hr.shape[-2] / size[0], hr.shape[-1] / size[1]
                if fh != fw or fh != int(fh) or self.scale % int(fh):
                    raise ValueError(
                        f"output {i} is {size[0]}×{size[1]} but HR is {hr.shape[-2]}×{hr.shape[-1]}: "
                        f"intermediate outputs must be HR reduced by an integer factor dividing "
                        f"scale {self.scale}"
                    )
                target = degrade(hr, int(fh), self.degradation)
                if tuple(target.shape[-2:]) != size:
                    raise ValueError(
                        f"degradation {self.degradation!r} reduces HR to {tuple(target.shape[-2:])}, not to "
                        f"output {i}'s {size}; build the objective with degradation='area' or 'bicubic'"
                    )
                cache[size] = target
            targets.append(cache[size])
        return targets

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], hr: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """Score a batch.

        Args:
            outputs: The model's output, or its list of outputs coarsest → finest (final last).
            hr: The HR batch.

        Returns:
            ``(loss, logs)``: scalar fp32 loss with gradients to ``outputs``; ``logs`` maps each
            term's name to its unweighted value (list outputs: the per-output-weighted sum),
            ``"<term>_final"`` to the final output's pixel loss when there are several outputs,
            ``"gan_g"`` to the adversarial term and ``"loss"`` to the total.

        Raises:
            ValueError: An empty output list, a final output whose shape differs from ``hr``, an
                intermediate size that is not ``hr`` reduced by an integer factor dividing the
                scale, or ``weights`` of the wrong length.

        Shape:
            ``(N, C, H, W)`` or ``[(N, C, H / f_i, W / f_i)]``, ``(N, C, H, W) -> ()``.
        """
        outs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
        if not outs:
            raise ValueError("the model returned an empty list of outputs")
        final = outs[-1]
        if tuple(final.shape) != tuple(hr.shape):
            raise ValueError(
                f"final output shape {tuple(final.shape)} differs from the HR batch {tuple(hr.shape)}"
            )
        w = [1.0] * len(outs) if self.weights is None else self.weights
        if len(w) != len(outs):
            raise ValueError(f"weights has {len(w)} entries but the model returned {len(outs)} outputs")
        hr32 = hr.float()
        total = hr32.new_zeros(())
        logs: dict[str, torch.Tensor] = {}
        pixel_terms = [(n, wt, fn) for n, wt, fn in self.terms if fn is not None]
        if pixel_terms:
            targets = self._targets(outs, hr32)
            for name, weight, fn in pixel_terms:
                per_out = [fn(o.float(), t) for o, t in zip(outs, targets, strict=True)]
                value = sum((wi * v for wi, v in zip(w, per_out, strict=True)), hr32.new_zeros(()))
                total = total + weight * value
                logs[name] = value
                if len(outs) > 1:
                    logs[f"{name}_final"] = per_out[-1]
        if self.vgg is not None:
            total = total + self._feature_terms(final.float(), hr32, logs)
        if self.adversary is not None:
            g = self.adversary.generator_loss(final, hr)
            total = total + self.gan_weight * g
            logs["gan_g"] = g
        logs["loss"] = total
        return total, {k: float(v.detach()) for k, v in logs.items()}

    def _feature_terms(self, sr: torch.Tensor, hr: torch.Tensor, logs: dict[str, torch.Tensor]
                       ) -> torch.Tensor:
        from ..models.enhancenet import texture_loss

        self.check_patch(sr.shape[0], *sr.shape[-2:])
        f_sr = self.vgg(sr)
        with torch.no_grad():
            f_hr = self.vgg(hr)
        total = sr.new_zeros(())
        for name, weight, fn in self.terms:
            if fn is not None:
                continue
            if name == "perceptual":
                value = sum((self.perceptual_criterion(f_sr[k].float(), f_hr[k].float())
                             for k in self.perceptual_layers), sr.new_zeros(()))
            else:  # texture
                value = texture_loss([f_sr[k].float() for k in self.texture_layers],
                                     [f_hr[k].float() for k in self.texture_layers], patch=self.texture_patch)
            logs[name] = value
            total = total + weight * value
        return total

    # ------------------------------------------------------------------ discriminator
    def discriminator_step(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        """One update of the discriminator (its own Adam optimizer) on a detached SR batch.

        Returns:
            ``{"d_loss", "d_real", "d_fake"}`` (see :meth:`Adversary.step`).

        Raises:
            RuntimeError: The objective has no adversarial term.

        Shape:
            ``(N, C, H, W), (N, C, H, W) -> {}``.
        """
        if self.adversary is None:
            raise RuntimeError("this objective has no discriminator (build it with gan='vanilla' or 'ragan')")
        if isinstance(sr, (list, tuple)):
            sr = sr[-1]
        return self.adversary.step(sr.detach(), hr)

    def train(self, mode: bool = True) -> Objective:
        """Train/eval mode for the discriminator; the VGG extractor stays in eval mode."""
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()
        return self

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """What an exact resume needs: discriminator weights and its optimizer (``{}`` without one).

        The frozen VGG weights are not included (they come from ``vgg_weights=``).
        """
        return self.adversary.state_dict() if self.adversary is not None else {}

    def load_state_dict(  # type: ignore[override]
        self, state: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Restore what :meth:`state_dict` returned.

        Raises:
            ValueError: Discriminator state for an objective without one, or the reverse.
        """
        if self.adversary is None:
            if state:
                raise ValueError(
                    "this objective has no discriminator but the state holds one; build it with gan="
                )
            return None
        if not state:
            raise ValueError("the state holds no discriminator for this adversarial objective")
        return self.adversary.load_state_dict(dict(state), strict=strict)

    def extra_repr(self) -> str:
        terms = " + ".join(f"{w:g}·{n}" for n, w, _ in self.terms)
        if self.adversary is not None:
            terms += f" + {self.gan_weight:g}·{self.adversary.gan}[{self.adversary.kind}]"
        return f"{terms}, scale={self.scale}, degradation={self.degradation!r}"


def build_objective(
    loss: LossSpec = "l1",
    *,
    scale: int,
    weights: Sequence[float] | None = None,
    vgg_weights: str | Path | None = None,
    gan: str | None = None,
    discriminator: str = "esrgan",
    gan_weight: float = 5e-3,
    perceptual_weight: float = 1.0,
    texture_weight: float = 1.0,
    in_channels: int = 1,
    device: str | torch.device = "cpu",
    lr: float = 1e-4,
    degradation: str = "bicubic",
    perceptual_layer: str | Sequence[str] = "conv5_4",
    perceptual_criterion: str = "l1",
    texture_layers: Sequence[str] = TEXTURE_LAYERS,
    texture_patch: int = 16,
    discriminator_options: dict[str, Any] | None = None,
) -> Objective:
    """Build the training objective (every check happens here, before training starts).

    Args:
        loss: Loss specification (see the module notes).
        scale: The model's scale (intermediate outputs must be HR reduced by a divisor of it).
        weights: Per-output weights for models returning a list (default 1 each).
        vgg_weights: VGG19 weights file (torchvision layout) for ``"perceptual"``/``"texture"``.
        gan: None, ``"vanilla"`` (SRGAN) or ``"ragan"`` (ESRGAN).
        discriminator: ``"srgan"`` or ``"esrgan"``.
        gan_weight: Weight of the generator's adversarial term (ESRGAN: 5e-3; SRGAN: 1e-3).
        perceptual_weight: Weight of ``"perceptual"`` in a string specification.
        texture_weight: Weight of ``"texture"`` in a string specification.
        in_channels: Channels of the images (the discriminator's input).
        device: Device of the VGG extractor and the discriminator.
        lr: Learning rate of the discriminator's Adam optimizer.
        degradation: How HR is reduced to the size of intermediate outputs.
        perceptual_layer: VGG19 layer(s) of the perceptual loss (summed when several).
        perceptual_criterion: ``"l1"`` (ESRGAN) or ``"mse"`` (SRGAN) on the features.
        texture_layers: VGG19 layers of the texture loss.
        texture_patch: Window of the texture loss in feature-map pixels.
        discriminator_options: Keyword arguments of the discriminator class (e.g. ``n_feats``);
            default: the paper's configuration.

    Returns:
        The :class:`Objective`, on ``device``.

    Raises:
        ValueError: A bad loss specification, missing or unusable ``vgg_weights=`` for a feature
            loss, an unknown ``gan``/``discriminator``/criterion/layer/degradation, bad weights or
            a non-positive scale.
    """
    from .degrade import DEGRADATIONS
    from .vgg import check_layers, load_vgg19

    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if degradation not in DEGRADATIONS:
        raise ValueError(f"unknown degradation={degradation!r}; choose one of {', '.join(DEGRADATIONS)}")
    terms = parse_loss(loss, _weight("perceptual", perceptual_weight), _weight("texture", texture_weight))
    if weights is not None:
        weights = [_weight(f"weights[{i}]", w) for i, w in enumerate(weights)]
        if not weights:
            raise ValueError("weights= is empty; give one weight per model output or None")
    if perceptual_criterion not in PERCEPTUAL_CRITERIA:
        raise ValueError(
            f"unknown perceptual_criterion={perceptual_criterion!r}; choose one of "
            f"{', '.join(PERCEPTUAL_CRITERIA)}"
        )
    names = {n for n, _, _ in terms}
    p_layers = check_layers(_as_layers(perceptual_layer), "perceptual_layer") if "perceptual" in names else []
    t_layers = check_layers(_as_layers(texture_layers), "texture_layers") if "texture" in names else []
    if int(texture_patch) < 1:
        raise ValueError(f"texture_patch must be ≥ 1, got {texture_patch!r}")
    vgg = None
    if p_layers or t_layers:
        needs = " and ".join(n for n in FEATURE_LOSSES if n in names)
        vgg = load_vgg19(vgg_weights, list(dict.fromkeys(p_layers + t_layers)), for_what=needs)
    adversary = None
    if gan is not None:
        if gan not in GAN_LOSSES:
            raise ValueError(f"unknown gan={gan!r}; choose one of {', '.join(GAN_LOSSES)} or None")
        if discriminator not in DISCRIMINATORS:
            raise ValueError(
                f"unknown discriminator={discriminator!r}; choose one of {', '.join(DISCRIMINATORS)}"
            )
        adversary = Adversary(gan, discriminator, in_channels=int(in_channels), lr=float(lr),
                              options=discriminator_options)
    obj = Objective(
        terms, scale=int(scale), weights=weights, vgg=vgg, perceptual_layers=p_layers,
        perceptual_criterion=perceptual_criterion, texture_layers=t_layers, texture_patch=texture_patch,
        adversary=adversary, gan_weight=_weight("gan", gan_weight), degradation=degradation,
    )
    return obj.to(device)
