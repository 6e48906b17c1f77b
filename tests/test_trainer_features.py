"""The training loop's features on a real photo: exact resume, prefetch workers, EMA, schedules, CSV log,
bf16 autocast with fp32 master weights, checkpoint checks."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

import sciSR
from sciSR.data import sample_path
from sciSR.train import TrainConfig, fit
from sciSR.train.data import load_luma
from sciSR.train.trainer import EMA, learning_rate


@pytest.fixture(scope="module")
def luma() -> np.ndarray:
    return load_luma(sample_path("ladybird_crop.png"))


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return sciSR.create_model("espcn", scale=2, pretrained=False, channels=(16, 8))


def _cfg(**kw) -> TrainConfig:
    base = {
        "steps": 8,
        "batch_size": 4,
        "patch": 32,
        "lr": 3e-3,
        "log_every": 4,
        "threads": 1,
        "precision": "fp32",
        "workers": 0,
        "seed": 3,
    }
    return TrainConfig(**{**base, **kw})


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(luma, tmp_path, monkeypatch) -> None:
    from sciSR.train import trainer as tr

    whole = _net()
    rec_whole = fit(whole, [luma], _cfg(ema=0.9))
    ck = tmp_path / "run.ckpt"
    real_rate = tr.learning_rate

    def interrupted(step: int, config: TrainConfig) -> float:
        if step == 6:
            raise KeyboardInterrupt  # Ctrl-C during step 6; the last checkpoint is from step 4
        return real_rate(step, config)

    monkeypatch.setattr(tr, "learning_rate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(_net(), [luma], _cfg(ema=0.9, checkpoint_every=4), checkpoint=ck)
    monkeypatch.setattr(tr, "learning_rate", real_rate)
    assert torch.load(ck, weights_only=True)["step"] == 4
    resumed = _net(seed=99)  # another start: the checkpoint must restore everything
    rec = fit(resumed, [luma], _cfg(ema=0.9, checkpoint_every=4), checkpoint=ck, resume=True)
    assert [h["step"] for h in rec["history"]] == [4, 8]
    assert _same(resumed, whole)
    assert _same(rec["model"], rec_whole["model"])
    assert not _same(resumed, rec["model"])  # the EMA is its own average


def test_resume_refuses_a_checkpoint_of_other_settings(luma, tmp_path) -> None:
    ck = tmp_path / "a.ckpt"
    fit(_net(), [luma], _cfg(steps=2, log_every=2), checkpoint=ck)
    with pytest.raises(ValueError, match=r"other settings.*batch_size"):
        fit(_net(), [luma], _cfg(steps=2, log_every=2, batch_size=2), checkpoint=ck, resume=True)
    ck.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot resume"):
        fit(_net(), [luma], _cfg(steps=2, log_every=2), checkpoint=ck, resume=True)


def test_prefetch_workers_give_the_same_run(luma) -> None:
    a, b = _net(), _net()
    fit(a, [luma], _cfg(workers=0))
    fit(b, [luma], _cfg(workers=3))
    assert _same(a, b)


def test_ema_is_the_running_average_and_is_what_is_returned(luma) -> None:
    net = _net()
    ema = EMA(net, 0.5)
    w0 = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net, step=100)  # decay min(0.5, 101/110) = 0.5
    for p_e, p0 in zip(ema.model.parameters(), w0, strict=True):
        torch.testing.assert_close(p_e, p0 + 0.5)
    rec = fit(_net(), [luma], _cfg(ema=0.99))
    assert rec["model"] is not None and not _same(rec["model"], _net())


def test_schedules_and_warmup() -> None:
    c = TrainConfig(steps=100, lr=1e-3, schedule="step", milestones=(10, 20), gamma=0.5)
    assert [learning_rate(t, c) for t in (10, 11, 20, 21)] == [1e-3, 5e-4, 5e-4, 2.5e-4]
    c = TrainConfig(steps=100, lr=1e-3, schedule="step")  # default milestones at 50% and 75%
    assert [learning_rate(t, c) for t in (50, 51, 76)] == [1e-3, 5e-4, 2.5e-4]
    c = TrainConfig(steps=10, lr=1e-3, lr_min=0.0, schedule="cosine", warmup=4)
    assert learning_rate(2, c) == pytest.approx(0.5 * 0.5 * 1e-3 * (1 + math.cos(math.pi / 10)))
    assert learning_rate(10, TrainConfig(steps=10, schedule="constant", lr=2e-4)) == 2e-4
    with pytest.raises(ValueError, match="unknown schedule"):
        fit(_net(), [np.zeros((64, 64), np.float32)], TrainConfig(schedule="linear"))


def test_csv_log_holds_every_record(luma, tmp_path) -> None:
    out = tmp_path / "w.safetensors"
    rec = fit(_net(), [luma[:, :160]], _cfg(), val_images=[luma[:, 160:]], out=out)
    rows = list(csv.DictReader((tmp_path / "w.csv").open()))
    assert [int(r["step"]) for r in rows] == [h["step"] for h in rec["history"]] == [4, 8]
    assert float(rows[-1]["psnr"]) == pytest.approx(rec["history"][-1]["psnr"])
    assert float(rows[-1]["ssim"]) > 0 and float(rows[-1]["patches_per_s"]) > 0


def test_bf16_autocast_keeps_fp32_master_weights_and_learns_like_fp32(luma) -> None:
    runs = {}
    for precision in ("bf16", "fp32"):
        net = _net()
        cfg = _cfg(precision=precision, steps=60, log_every=30, lr=3e-3)
        runs[precision] = fit(net, [luma[:, :160]], cfg, val_images=[luma[:, 160:]])
        assert all(p.dtype == torch.float32 for p in net.parameters())
    bf, fp = runs["bf16"], runs["fp32"]
    assert bf["precision"] == "bf16" and fp["precision"] == "fp32"
    assert bf["history"][-1]["loss"] < 0.7 * bf["history"][0]["loss"]
    assert abs(bf["history"][-1]["psnr"] - fp["history"][-1]["psnr"]) < 1.0


def test_save_checkpoint_is_loadable_without_unpickling_code(luma, tmp_path) -> None:
    ck = tmp_path / "c.ckpt"
    fit(_net(), [luma], _cfg(steps=2, log_every=2, ema=0.9), checkpoint=ck)
    obj = torch.load(ck, weights_only=True)
    assert obj["step"] == 2 and "optimizer" in obj and obj["ema"] is not None
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]  # written through a temporary file, renamed


def test_an_interrupted_run_leaves_no_weights_and_no_log(luma, tmp_path, monkeypatch) -> None:
    from sciSR.train import trainer as tr

    real_rate = tr.learning_rate

    def interrupted(step: int, config: TrainConfig) -> float:
        if step == 3:
            raise KeyboardInterrupt
        return real_rate(step, config)

    monkeypatch.setattr(tr, "learning_rate", interrupted)
    out = tmp_path / "w.safetensors"
    with pytest.raises(KeyboardInterrupt):
        fit(_net(), [luma], _cfg(log_every=1), out=out)
    assert list(tmp_path.iterdir()) == []
    # with a checkpoint the log stays beside it, for the resumed run to append to
    with pytest.raises(KeyboardInterrupt):
        fit(_net(), [luma], _cfg(log_every=1, checkpoint_every=1), out=out, checkpoint=tmp_path / "c.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ckpt", "w.csv"]
