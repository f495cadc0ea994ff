"""The deployment thresholds section: enrolment models of k recordings, duration bands, the
too-few-trials flags, what is stored with the model, and a refused operating point."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.functional import normalize

from speakerid.analysis.report import EvalSet
from speakerid.analysis.sections import EvalContext
from speakerid.analysis.thresholds import (
    Thresholds,
    band_names,
    check_operating_point,
    enrolment_scores,
    stored_points,
    summary_rows,
)
from speakerid.cli import print_results
from speakerid.data.manifest import Utterance
from speakerid.data.trialset import TrialSet
from speakerid.errors import ConfigError
from speakerid.metrics import VerificationCurve


def _evalset(
    speakers: int = 5, per_speaker: int = 4, seed: int = 0
) -> tuple[torch.Tensor, EvalSet]:
    """Utterances of 1 to 12 s; every pair of utterances a trial; embeddings around a centre
    per speaker."""
    rng = np.random.default_rng(seed)
    utterances = [
        Utterance(
            f"s{s}/x/{i}",
            f"s{s}/{i}.wav",
            f"s{s}",
            "x",
            int(16000 * (1 + 11 * rng.random())),
            16000,
        )
        for s in range(speakers)
        for i in range(per_speaker)
    ]
    pairs = [
        (int(a // per_speaker == b // per_speaker), a, b)
        for a, b in itertools.combinations(range(len(utterances)), 2)
    ]
    trials = TrialSet.from_pairs("t", utterances, pairs)
    centres = rng.normal(size=(speakers, 8))
    table = torch.tensor(
        np.array([centres[int(u.speaker[1:])] + rng.normal(size=8) for u in trials.utterances]),
        dtype=torch.float32,
    )
    rows, empty = torch.arange(len(utterances)), torch.empty(0, dtype=torch.long)
    labels = torch.tensor([int(u.speaker[1:]) for u in trials.utterances])
    return table, EvalSet(
        trials, [f"s{s}" for s in range(speakers)], rows, labels, empty, empty, empty
    )


def test_k_recording_models_are_means_of_the_speakers_other_utterances() -> None:
    table, evalset = _evalset()
    trials, normed = evalset.trials, normalize(table, dim=1)
    scores, kept = enrolment_scores(table, evalset, 1)
    assert torch.allclose(scores, (normed[trials.enroll] * normed[trials.test]).sum(1))
    scores, kept = enrolment_scores(table, evalset, 3)
    speaker = [u.speaker for u in trials.utterances]
    for score, i in zip(scores.tolist(), kept.tolist(), strict=True):
        e, t = int(trials.enroll[i]), int(trials.test[i])
        others = [r for r in range(len(speaker)) if speaker[r] == speaker[e] and r not in (e, t)]
        candidates = [  # every model of e and two others that are not the test utterance
            float(normalize(normed[[e, *pick]].mean(0), dim=0) @ normed[t])
            for pick in itertools.combinations(others, 2)
        ]
        assert min(abs(score - c) for c in candidates) < 1e-5
    # a target trial leaves 2 other utterances of 4, a non-target 3: all are kept
    assert len(kept) == len(trials.enroll)
    _, kept5 = enrolment_scores(table, evalset, 5)
    assert len(kept5) == 0  # 4 utterances a speaker cannot make 5-recording models


def test_the_table_cells_bands_and_flags(capsys) -> None:
    table, evalset = _evalset(speakers=6)
    section = Thresholds(
        far_targets=[0.1, 0.001], enrolments=[1, 3], duration_bands=[4.0], resamples=30
    )
    report = section(table, evalset, EvalContext(Path(".")))
    cell = report.report["enrol_1"]["all"]
    scores, _ = enrolment_scores(table, evalset, 1)
    curve = VerificationCurve(scores, evalset.trials.labels)
    assert cell["eer"]["threshold"] == pytest.approx(curve.eer()[1])
    assert cell["far@0.1"]["threshold"] == pytest.approx(curve.at_far(0.1)[0])
    assert cell["eer"]["low"] <= cell["eer"]["high"]
    bands = band_names([4.0])
    assert bands == ["all", "0-4s", "4s+"]
    assert sum(report.report["enrol_1"][b]["trials"] for b in bands[1:]) == cell["trials"]
    # 240 non-target trials: 0.1 % FAR stands on 0.24 errors, 10 % on 24 (fewer than 30)
    assert cell["nontarget_trials"] == 240
    assert not cell["far@0.001"]["enough_trials"] and cell["far@0.001"]["errors"] == pytest.approx(
        0.24
    )
    stored = stored_points(report.report, "far@0.1")
    assert stored["operating_point"] == "far@0.1"
    assert stored["far_targets"] == {
        "0.1": cell["far@0.1"]["threshold"],
        "0.001": cell["far@0.001"]["threshold"],
    }
    assert stored["intervals"]["eer"] == [cell["eer"]["low"], cell["eer"]["high"]]
    assert stored["by_enrolment"]["3"]["eer"] == report.report["enrol_3"]["all"]["eer"]["threshold"]
    rows = summary_rows(report.report)
    assert rows["far@0.001 threshold"].endswith("too few trials")
    print_results("speakerid-eval", rows)  # the console table takes them (an "eer" key is a rate)
    assert "eer threshold" in capsys.readouterr().out


def test_a_band_without_both_kinds_of_trial_is_skipped_and_bad_settings_refused() -> None:
    table, evalset = _evalset()
    report = Thresholds(duration_bands=[100.0], resamples=0)(table, evalset, EvalContext(Path(".")))
    assert report.report["enrol_1"]["100s+"]["skipped"] == "needs target and non-target trials"
    assert report.report["enrol_1"]["all"]["eer"]["low"] is None  # resamples=0: no interval
    with pytest.raises(ConfigError, match="far_targets"):
        Thresholds(far_targets=[1.5])
    with pytest.raises(ConfigError, match="duration_bands"):
        Thresholds(duration_bands=[5.0, 2.0])
    check_operating_point("far@0.001", [0.01, 0.001])
    with pytest.raises(ConfigError, match=r"operating_point=far@0.05: choose one of eer, far@0.01"):
        check_operating_point("far@0.05", [0.01])
    with pytest.raises(ConfigError, match="thresholds is off"):
        check_operating_point("far@0.01", None)
