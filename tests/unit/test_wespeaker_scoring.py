"""WeSpeaker's back end (speakerid.scoring.wespeaker, the ``wespeaker`` report section) against
its scripts' formulas, re-written here as they are written there — per trial, in NumPy, on
small hand-made embeddings: score.py, score_norm.py, vector_mean.py,
generate_calibration_trial.py and score_calibration.py (wenet-e2e/wespeaker at dfa7419)."""

import random

import numpy as np
import pytest
import torch

from speakerid.scoring.wespeaker import (
    QMF_MEASURES,
    calibration_trials,
    qmf_measures,
    speaker_means,
    statistics,
    trial_scores,
)

# six evaluation utterances (D=3) and a cohort of eight utterances of four speakers
EMB = np.array(
    [[1.0, 0.2, -0.3], [0.9, 0.1, 0.0], [-0.2, 1.1, 0.4], [0.1, 0.8, 0.6], [0.3, -0.4, 1.2],
     [0.5, 0.5, 0.5]]
)  # fmt: skip
COHORT = np.array(
    [[0.8, 0.0, 0.1], [1.2, 0.3, -0.1], [0.0, 0.9, 0.2], [0.2, 1.3, -0.2], [0.1, 0.1, 1.0],
     [-0.3, 0.2, 0.7], [0.6, -0.8, 0.1], [0.4, -0.5, 0.3]]
)  # fmt: skip
COHORT_SPEAKERS = ["a", "a", "b", "b", "c", "c", "d", "d"]
ENROLL, TEST = [0, 0, 2, 4, 1, 5], [1, 2, 3, 5, 3, 0]


def _reference_scores(emb, cohort_utts, spk, enroll, test, top_n):
    """score.py (cosine of mean-subtracted embeddings), vector_mean.py and score_norm.py."""
    mean_vec = cohort_utts.mean(axis=0)  # calculate_mean_from_kaldi_vec over the training set
    spk_mean = {}
    for s in dict.fromkeys(spk):
        rows = [v for v, t in zip(cohort_utts, spk, strict=True) if t == s]
        spk_mean[s] = sum(rows) / len(rows)
    cohort = np.array(list(spk_mean.values())) - mean_vec
    centred = emb - mean_vec

    def get_mean_std(e, c, n):
        e = e / np.sqrt(np.sum(e**2, axis=1, keepdims=True))
        c = c / np.sqrt(np.sum(c**2, axis=1, keepdims=True))
        top = np.sort(e @ c.T, axis=1)[:, ::-1][:, :n]
        return np.mean(top, axis=1), np.std(top, axis=1)

    mean, std = get_mean_std(centred, cohort, top_n)
    out = []
    for i, j in zip(enroll, test, strict=True):
        a, b = centred[i], centred[j]
        score = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        normed = 0.5 * ((score - mean[i]) / std[i] + (score - mean[j]) / std[j])
        out.append((score, normed, np.linalg.norm(a), np.linalg.norm(b), mean[i], mean[j]))
    return out


def _ours(top_n: int):
    table = torch.tensor(np.vstack([EMB, COHORT]))
    rows = torch.arange(len(EMB), len(EMB) + len(COHORT))
    mean = table[rows].mean(dim=0)
    cohort, names = speaker_means(table[rows], COHORT_SPEAKERS)
    stats = statistics(table, mean, cohort, top_n)
    return stats, names, trial_scores(stats, torch.tensor(ENROLL), torch.tensor(TEST))


@pytest.mark.parametrize("top_n", [2, 3, 300])
def test_mean_subtraction_and_as_norm_follow_wespeaker(top_n: int) -> None:
    stats, names, (cosine, normed) = _ours(top_n)
    reference = _reference_scores(EMB, COHORT, COHORT_SPEAKERS, ENROLL, TEST, top_n)
    assert names == ["a", "b", "c", "d"]
    np.testing.assert_allclose(cosine.numpy(), [r[0] for r in reference], rtol=1e-12)
    np.testing.assert_allclose(normed.numpy(), [r[1] for r in reference], rtol=1e-10)
    np.testing.assert_allclose(stats.magnitude[ENROLL].numpy(), [r[2] for r in reference])
    np.testing.assert_allclose(stats.cohort_mean[TEST].numpy(), [r[5] for r in reference])


