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


def tiling_table(size: int, repeat: int, scale: int = 4) -> None:
    rng = np.random.default_rng(1)
    x = rng.random((1, 1, size, size)).astype(np.float32)
    print(f"\nTiling overhead, ×{scale}, {size}×{size} input, precision auto (seconds; ratio tiled/whole)")
    print(
        f"{'model':15} {'halo':>5} {'default tile':>13} {'whole s':>9} {'tiled s':>9} {'overhead':>9} "
        f"{'max |diff|':>11}"
    )
    for name in ("espcn", "edsr_baseline", "rcan"):
        torch.manual_seed(0)
        m = sciSR.create_model(name, scale=scale, in_channels=1, pretrained=False).eval()
        whole = Pipeline.build(m, scale, tile=0, norm=None, progress=False)
        tiled = Pipeline.build(m, scale, tile=None, norm=None, progress=False)
        tile = tiled.tiler_for(size, size).tile
        tw, tt = interleaved_best(
            [lambda p=whole: p.run(x, p.fit(x)), lambda p=tiled: p.run(x, p.fit(x))], repeat
        )
        d = np.abs(whole.run(x, whole.fit(x)) - tiled.run(x, tiled.fit(x))).max()
        print(
            f"{name:15} {tiled.halo:5d} {tile:13d} {tw:9.2f} {tt:9.2f} {100 * (tt / tw - 1):8.1f}% {d:11.2e}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--tiling-size", type=int, default=384)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    engine_table(args.size, args.repeat)
    tiling_table(args.tiling_size, max(1, args.repeat - 1))


if __name__ == "__main__":
    main()
