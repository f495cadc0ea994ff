"""WeSpeaker's QMF training and the ``wespeaker`` report section against its scripts, re-written
as they are written there (score_calibration.py's train_calibration_model; the section over a
hand-made table), and ``speakerid-eval evaluation=wespeaker`` on a trained tiny model."""

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import compose_config, tiny_train_config
from tests.unit.test_wespeaker_scoring import _file, _reference_scores, _reorder

from speakerid.analysis.report import EvalSet
from speakerid.analysis.sections import EvalContext
from speakerid.analysis.wespeaker_back_end import WespeakerBackEnd
from speakerid.data.manifest import Utterance
from speakerid.data.trialset import TrialSet
from speakerid.evaluate import evaluate
from speakerid.metrics import VerificationCurve
from speakerid.scoring.wespeaker import QMF_MEASURES, calibration_trials, train_qmf
from speakerid.train import train


@pytest.fixture(autouse=True)
def _one_thread():
    """The reference's L-BFGS on tiny tensors, without thread overhead (as train_qmf runs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reference_qmf(x: np.ndarray, labels: np.ndarray):
    """score_calibration.py's train_calibration_model (its LinearModel, cllr and loop)."""
    target = torch.tensor(x[labels == 1], dtype=torch.float64)
    nontarget = torch.tensor(x[labels == 0], dtype=torch.float64)

    def cllr(t, n):
        return (
            0.5
            * (torch.mean(torch.log1p(torch.exp(-t))) + torch.mean(torch.log1p(torch.exp(n))))
            / np.log(2)
        )

    linear = torch.nn.Linear(x.shape[1], 1).double()
    torch.nn.init.constant_(linear.weight, 1.0 / x.shape[1])
    torch.nn.init.constant_(linear.bias, 0)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=0.01)
    best = 1000000.0
    for _ in range(50):

        def closure():
            optimizer.zero_grad()
            loss = cllr(linear(target), linear(nontarget))
            loss.backward()
            return loss

        loss = optimizer.step(closure)
        if best - loss < 1e-4:
            break
        if loss < best:
            best = loss
    return linear.weight.detach()[0].numpy(), float(linear.bias.detach()[0])


def test_qmf_training_follows_train_calibration_model() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat([1, 0], 60)
    x = rng.normal(size=(120, 13)) * 0.3
    x[:, 0] += np.where(labels == 1, 1.5, -1.0)  # the score carries the speaker
    x[:, 5] += np.where(labels == 1, 0.4, 0.0)
    weights, bias = train_qmf(x, labels)
    ref_weights, ref_bias = _reference_qmf(x, labels)
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-8, atol=1e-10)
    assert bias == pytest.approx(ref_bias, rel=1e-8, abs=1e-10)
    with pytest.raises(ValueError, match="target and non-target"):
        train_qmf(x, np.ones(120))