def test_as_norm_by_hand() -> None:
    """One trial worked by hand: training mean (0, 0); cohort means (1, 0), (0, 1), (-1, 0);
    e = (1, 1), t = (1, 0): s = 1/√2; e scores the cohort 1/√2, 1/√2, -1/√2 and t 1, 0, -1;
    with all three kept, s' = ((s - μ_e)/σ_e + (s - μ_t)/σ_t) / 2, σ the population std."""
    table = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    cohort = table[2:]
    stats = statistics(table, torch.zeros(2), cohort, 3)
    cosine, normed = trial_scores(stats, torch.tensor([0]), torch.tensor([1]))
    r = 1 / np.sqrt(2)
    e_scores, t_scores = np.array([r, r, -r]), np.array([1.0, 0.0, -1.0])
    e_part = (r - e_scores.mean()) / e_scores.std()
    expected = 0.5 * (e_part + (r - t_scores.mean()) / t_scores.std())
    assert cosine.item() == pytest.approx(r)
    assert normed.item() == pytest.approx(expected, rel=1e-12)


def _reorder(a: float, b: float) -> list[float]:
    """score_calibration.py's reorder_values, written out and read back as there."""
    high, low = max(a, b), min(a, b)
    text = "{:.4f} {:.4f} {:.4f} {:.4f}".format(low, high, high - low, high / low)  # noqa: UP032
    return [float(v) for v in text.split()]


def _file(value: float, decimals: int) -> float:
    """A value as score_norm.py writes it to its score file."""
    return float(f"{value:.{decimals}f}")


def test_the_13_quality_measures_follow_gather_calibration_factors() -> None:
    stats, _, (_, normed) = _ours(3)
    durations = torch.tensor([3.0, 25.0, 7.5, 2.5, 19.0, 40.0] + [5.0] * 8, dtype=torch.float64)
    x = qmf_measures(
        normed, torch.tensor(ENROLL), torch.tensor(TEST), durations, stats.magnitude,
        stats.cohort_mean,
    )  # fmt: skip
    assert x.shape == (len(ENROLL), 13) and len(QMF_MEASURES) == 13
    for k, (i, j) in enumerate(zip(ENROLL, TEST, strict=True)):
        dur = {q: min(float(durations[q]), 20.0) for q in (i, j)}
        mag = {q: _file(float(stats.magnitude[q]), 4) for q in (i, j)}
        mean = {q: _file(float(stats.cohort_mean[q]), 4) for q in (i, j)}
        row = [_file(float(normed[k]), 5)]
        row += _reorder(dur[i], dur[j]) + _reorder(mag[i], mag[j]) + _reorder(mean[i], mean[j])
        np.testing.assert_allclose(x[k], row, rtol=1e-12, atol=1e-12)


def _reference_trials(utt2dur: dict[str, float], seed: int, each_trial_num: int):
    """generate_calibration_trial.py, its random module seeded."""
    random.seed(seed)
    short, long = {}, {}
    for utt, dur in utt2dur.items():
        spk = utt.split("/")[0]
        if 2 < dur < 6:
            short.setdefault(spk, []).append(utt)
        if dur > 6:
            long.setdefault(spk, []).append(utt)
    for spk in list(long):
        if spk not in short:
            long.pop(spk)
    for spk in list(short):
        if spk not in long:
            short.pop(spk)
    spks, out = list(short), []
    for _ in range(each_trial_num // 2):
        enroll_spk = random.choice(spks)
        i = spks.index(enroll_spk)
        non = random.choice(spks[:i] + spks[i + 1 :])
        e, t = random.choices(short[enroll_spk], k=2)
        out += [(e, t, 1), (e, random.choice(short[non]), 0)]
        e = random.choice(short[enroll_spk])
        out += [(e, random.choice(long[enroll_spk]), 1), (e, random.choice(long[non]), 0)]
        e, t = random.choices(long[enroll_spk], k=2)
        out += [(e, t, 1), (e, random.choice(long[non]), 0)]
    return out


def test_calibration_trials_are_generated_as_wespeaker_does() -> None:
    rng = np.random.default_rng(0)
    speakers = [f"id{k}" for k in range(6) for _ in range(7)]
    durations = rng.uniform(1.0, 12.0, len(speakers)).round(2).tolist()
    durations[:7] = [3.0] * 7  # id0: short only, so it is left out
    utts = [f"{s}/v/{k}.wav" for k, s in enumerate(speakers)]
    enroll, test, labels = calibration_trials(durations, speakers, 40, seed=5)
    expected = _reference_trials(dict(zip(utts, durations, strict=True)), 5, 40)
    assert [(utts[e], utts[t], y) for e, t, y in zip(enroll, test, labels, strict=True)] == expected
    assert len(labels) == 120 and sum(labels) == 60
    assert not any(speakers[e] == "id0" for e in enroll)
    assert calibration_trials([3.0, 7.0], ["a", "a"], 10) == ([], [], [])
