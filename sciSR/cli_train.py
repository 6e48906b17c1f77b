"""``scisr train`` and ``scisr finetune``: the training API on the command line.

Both write a safetensors file (``-o``) holding the weights, the normalization they expect and the
training record, plus a CSV log beside it; ``--checkpoint``/``--resume`` make long runs restartable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

TRAIN_OPTIONS: list[Callable[[Any], Any]] = [
    click.option("-m", "--model", required=True, help="Registry name (see `scisr models`)."),
    click.option("-s", "--scale", type=click.IntRange(min=1), default=4, show_default=True),
    click.option(
        "-o", "--out", type=click.Path(path_type=Path), required=True, help="Output .safetensors file."
    ),
    click.option("--steps", type=click.IntRange(min=1), help="Optimizer steps."),
    click.option("--batch-size", type=click.IntRange(min=1), help="Patches per step."),
    click.option("--patch", type=click.IntRange(min=1), help="HR patch side (multiple of the scale)."),
    click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Peak learning rate."),
    click.option("--loss", help="l1, mse, charbonnier, perceptual, texture or a '+' combination."),
    click.option(
        "--vgg-weights", type=click.Path(path_type=Path), help="VGG19 weights for perceptual losses."
    ),
    click.option("--gan", type=click.Choice(["vanilla", "ragan"]), help="Adversarial training."),
    click.option("--ema", type=click.FloatRange(0, 1, max_open=True), help="EMA decay (0 = off)."),
    click.option("--schedule", type=click.Choice(["cosine", "step", "constant"]), help="LR schedule."),
    click.option("--channels", type=click.IntRange(min=1), help="Model input channels (default 1)."),
    click.option("-v", "--variable", "variables", multiple=True, help="Dataset variable (repeatable)."),
    click.option("--axis", type=int, help="NIfTI slicing axis."),
    click.option("--norm", type=click.Choice(["global", "per_field"]), help="Normalization of the data."),
    click.option("--no-augment", is_flag=True, help="No flips/rotations (oriented or anisotropic data)."),
    click.option("--precision", help="auto|fp32|bf16|fp16."),
    click.option("--device", help="auto|cpu|cuda[:N]."),
    click.option("--workers", type=click.IntRange(min=0), help="Batch-building threads."),
    click.option("--seed", type=int, help="Random seed."),
    click.option("--checkpoint", type=click.Path(path_type=Path), help="Resumable checkpoint file."),
    click.option("--resume", is_flag=True, help="Continue from --checkpoint."),
]


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(TRAIN_OPTIONS):
        f = option(f)
    return click.option("--debug", is_flag=True, expose_value=False, help="Show full tracebacks on errors.")(
        f
    )


def _common(kw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "scale": kw.pop("scale"),
        "out": kw.pop("out"),
        "variables": list(kw.pop("variables")) or None,
        "checkpoint": kw.pop("checkpoint"),
        "resume": kw.pop("resume"),
        "progress": True,
    }
    if kw.pop("no_augment"):
        out["augment"] = False
    for key in ("vgg_weights",):
        if kw.get(key) is not None:
            kw[key] = str(kw[key])
    out.update({k: v for k, v in kw.items() if v is not None})
    return out


def register(group: click.Group) -> None:
    """Add ``train`` and ``finetune`` to the ``scisr`` command group."""

    @group.command("train")
    @click.argument("data", nargs=-1, required=True)
    @_options
    @click.option("--degradation", default="bicubic", show_default=True, help="LR maker.")
    def train_cmd(data: tuple[str, ...], model: str, **kw: Any) -> None:
        """Train MODEL from scratch on DATA (DIV2K folder, image folder/files, NetCDF/GeoTIFF/NIfTI)."""
        import sciSR.train

        src: Any = data[0] if len(data) == 1 else list(data)
        net = sciSR.train.train(model, src, **_common(kw))
        _report(net)

    @group.command("finetune")
    @click.argument("data", nargs=-1, required=True)
    @_options
    @click.option("--degradation", default="area", show_default=True, help="LR maker.")
    @click.option("-w", "--weights", help="Starting weights: a shipped tag or a file (default: shipped).")
    def finetune_cmd(data: tuple[str, ...], model: str, **kw: Any) -> None:
        """Fine-tune MODEL's shipped weights on DATA (domain fields, with block-mean LR by default)."""
        import sciSR.train

        src: Any = data[0] if len(data) == 1 else list(data)
        net = sciSR.train.finetune(model, src, **_common(kw))
        _report(net)


def _report(net: Any) -> None:
    rec = getattr(net, "training_record", {}) or {}
    hist = rec.get("history") or []
    last = hist[-1] if hist else {}
    parts = [f"{rec.get('config', {}).get('steps', '?')} steps in {rec.get('seconds', 0.0):.1f} s"]
    if "psnr" in last:
        parts.append(f"validation PSNR {last['psnr']:.2f} dB (bicubic {last['psnr_bicubic']:.2f} dB)")
    click.echo("trained: " + ", ".join(parts), err=True)
