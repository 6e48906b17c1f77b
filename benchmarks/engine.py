"""Engine throughput on the path users take: ``sciSR.downscale`` with default arguments.

Table 1 compares, at ×4 on a ``size × size`` input and in one process, a plain fp32
``model(x)`` call (``torch.inference_mode``, the module as built) with ``sciSR.downscale``:

* ``default``: ``sciSR.downscale(x, model=m, scale=4)``, nothing else set (precision, tile size,
  normalization and device all automatic);
* ``fp32``: the same with ``precision="fp32"``;
* ``tile=0``: the same with tiling switched off, so ``default / tile=0`` is the overhead of the
  default tiler path on an input that fits one tile;
* ``whole bf16``: the model entirely under bf16 autocast with channels_last (no fp32 image layers),
  which quantizes outputs (see ``benchmarks/precision.py``) but shows what bf16 can gain on this
  CPU at most: ``whole bf16 / default`` is the price of fp32-grade outputs.

The speed-up column is plain fp32 time / default time. ESPCN uses its shipped weights, EDSR-baseline
and RCAN random weights (speed does not depend on the values). Table 2 gives the default tile per
model, the work ratio it implies on a large input, and the timed overhead of tiling a large input.

Run:  python benchmarks/engine.py [--size 96] [--repeat 3]
Ratios are taken within one run on one machine; absolute numbers vary between machines, and
bf16 gains depend on the CPU (AMX or AVX512-BF16); the header prints what this one has.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

import sciSR
from sciSR.engine import cpu_has_fast_bf16
from sciSR.pipeline import Pipeline
from sciSR.precision import release_fp32


def interleaved_best(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Best-of-``repeat`` time of each function, runs interleaved so machine noise hits all alike."""
    for fn in fns:
        fn()  # warm-up (oneDNN primitives, caches)
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _model(name: str, scale: int) -> torch.nn.Module | str:
    if name == "espcn":
        return "espcn"  # shipped weights, by name, exactly as a user calls it
    torch.manual_seed(0)
    return sciSR.create_model(name, scale=scale, in_channels=1, pretrained=False).eval()


def engine_table(size: int, repeat: int, scale: int = 4) -> None:
    x = np.random.default_rng(0).random((size, size)).astype(np.float32)
    mp = (size * scale) ** 2 / 1e6
    print(f"\nsciSR.downscale vs plain fp32 model(x), ×{scale}, {size}×{size} input, output MP/s")
    print(
        f"{'model':14} {'auto runs':>9} {'plain fp32':>11} {'default':>9} {'fp32':>9} {'tile=0':>9} "
        f"{'whole bf16':>10} {'default/plain':>14} {'whole bf16/plain':>17} {'tiler overhead':>15}"
    )
    for name in ("espcn", "edsr_baseline", "rcan"):
        model = _model(name, scale)
        net = sciSR.create_model("espcn", scale=scale) if model == "espcn" else model
        xt = torch.from_numpy(x)[None, None]

        def plain(net=net, xt=xt) -> object:
            with torch.inference_mode():
                return net(xt)

        def default(model=model) -> object:
            return sciSR.downscale(x, model=model, scale=scale)

        def fp32(model=model) -> object:
            return sciSR.downscale(x, model=model, scale=scale, precision="fp32")

        def whole(model=model) -> object:
            return sciSR.downscale(x, model=model, scale=scale, tile=0)

        ceiling = Pipeline.build(model, scale, precision="bf16", tile=0, progress=False)
        release_fp32(ceiling.model)
        xb = x[None, None]

        def whole_bf16(p=ceiling, xb=xb) -> object:
            return p.run(xb, p.fit(xb))

        t_plain, t_def, t32, t0, tw = interleaved_best([plain, default, fp32, whole, whole_bf16], repeat)
        runs = Pipeline.build(model, scale).engine.precision
        print(
            f"{name:14} {runs:>9} {mp / t_plain:11.3f} {mp / t_def:9.3f} {mp / t32:9.3f} {mp / t0:9.3f} "
            f"{mp / tw:10.3f} {t_plain / t_def:13.2f}× {t_plain / tw:16.2f}× {100 * (t_def / t0 - 1):14.1f}%",
            flush=True,
        )


def tiling_table(size: int, timed: tuple[str, ...], scale: int = 4, big: int = 4096) -> None:
    """Default tile per model, the work ratio it implies on a ``big``² input, and timed overhead.

    The work ratio (LR pixels the windows process / LR pixels) is what tiling costs beyond
    whole-image inference; the timed rows check it on a ``size``² input, which must exceed the
    default tile for tiling to happen at all.
    """
    rng = np.random.default_rng(1)
    print(f"\nTiling at the default tile size, ×{scale}, default precision")
    print(
        f"{'model':15} {'halo':>5} {'tile':>6} {'window':>7} {f'work {big}²':>11} "
        f"{'timed size':>11} {'whole s':>9} {'tiled s':>9} {'overhead':>9} {'max |diff|':>11}"
    )
    for name in ("espcn", "edsr_baseline", "rcan"):
        torch.manual_seed(0)
        m = sciSR.create_model(name, scale=scale, in_channels=1, pretrained=False).eval()
        tiled = Pipeline.build(m, scale, norm=None, progress=False)
        tiler = tiled.tiler_for(big, big)
        win = tiler.window_size(big, big)[0]
        work = len(tiler.windows(big, big)) * win**2 / big**2
        row = f"{name:15} {tiled.halo:5d} {tiler.tile:6d} {win:7d} {work:10.3f}×"
        if name in timed:
            x = rng.random((1, 1, size, size)).astype(np.float32)
            whole = Pipeline.build(m, scale, tile=0, norm=None, progress=False)
            tw, tt = interleaved_best(
                [lambda p=whole, x=x: p.run(x, p.fit(x)), lambda p=tiled, x=x: p.run(x, p.fit(x))], 1
            )
            d = np.abs(whole.run(x, whole.fit(x)) - tiled.run(x, tiled.fit(x))).max()
            row += f" {size:10d}² {tw:9.2f} {tt:9.2f} {100 * (tt / tw - 1):8.1f}% {d:11.2e}"
        print(row, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tiling-size", type=int, default=1400, help="timed tiling input (> default tile)")
    ap.add_argument("--timed", default="", help="comma-separated models timed for tiling (slow)")
    args = ap.parse_args()
    print(
        f"CPU: {cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"fast bf16: {cpu_has_fast_bf16()}"
    )
    engine_table(args.size, args.repeat)
    tiling_table(args.tiling_size, tuple(args.timed.split(",")) if args.timed else ())


if __name__ == "__main__":
    main()
