"""Quickstart on plain arrays: baselines, a shipped learned model, masks and tiles.

Run:  python examples/arrays_quickstart.py
"""

import numpy as np

import sciSR

rng = np.random.default_rng(0)
field = rng.random((2, 40, 52)).astype(np.float32)  # e.g. two time steps of a 40×52 grid
field[0, 5:9, 10:20] = np.nan  # a masked region (land, nodata...)

print("models:", ", ".join(sciSR.list_models()))

hr = sciSR.downscale(field, model="bicubic", scale=4)
print("bicubic:", field.shape, "->", hr.shape, hr.dtype, "| NaN cells carried:", int(np.isnan(hr).sum()))

# the shipped ESPCN (trained by recipes/pretrain on the photo training pool), tiled
hr = sciSR.downscale(field, model="espcn", scale=4, tile=16, norm="minmax")
print("espcn tiled:", hr.shape, "| finite:", int(np.isfinite(hr).sum()))

# any architecture, randomly initialised on purpose, with its spec
m = sciSR.create_model("edsr_baseline", scale=2, in_channels=1, pretrained=False)
print("edsr_baseline spec: receptive field", m.spec.receptive_field, "LR px, params", m.spec.params)
