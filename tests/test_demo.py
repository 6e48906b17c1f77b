"""`scisr demo`: the README's main job runs on the shipped samples and its scores make sense."""

from __future__ import annotations

import json

import numpy as np

import sciSR
from sciSR.data import list_samples
from sciSR.demo import block_mean, learned_models, run_demo


def test_block_mean_is_conservative() -> None:
    f = np.random.default_rng(0).random((8, 12))
    lr = block_mean(f, 4)
    assert lr.shape == (2, 3)
    assert sciSR.metrics.conservation_error(np.kron(lr, np.ones((4, 4))), lr, 4) < 1e-12
    assert abs(lr.mean() - f.mean()) < 1e-12


def test_demo_writes_refined_files_figures_and_sane_scores(tmp_path) -> None:
    records = run_demo(tmp_path, scale=2, log=lambda _m: None)
    samples = list_samples()
    assert len(samples) >= 4
    for name in samples:
        stem = name.split(".")[0]
        ext = name[len(stem) :]
        out = tmp_path / f"{stem}_x2{ext}"
        assert out.exists(), f"no output for {name}"
        ref = sciSR.open(sciSR.data.sample_path(name))
        got = sciSR.open(out)
        assert max(got.sizes.values()) == 2 * max(ref.sizes.values())  # the largest (spatial) dim doubled
        assert (tmp_path / f"{stem}_x2_demo.png").stat().st_size > 10_000
        by_model = {r["model"]: r for r in records if r["sample"] == name}
        # on real fields, bicubic beats pixel replication
        assert by_model["bicubic"]["rmse"] < by_model["nearest"]["rmse"], name
        for m in learned_models(2):
            assert np.isfinite(by_model[m]["rmse"])
    saved = json.loads((tmp_path / "report.json").read_text())
    assert len(saved) == len(records)
    assert "| bicubic |" in (tmp_path / "report.md").read_text()