def test_the_section_reports_wespeaker_scores_and_qmf() -> None:
    """The section over a hand-made table: its EERs are those of the reference scores, and its
    QMF weights are those trained on the reference's calibration trials."""
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(8, 4)) * 2
    speakers = [f"s{k}" for k in range(8) for _ in range(6)]
    table = np.array([centres[int(s[1:])] for s in speakers]) + rng.normal(size=(48, 4))
    seconds = np.tile([3.0, 4.0, 5.5, 7.0, 9.0, 30.0], 8)
    rows = [Utterance(f"{s}/v/{k}", "x.wav", s, "v", int(d * 16000), 16000)
            for k, (s, d) in enumerate(zip(speakers, seconds, strict=True))]  # fmt: skip
    trial_rows, cohort_rows = np.arange(0, 18), np.arange(18, 48)  # s0-s2 test, s3-s7 cohort
    enroll = torch.tensor([0, 0, 6, 7, 12, 1, 2, 13])
    test = torch.tensor([1, 6, 7, 12, 13, 8, 14, 3])
    pairs = zip(enroll.tolist(), test.tolist(), strict=True)
    labels = torch.tensor([int(speakers[e] == speakers[t]) for e, t in pairs])
    evalset = EvalSet(
        TrialSet("test", rows, enroll, test, labels), ["s0", "s1", "s2"],
        torch.from_numpy(trial_rows), torch.zeros(18, dtype=torch.long),
        torch.from_numpy(cohort_rows), torch.empty(0, dtype=torch.long),
        torch.empty(0, dtype=torch.long),
    )  # fmt: skip
    section = WespeakerBackEnd(top_n=3, calibration_trials=200, seed=4)
    report = section(torch.tensor(table), evalset, EvalContext(out_dir=None)).report
    cohort_speakers = [speakers[r] for r in cohort_rows]
    reference = _reference_scores(table, table[cohort_rows], cohort_speakers, enroll, test, 3)
    for name, column in (("mean_subtraction", 0), ("as_norm", 1)):
        curve = VerificationCurve(torch.tensor([r[column] for r in reference]).float(), labels)
        assert report[name]["eer"] == pytest.approx(curve.eer()[0])
    assert report["cohort_speakers"] == 5 and report["cohort_utterances"] == 30
    qmf = report["qmf"]
    assert qmf["calibration_trials"] == 600 and qmf["measures"] == list(QMF_MEASURES)
    e, t, y = calibration_trials(seconds[cohort_rows].tolist(), cohort_speakers, 200, 4)
    cal = _reference_scores(table, table[cohort_rows], cohort_speakers, cohort_rows[e],
                            cohort_rows[t], 3)  # fmt: skip
    x = np.array(
        [[_file(c[1], 5),
          *_reorder(min(seconds[cohort_rows[a]], 20), min(seconds[cohort_rows[b]], 20)),
          *_reorder(_file(c[2], 4), _file(c[3], 4)), *_reorder(_file(c[4], 4), _file(c[5], 4))]
         for c, a, b in zip(cal, e, t, strict=True)]
    )  # fmt: skip
    ref_weights, ref_bias = _reference_qmf(x, np.array(y))
    np.testing.assert_allclose(qmf["weights"], ref_weights, rtol=1e-9, atol=1e-12)
    assert qmf["bias"] == pytest.approx(ref_bias, rel=1e-9, abs=1e-12)
    assert 0 <= qmf["eer"] <= 1 and np.isfinite(qmf["cllr"])


def test_eval_preset_embeds_every_training_utterance_as_a_crop(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    """evaluation=wespeaker: the cohort is every training utterance, one random crop of the
    training length each; the report holds the three WeSpeaker scorings (QMF skipped: the tiny
    corpus has no utterance over 6 s) and the console summary names them."""
    from speakerid.evaluate import summary

    run = tmp_path / "run"
    train(tiny_train_config(tiny_data_dir, run, "test=false"))
    out = tmp_path / "eval"
    cfg = compose_config(
        "eval",
        [
            f"ckpt_path={run}/checkpoints/last.ckpt",
            f"output_dir={out}",
            f"paths.output_dir={out}",
            "num_workers=0",
            "evaluation=wespeaker",
            "evaluation.sections.identification=null",
            "evaluation.sections.clustering=null",
            "evaluation.sections.plots=null",
            "evaluation.sections.similarity_matrix=null",
        ],
    )
    report = evaluate(cfg)
    back_end = report["wespeaker"]
    assert set(report["verification"]) == {"cosine"} and "calibration" not in report
    assert back_end["cohort_utterances"] == report["num_cohort"] > back_end["cohort_speakers"]
    assert {"mean_subtraction", "as_norm"} <= set(back_end)
    assert "over 6 s" in back_end["qmf"]["skipped"]
    assert "wespeaker as_norm eer" in summary(report)


def test_cohort_crops_are_seeded_training_length_crops(tiny_corpus) -> None:
    from tests.conftest import TINY_DATA

    from speakerid.analysis.report import build_eval_set
    from speakerid.data.datamodule import SpeakerDataModule
    from speakerid.evaluate import _cohort_crops

    datamodule = SpeakerDataModule(tiny_corpus, **TINY_DATA)
    datamodule.setup("test")
    evalset = build_eval_set(datamodule, None)
    assert len(evalset.cohort_rows) == len(datamodule.train_rows)  # null: every utterance
    batches = list(_cohort_crops(evalset, datamodule, 0.5, seed=3))
    assert {tuple(b.wav.shape[1:]) for b in batches} == {(8000,)}
    assert torch.cat([b.index for b in batches]).tolist() == evalset.cohort_rows.tolist()
    again = list(_cohort_crops(evalset, datamodule, 0.5, seed=3))
    assert all(torch.equal(a.wav, b.wav) for a, b in zip(batches, again, strict=True))
