"""Operating thresholds and their speaker bootstrap, against a hand computation: plain loops
over the candidate thresholds, the documented resampling draws and the percentile formula."""

import numpy as np
import pytest

from speakerid.metrics.bootstrap import enough_trials, operating_thresholds, speaker_bootstrap


def _by_hand(scores: np.ndarray, labels: np.ndarray, far: float) -> tuple[float, float]:
    """(EER threshold, threshold at ``far``) from their definitions, one candidate at a time.

    The rates are computed as 1 - (non-targets at or below) / non-targets and (targets at or
    below) / targets in float64: equal gaps between them (0.025 above and below) then break
    the same way as in any float64 implementation of those formulas."""
    candidates = sorted(set(scores.tolist()))
    target, other = scores[labels == 1].tolist(), scores[labels == 0].tolist()
    p_fa = [1.0 - sum(x <= t for x in other) / len(other) for t in candidates]
    p_miss = [sum(x <= t for x in target) / len(target) for t in candidates]
    gaps = [abs(fa - miss) for fa, miss in zip(p_fa, p_miss, strict=True)]
    eer = candidates[gaps.index(min(gaps))]
    at_far = next(t for t, fa in zip(candidates, p_fa, strict=True) if fa <= far)
    return eer, at_far


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q / 100 * (len(ordered) - 1)
    low = int(np.floor(position))
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def _trials(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5 speakers, 12 trials each (4 target, 8 non-target); each speaker's scores shifted."""
    rng = np.random.default_rng(seed)
    speakers = np.repeat(np.array(["s0", "s1", "s2", "s3", "s4"]), 12)
    labels = np.tile(np.r_[np.ones(4), np.zeros(8)].astype(int), 5)
    shift = np.repeat(rng.normal(0, 0.15, 5), 12)
    scores = np.round(np.where(labels == 1, 0.7, 0.2) + shift + rng.normal(0, 0.1, 60), 3)
    return scores, labels, speakers


def test_operating_thresholds_match_their_definitions() -> None:
    scores, labels, _ = _trials()
    points = operating_thresholds(scores, labels, [0.07, 0.25])
    eer, at_far = _by_hand(scores, labels, 0.07)
    assert points["eer"] == pytest.approx(eer)
    assert points["far@0.07"] == pytest.approx(at_far)
    assert points["far@0.25"] == pytest.approx(_by_hand(scores, labels, 0.25)[1])


def test_speaker_bootstrap_is_the_hand_computed_percentile_interval() -> None:
    scores, labels, speakers = _trials()
    got = speaker_bootstrap(scores, labels, speakers, [0.07], resamples=40, seed=7)
    rng = np.random.default_rng(7)
    names = sorted(set(speakers.tolist()))
    eers, fars = [], []
    for _ in range(40):
        draw = rng.integers(len(names), size=len(names))
        rows = [i for g in draw for i in range(len(scores)) if speakers[i] == names[g]]
        if len(set(labels[rows].tolist())) < 2:
            continue
        eer, at_far = _by_hand(scores[rows], labels[rows], 0.07)
        eers.append(eer)
        fars.append(at_far)
    assert got["eer"] == pytest.approx((_percentile(eers, 2.5), _percentile(eers, 97.5)))
    assert got["far@0.07"] == pytest.approx((_percentile(fars, 2.5), _percentile(fars, 97.5)))
    assert got == speaker_bootstrap(scores, labels, speakers, [0.07], resamples=40, seed=7)
    assert len(eers) > 30


def test_resampling_speakers_is_wider_than_resampling_trials() -> None:
    """Trials of one speaker move together (a shared shift): resampling them one by one, as if
    independent, understates how far the threshold moves with other speakers."""
    scores, labels, speakers = _trials()
    by_speaker = speaker_bootstrap(scores, labels, speakers, [0.1], resamples=300)
    by_trial = speaker_bootstrap(scores, labels, np.arange(len(scores)), [0.1], resamples=300)
    width = {name: high - low for name, (low, high) in by_speaker.items()}
    assert width["eer"] > by_trial["eer"][1] - by_trial["eer"][0]


def test_the_too_few_trials_rule() -> None:
    """30 errors behind a rate (Doddington's rule of 30): 0.1 % FAR needs 30,000 non-targets."""
    assert enough_trials(0.001, 30_000, 30) and not enough_trials(0.001, 29_999, 30)
    assert not enough_trials(0.001, 2_000, 30)  # the example: 2 errors
    assert enough_trials(0.01, 3_000, 30) and not enough_trials(0.01, 2_999, 30)
    assert not enough_trials(0.0, 10**9, 1)  # an EER of 0 stands on no error at all


def test_a_bootstrap_without_both_kinds_of_trial_is_empty() -> None:
    scores, labels = np.array([0.9, 0.1, 0.8]), np.array([1, 0, 1])
    # each speaker owns one kind of trial only: a resample of a single speaker is left out
    got = speaker_bootstrap(scores, labels, np.array(["a", "b", "a"]), [0.5], resamples=50)
    assert set(got) <= {"eer", "far@0.5"}
    assert speaker_bootstrap(scores, labels, np.array(["a", "a", "a"]), [0.5], 5) != {}
