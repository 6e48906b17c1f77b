"""Engine throughput: plain fp32 ``model(x)`` vs. the sciSR engine at fp32 and at ``precision="auto"``.

Prints output megapixels per second for espcn, edsr_baseline and rcan at ×4 on a 96×96 input,
the speed-up of the default (auto) engine path over the plain call, and the PSNR of the auto
output against the fp32 output (data range of the fp32 output). A second table measures the
tiling overhead: whole-image inference vs. the default tile size on a larger input.

Run:  python benchmarks/engine.py [--size 96] [--repeat 3]
Ratios are taken within one run on one machine; absolute numbers vary between machines.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import sciSR
from sciSR.metrics import psnr
from sciSR.pipeline import Pipeline


def interleaved_best(fns: list, repeat: int) -> list[float]:
    """Best-of-``repeat`` time of each function, runs interleaved so machine noise hits all alike."""
    for fn in fns:
        fn()  # warm-up
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def engine_table(size: int, repeat: int, scale: int = 4) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((1, 1, size, size)).astype(np.float32)
    mp = (size * scale) ** 2 / 1e6
    print(
        f"\nEngine throughput, ×{scale}, {size}×{size} input, {torch.get_num_threads()} threads (output MP/s)"
    )
    print(
        f"{'model':15} {'plain fp32':>11} {'engine fp32':>12} {'engine auto':>12} {'auto/plain':>11} "
        f"{'PSNR auto vs fp32':>18}"
    )
    for name in ("espcn", "edsr_baseline", "rcan"):
        torch.manual_seed(0)
        m = sciSR.create_model(name, scale=scale, in_channels=1, pretrained=False).eval()
        xt = torch.from_numpy(x)

        def plain(m=m, xt=xt):
            with torch.no_grad():
                return m(xt)

        p32 = Pipeline.build(m, scale, tile=0, precision="fp32", norm=None, progress=False)
        y32 = p32.run(x, p32.fit(x))
        pa = Pipeline.build(
            sciSR.create_model(name, scale=scale, in_channels=1, pretrained=False).eval(),
            scale,
            tile=0,
            precision="auto",
            norm=None,
            progress=False,
        )
        pa.model.load_state_dict(m.state_dict())
        ya = pa.run(x, pa.fit(x))
        t_plain, t32, tauto = interleaved_best(
            [plain, lambda p=p32: p.run(x, p.fit(x)), lambda p=pa: p.run(x, p.fit(x))], repeat
        )
        print(
            f"{name:15} {mp / t_plain:11.3f} {mp / t32:12.3f} {mp / tauto:12.3f} {t_plain / tauto:10.2f}× "
            f"{psnr(ya, y32):15.1f} dB   (auto = {pa.engine.precision})"
        )


def tiling_table(size: int, repeat: int, timed: tuple[str, ...], scale: int = 4, big: int = 4096) -> None:
    """Default tile per model, the work ratio it implies on a ``big``² input, and timed overhead.

    The work ratio (LR pixels the windows process / LR pixels) is what tiling costs beyond
    whole-image inference; the timed rows check it on a ``size``² input, which must exceed the
    default tile for tiling to happen at all.
    """
    rng = np.random.default_rng(1)
    print(f"\nTiling at the default tile size, ×{scale}, precision auto")
    print(
        f"{'model':15} {'halo':>5} {'tile':>6} {'window':>7} {f'work {big}²':>11} "
        f"{'timed size':>11} {'whole s':>9} {'tiled s':>9} {'overhead':>9} {'max |diff|':>11}"
    )
    for name in ("espcn", "edsr_baseline", "rcan"):
        torch.manual_seed(0)
        m = sciSR.create_model(name, scale=scale, in_channels=1, pretrained=False).eval()
        tiled = Pipeline.build(m, scale, tile=None, norm=None, progress=False)
        tiler = tiled.tiler_for(big, big)
        win = tiler.window_size(big, big)[0]
        work = len(tiler.windows(big, big)) * win**2 / big**2
        row = f"{name:15} {tiled.halo:5d} {tiler.tile:6d} {win:7d} {work:10.3f}×"
        if name in timed:
            x = rng.random((1, 1, size, size)).astype(np.float32)
            whole = Pipeline.build(m, scale, tile=0, norm=None, progress=False)
            tw, tt = interleaved_best(
                [lambda p=whole, x=x: p.run(x, p.fit(x)), lambda p=tiled, x=x: p.run(x, p.fit(x))], repeat
            )
            d = np.abs(whole.run(x, whole.fit(x)) - tiled.run(x, tiled.fit(x))).max()
            row += f" {size:10d}² {tw:9.2f} {tt:9.2f} {100 * (tt / tw - 1):8.1f}% {d:11.2e}"
        print(row, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--tiling-size", type=int, default=1400, help="timed tiling input (> default tile)")
    ap.add_argument("--timed", default="edsr_baseline", help="comma-separated models timed for tiling")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    engine_table(args.size, args.repeat)
    tiling_table(args.tiling_size, 1, tuple(args.timed.split(",")) if args.timed else ())


if __name__ == "__main__":
    main()
