"""The parts the published recipes need: WeSpeaker's LR and margin schedules (golden values
from their formulas), SpeechBrain's cyclic LR (against speechbrain's own scheduler), the one-of
augmentation chain and per-crop speed classes."""

import math

import numpy as np
import pytest
import torch
from speechbrain.nnet.schedulers import CyclicLRScheduler

from speakerid.data.augment import AdditiveNoise, OneOf, Reverb
from speakerid.data.datasets import CropDataset
from speakerid.losses import AamSoftmax, MarginSchedule
from speakerid.systems.schedules import Cyclic, ExponentialDecay


def _rates(schedule, steps: int, total: int, lr: float = 1.0) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = schedule(opt, total_steps=total)["scheduler"]
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_exponential_decay_is_wespeakers() -> None:
    """WeSpeaker's ExponentialDecrease for 150 epochs x 100 steps, batch 128 on one device
    (scale_ratio = 1 x 128 / 64 = 2), 6 warm-up epochs from zero."""
    schedule = ExponentialDecay(0.1, 5e-5, warmup_epochs=6, epochs=150, batch_size=128)
    rates = _rates(schedule, 15000, total=15000, lr=0.1)
    decay = math.log(5e-5 / 0.1)
    assert rates[0] == 0.0
    assert rates[300] == pytest.approx(2 * (300 / 600) * 0.1 * math.exp(300 / 15000 * decay))
    assert rates[600] == pytest.approx(2 * 0.1 * math.exp(600 / 15000 * decay))
    assert rates[14999] == pytest.approx(2 * 0.1 * math.exp(14999 / 15000 * decay))
    assert max(rates) == pytest.approx(rates[600], rel=1e-3)  # the peak is the warm-up's end


def test_cyclic_is_speechbrains() -> None:
    """The rate at every step equals what speechbrain's CyclicLRScheduler sets (it moves the
    rate after each batch), over two and a half cycles."""
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    reference = CyclicLRScheduler(base_lr=1e-8, max_lr=1e-3, step_size=20)
    expected = []
    for _ in range(100):
        expected.append(opt.param_groups[0]["lr"])
        reference.on_batch_end(opt)
    ours = _rates(Cyclic(base_lr=1e-8, step_size=20), 100, total=100, lr=1e-3)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-12)


class _Trainer:
    max_epochs, estimated_stepping_batches, global_step = 60, 6000, 0


class _System:
    def __init__(self) -> None:
        self.loss = AamSoftmax(4, 3, margin=0.2)


def test_margin_schedule_by_epochs() -> None:
    """WeSpeaker's MarginScheduler: 0 until epoch 20, exponential rise, 0.2 from epoch 40."""
    schedule, trainer, system = MarginSchedule(0.0, 20, 40), _Trainer(), _System()
    schedule.on_fit_start(trainer, system)
    seen = {}
    for step in (0, 1899, 1900, 2400, 3899, 3900, 5999):  # 100 steps per epoch
        trainer.global_step = step
        schedule.on_train_batch_start(trainer, system, None, 0)
        seen[step] = system.loss.margin
    ratio = 1 - math.exp((500 / 2000) * math.log(1e-3 / (1 + 1e-6)))  # WeSpeaker's curve
    assert seen[0] == seen[1899] == seen[1900] == 0.0
    assert seen[2400] == pytest.approx(0.2 * ratio)
    assert seen[3899] < 0.2 and seen[3900] == seen[5999] == 0.2
    assert MarginSchedule(0.5, 1, 1, final=0.5).margin_at(0) == 0.5  # the LM stage: fixed


def test_one_of_applies_one_step_with_its_probability() -> None:
    wav = np.sin(np.arange(16000, dtype=np.float32) / 7) * 0.1
    rng = np.random.default_rng(0)
    assert OneOf([AdditiveNoise(probability=1.0)], probability=0.0)(wav, rng) is wav
    noise, reverb = AdditiveNoise(probability=1.0, normalize="peak"), Reverb(probability=1.0)
    chain = OneOf([noise, reverb], probability=0.6)
    changed = [not np.array_equal(chain(wav, rng), wav) for _ in range(400)]
    assert 0.5 < np.mean(changed) < 0.7
    peak = OneOf([noise], 1.0)(wav, rng)
    assert abs(np.abs(peak).max() - 1.0) < 1e-3  # WeSpeaker's normalization to peak 1


def test_random_speed_classes(tmp_path) -> None:
    """Each crop draws a speed; speed k shifts the class by k x speakers (WeSpeaker)."""
    import soundfile as sf

    path = tmp_path / "a.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32), 16000)
    dataset = CropDataset(
        [path] * 2, [32000] * 2, [0, 1], 8000, 16000,
        random_speeds=[1.0, 0.9, 1.1], speed_class_offset=2,
    )  # fmt: skip
    labels = [dataset[(i % 2, seed)][1] for i, seed in enumerate(range(300))]
    assert len(dataset) == 2 and set(labels) == {0, 1, 2, 3, 4, 5}
    assert all(len(dataset[(0, s)][0]) == 8000 for s in range(5))
