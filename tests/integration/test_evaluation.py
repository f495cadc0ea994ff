"""speakerid-eval's full report, multi-crop embedding, speakerid-verify and speakerid-identify,
on a tiny model trained once for the module."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests.conftest import compose_config, tiny_train_config

from speakerid.analysis import plots
from speakerid.errors import AudioError, ConfigError
from speakerid.evaluate import evaluate
from speakerid.identify import identify
from speakerid.inference import load_checkpoint, save_thresholds, stored_thresholds
from speakerid.train import train
from speakerid.verify import main as verify_main
from speakerid.verify import verify

# the tiny corpus has 3 trial speakers of 6 utterances and 5 training speakers
TINY_EVAL = [
    "evaluation.sections.identification.enrol_per_speaker=2",
    "evaluation.sections.identification.unknown_speakers=1",
    "num_workers=0",
    "batch_size=1",
]


@pytest.fixture(scope="module")
def trained(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    metrics = train(tiny_train_config(tiny_data_dir, out, "trainer.max_epochs=2"))
    return out / "checkpoints" / "last.ckpt", metrics


def eval_config(ckpt: Path, out: Path, *extra: str):
    return compose_config(
        "eval",
        [f"ckpt_path={ckpt}", f"output_dir={out}", f"paths.output_dir={out}", *TINY_EVAL, *extra],
    )


def test_training_stores_its_test_thresholds(trained: tuple[Path, dict]) -> None:
    ckpt, metrics = trained
    stored = stored_thresholds(load_checkpoint(ckpt))
    assert stored["eer"] == pytest.approx(metrics["test/eer_threshold"])
    assert stored["far"] == pytest.approx(metrics["test/far_threshold"])
    assert stored["scoring"] == "cosine" and stored["far_target"] == 0.01
    assert set(load_checkpoint(ckpt)["speakerid"]) >= {"config", "version", "thresholds"}


@pytest.mark.slow
def test_full_report(trained: tuple[Path, dict], tmp_path: Path) -> None:
    ckpt, metrics = trained
    run = tmp_path / "ckpt.ckpt"
    shutil.copy(ckpt, run)
    # the tiny cohort gives 36 calibration trials: 1 per parameter lets them fit (10 would not)
    report = evaluate(
        eval_config(
            run,
            tmp_path,
            "logger=[csv,tensorboard,wandb]",
            "evaluation.sections.calibration.per_parameter=1",
        )
    )
    assert json.loads((tmp_path / "eval.json").read_text()) == json.loads(json.dumps(report))
    ver = report["verification"]
    assert set(ver) == {"cosine", "mean_subtraction", "as_norm"}
    # same weights and trials as the run's own test; extra utterances change nothing
    assert ver["cosine"]["eer"] == pytest.approx(metrics["test/eer"], abs=1e-6)
    assert report["eer"] == ver["cosine"]["eer"]
    for figures in ver.values():
        assert 0.0 <= figures["eer"] <= 1.0
        assert figures["actual_dcf_p01"] >= figures["min_dcf_p01"] - 1e-9
    assert ver["cosine"]["actual_dcf_threshold_source"] == "stored with the model"
    assert report["num_cohort"] == 5 * 4  # 4 utterances of each training speaker
    assert report["num_utterances"] == 3 * 6 + 20  # every utterance of the 3 trial speakers
    ident = report["identification"]
    assert ident["enrolled_speakers"] == 2 and ident["test_utterances"] == 2 * 4 + 6
    assert 0.0 <= ident["top1"] <= 1.0 and 0.0 <= ident["open_set_accuracy"] <= 1.0
    assert 0.0 <= report["similarity_matrix"]["accuracy"] <= 1.0
    clustering = report["clustering"]
    assert clustering["true_speakers"] == 3 and clustering["utterances"] == 18
    for method in ("kmeans", "spectral", "agglomerative_complete", "label_propagation"):
        assert 0.0 <= clustering[method]["nmi"] <= 1.0
    assert set(report["images"]) == {
        "det_curve",
        "score_histogram",
        "similarity_matrix",
        "embedding_map",
    }
    for path in report["images"].values():
        assert Path(path).parent == tmp_path
        image = Image.open(path)
        assert image.size == plots.SIZE and np.asarray(image.convert("L")).std() > 5  # drawn on
    # the loggers got the numbers (CSV), the pictures (TensorBoard, W&B) and a table (W&B)
    assert "eval/verification/as_norm/eer" in (tmp_path / "csv" / "metrics.csv").read_text()
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert set(events.Tags()["images"]) == {f"eval/{name}" for name in report["images"]}
    media = tmp_path / "wandb" / "latest-run" / "files" / "media"
    assert {p.name.split("_")[0] for p in media.glob("images/eval/*.png")} >= {"det", "embedding"}
    assert list(media.glob("table/eval/table_*.table.json"))
    # calibration: trained on the cohort (training) speakers, reported per scoring
    calibration = report["calibration"]
    assert set(calibration) >= {"cosine", "as_norm"} and calibration["trained_on_trials"] > 0
    for figures in (calibration["cosine"], calibration["as_norm"]):
        assert figures["actual_dcf_after"] >= 0.0 and figures["cllr_after"] >= 0.0
        assert figures["min_dcf_after"] <= figures["actual_dcf_after"] + 1e-9
        # kept only when it beats no information and the raw scores on the test trials
        helps = figures["cllr_after"] < min(1.0, figures["cllr_before"])
        assert figures["kept"] == helps and ("model" in figures) == helps != ("why" in figures)
    # the evaluation's thresholds, and a kept calibration, are stored for speakerid-verify
    stored = stored_thresholds(load_checkpoint(run))
    assert stored["eer"] == pytest.approx(ver["cosine"]["threshold_eer"])
    assert stored.get("calibration") == calibration["cosine"].get("model")
    a, b = _two_files_of(ckpt)
    same_llr, other_llr = (verify([a, x, f"ckpt_path={run}"])[3] for x in (a, b))
    if calibration["cosine"]["kept"]:
        assert same_llr > other_llr  # an utterance with itself is the most likely same speaker
    else:
        assert same_llr is None and other_llr is None


def test_thresholds_to_deploy(trained: tuple[Path, dict], tmp_path: Path, capsys) -> None:
    """The table (1, 3, 5 enrolment recordings; duration bands; intervals over speakers) is in
    eval.json and on the console; the chosen operating point is stored and verify uses it."""
    ckpt, _ = trained
    run = tmp_path / "ckpt.ckpt"
    shutil.copy(ckpt, run)
    quick = [f"evaluation.sections.{name}=null" for name in ("clustering", "plots", "calibration")]
    with pytest.raises(ConfigError, match=r"operating_point=far@0\.05: choose one of eer"):
        evaluate(eval_config(run, tmp_path, *quick, "evaluation.operating_point=far@0.05"))
    assert not (tmp_path / "eval.json").exists()  # refused before any work
    cfg = eval_config(
        run,
        tmp_path,
        *quick,
        "evaluation.operating_point=far@0.01",
        "evaluation.sections.thresholds.resamples=50",
    )
    report = evaluate(cfg)
    table = json.loads((tmp_path / "eval.json").read_text())["thresholds"]
    assert table["resampled"] == "speakers" and table["far_targets"] == [0.01, 0.001]
    cell = table["enrol_1"]["all"]
    assert cell["trials"] == report["num_trials"] and cell["speakers"] == 3
    assert cell["eer"]["threshold"] == pytest.approx(
        report["verification"]["cosine"]["threshold_eer"]
    )
    assert cell["eer"]["low"] <= cell["eer"]["high"]
    assert not cell["far@0.001"]["enough_trials"]  # a tiny list: far too few trials
    assert table["enrol_5"]["all"]["trials"] > 0 and "0-2s" in table["enrol_3"]
    stored = stored_thresholds(load_checkpoint(run))
    assert stored["operating_point"] == "far@0.01"
    assert stored["far_targets"]["0.01"] == cell["far@0.01"]["threshold"]
    assert stored["intervals"]["far@0.01"] == [cell["far@0.01"]["low"], cell["far@0.01"]["high"]]
    a, b = _two_files_of(ckpt)
    capsys.readouterr()
    assert verify([a, b, f"ckpt_path={run}"]).threshold == cell["far@0.01"]["threshold"]
    said = capsys.readouterr().err
    assert "operating point: far@0.01 = " in said and "too few trials behind it" in said


def test_multi_crop_embedding(trained: tuple[Path, dict], tmp_path: Path) -> None:
    ckpt, _ = trained
    report = evaluate(
        eval_config(
            ckpt,
            tmp_path,
            "crops=3",
            "crop_seconds=0.5",
            "save_thresholds=false",
            "evaluation.sections.identification=null",
            "evaluation.sections.clustering=null",
            "evaluation.sections.similarity_matrix=null",
            "evaluation.sections.plots=null",
            "evaluation.sections.verification.scorings=[cosine]",
        )
    )
    assert report["embedding"] == "3 x 0.5 s crops" and report["num_without_speech"] == 0
    assert 0.0 <= report["eer"] <= 1.0
    assert set(report) >= {"eer", "min_dcf_p01", "num_trials"} and "clustering" not in report
    assert report["images"] == {}


def _two_files_of(ckpt: Path) -> list[str]:
    """Two files of different speakers of the corpus a checkpoint was trained on."""
    from hydra.utils import instantiate

    corpus = instantiate(load_checkpoint(ckpt)["speakerid"]["config"]["data"]["corpus"])
    return _two_files(corpus, same=False)


def _two_files(corpus, same: bool) -> list[str]:
    manifest = corpus.manifest()
    first = manifest[0]
    other = next(
        u for u in manifest if (u.speaker == first.speaker) == same and u.utt_id != first.utt_id
    )
    return [str(manifest.audio_path(first)), str(manifest.audio_path(other))]


def test_verify(trained: tuple[Path, dict], tiny_corpus, tmp_path: Path, caplog) -> None:
    ckpt, metrics = trained
    a, b = _two_files(tiny_corpus, same=False)
    score, threshold, same, llr = verify([a, b, f"ckpt_path={ckpt}"])
    assert llr is None  # training stores thresholds, not a calibration
    assert threshold == pytest.approx(metrics["test/eer_threshold"])
    assert same == (score > threshold) and -1.0 <= score <= 1.0
    assert verify([a, a, f"ckpt_path={ckpt}", "threshold=0.5"])[:3] == pytest.approx(
        (1.0, 0.5, True), abs=1e-5
    )
    assert verify([a, b, f"ckpt_path={ckpt}", "threshold=far"])[1] == pytest.approx(
        metrics["test/far_threshold"]
    )
    # a stereo 8 kHz copy is downmixed and resampled, not refused
    wav, rate = sf.read(a)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([wav[::2], wav[::2]], axis=1), rate // 2)
    assert verify([a, str(stereo), f"ckpt_path={ckpt}"])[0] > 0.5
    # a name with Hydra's special characters is a file, not an override; 4 kHz is announced
    odd = tmp_path / "take=2, [x].wav"
    sf.write(odd, wav[::4], rate // 4)
    with caplog.at_level("WARNING"):
        assert -1.0 <= verify([a, str(odd), f"ckpt_path={ckpt}"])[0] <= 1.0
    assert "upsampled from 4000 Hz to 16000 Hz (no content above 2000 Hz)" in caplog.text


def test_verify_exit_status_and_errors(
    trained: tuple[Path, dict], tiny_corpus, tmp_path: Path, monkeypatch, capsys
) -> None:
    ckpt, _ = trained
    a, _ = _two_files(tiny_corpus, same=True)
    monkeypatch.setattr("sys.argv", ["speakerid-verify", a, a, f"ckpt_path={ckpt}"])
    with pytest.raises(SystemExit) as exit_info:
        verify_main()
    assert exit_info.value.code == 0 and "same speaker" in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", ["speakerid-verify", a, f"ckpt_path={ckpt}"])
    with pytest.raises(SystemExit) as exit_info:
        verify_main()
    assert exit_info.value.code == 2
    assert "give exactly two audio files, got 1" in capsys.readouterr().err
    with pytest.raises(AudioError, match=r"nothing\.wav: file not found"):
        verify([a, str(tmp_path / "nothing.wav"), f"ckpt_path={ckpt}"])
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: not a readable audio file"):
        verify([a, str(tmp_path / "empty.wav"), f"ckpt_path={ckpt}"])
    with pytest.raises(ConfigError, match="missing required setting"):
        verify([a, a])
    with pytest.raises(ConfigError, match="thresold"):
        verify([a, a, f"ckpt_path={ckpt}", "thresold=0.3"])
    bare = tmp_path / "bare.ckpt"
    shutil.copy(ckpt, bare)
    save_thresholds(bare, {})
    with pytest.raises(ConfigError, match="holds no stored thresholds: run `speakerid-eval"):
        verify([a, a, f"ckpt_path={bare}"])


def test_identify(trained: tuple[Path, dict], tiny_corpus, tmp_path: Path) -> None:
    ckpt, _ = trained
    manifest = tiny_corpus.manifest()
    speakers = manifest.speakers[:3]
    queries = []
    for speaker in speakers:
        first = next(u for u in manifest if u.speaker == speaker)
        folder = tmp_path / "enrol" / speaker
        folder.mkdir(parents=True)
        shutil.copy(manifest.audio_path(first), folder / "a.wav")
        queries.append(str(folder / "a.wav"))
    out = tmp_path / "labels.tsv"
    results = identify(
        [
            *queries,
            f"ckpt_path={ckpt}",
            f"enrol_dir={tmp_path / 'enrol'}",
            "threshold=null",
            f"output={out}",
        ]
    )
    # one file per speaker: each enrolment file is its own speaker model, score 1
    assert [row.speaker for row in results] == speakers
    assert all(row.score == pytest.approx(1.0, abs=1e-5) for row in results)
    assert out.read_text().splitlines()[0] == "file\tspeaker\tscore\tnote\tcandidates"
    stranger = next(u for u in manifest if u.speaker == manifest.speakers[3])
    rejected = identify(  # an unenrolled voice, and a threshold no other voice reaches
        [
            str(manifest.audio_path(stranger)),
            f"ckpt_path={ckpt}",
            f"enrol_dir={tmp_path}/enrol",
            "threshold=0.9999",
        ]
    )
    assert rejected[0].speaker == "unknown"
    folder_query = identify(
        [str(tmp_path / "enrol"), f"ckpt_path={ckpt}", f"enrol_dir={tmp_path}/enrol"]
    )
    assert len(folder_query) == 3  # a folder expands to its audio files
    (tmp_path / "blocker").write_text("")  # an output folder that cannot be made
    with pytest.raises(ConfigError, match="blocker/sub: cannot write the identification results"):
        identify(
            [
                *queries,
                f"ckpt_path={ckpt}",
                f"enrol_dir={tmp_path / 'enrol'}",
                f"output={tmp_path}/blocker/sub/labels.tsv",
            ]
        )
    with pytest.raises(ConfigError, match="blocker/sub: cannot write the evaluation report"):
        evaluate(eval_config(ckpt, tmp_path / "blocker" / "sub"))
    (tmp_path / "enrol" / "nobody").mkdir()
    with pytest.raises(ConfigError, match="nobody: no audio files"):
        identify([queries[0], f"ckpt_path={ckpt}", f"enrol_dir={tmp_path}/enrol"])


def test_classifier_identification_on_the_iden_split(tiny_data_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_train_config(tiny_data_dir, tmp_path, "data.iden_split=iden_split.txt")
    train(cfg)
    report = evaluate(
        eval_config(
            tmp_path / "checkpoints" / "last.ckpt",
            tmp_path,
            "evaluation.sections.clustering=null",
            "evaluation.sections.plots=null",
        )
    )
    ident = report["identification_classifier"]
    # 5 classes; their split-3 files (the last of 2 sessions: 3 of 6 utterances each)
    assert ident["classes"] == 5 and ident["test_utterances"] == 5 * 3
    assert 0.0 <= ident["top1"] <= ident["top5"] == 1.0  # 5 classes: top-5 always hits


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_matches_pytorch(
    trained: tuple[Path, dict], tmp_path: Path, tiny_corpus, fmt: str
) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from speakerid.export import export

    ckpt, _ = trained
    report = export(
        compose_config("export", [f"ckpt_path={ckpt}", f"format={fmt}", f"output_dir={tmp_path}"])
    )
    assert report["parity_ok"] and max(report["parity_max_abs_diff"].values()) <= 1e-4
    assert {k.split(" x ")[1] for k in report["parity_max_abs_diff"]} == {"1", "3"}  # batches
    assert json.loads(Path(f"{report['file']}.json").read_text())["format"] == fmt
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [Path(report["file"]).name, f"{Path(report['file']).name}.json"]
    )  # one self-contained model file, no side file of weights
    if fmt == "onnx":  # the .onnx copied alone runs, on a batch of 3
        import onnxruntime

        alone = tmp_path / "copy" / "model.onnx"
        alone.parent.mkdir()
        alone.write_bytes(Path(report["file"]).read_bytes())
        session = onnxruntime.InferenceSession(str(alone), providers=["CPUExecutionProvider"])
        wav = np.zeros((3, 16000), np.float32) + 0.01
        assert session.run(None, {"wav": wav})[0].shape[0] == 3
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"file: cannot write the export here"):
        export(compose_config("export", [f"ckpt_path={ckpt}", f"output_dir={tmp_path}/file"]))
    if fmt == "torchscript":  # the file alone embeds a real utterance like the checkpoint does
        import torch

        from speakerid.inference import embed_files, load_system

        system, _, _ = load_system(ckpt)
        wav_path = tiny_corpus.manifest().audio_path(tiny_corpus.manifest()[0])
        wav, _ = sf.read(wav_path, dtype="float32")
        exported = torch.jit.load(report["file"])(torch.from_numpy(wav)[None])
        expected = embed_files(system, [wav_path], 16000)
        torch.testing.assert_close(
            torch.nn.functional.normalize(exported, dim=1), expected, atol=1e-4, rtol=0
        )


def test_int8_export_is_smaller_and_scores_alike(
    trained: tuple[Path, dict], tmp_path: Path, tiny_corpus
) -> None:
    """quantize=int8: a smaller file beside the float32 one, its embeddings close to PyTorch's,
    and the EER over every pair of 60 utterances moved by little (ONNX Runtime on each)."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from speakerid.export import export
    from speakerid.inference import load_system
    from speakerid.metrics import compute_eer

    ckpt, _ = trained
    overrides = [f"ckpt_path={ckpt}", "format=onnx", "quantize=int8", f"output_dir={tmp_path}"]
    report = export(compose_config("export", overrides))
    assert report["file"].endswith(".int8.onnx") and report["parity_ok"]
    backbone = load_system(ckpt)[0].backbone
    weights = sum(p.numel() for p in backbone.parameters() if p.ndim > 1)  # convs, linears
    assert report["float32"]["bytes"] - report["bytes"] >= 2.5 * weights  # 4 bytes -> 1
    assert json.loads(Path(f"{report['float32']['file']}.json").read_text())["parity_ok"]
    manifest = tiny_corpus.manifest()
    wavs = [sf.read(manifest.audio_path(row), dtype="float32")[0] for row in manifest]
    speakers = np.array([row.speaker for row in manifest])
    same = speakers[:, None] == speakers[None, :]
    upper = np.triu_indices(len(wavs), 1)
    eers = []
    for file in (report["float32"]["file"], report["file"]):
        session = onnxruntime.InferenceSession(file, providers=["CPUExecutionProvider"])
        emb = np.concatenate([session.run(None, {"wav": w[None]})[0] for w in wavs])
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        eers.append(compute_eer((emb @ emb.T)[upper], same[upper])[0])
    assert abs(eers[1] - eers[0]) <= 0.03, eers
    with pytest.raises(ConfigError, match="quantize=int8: null, or int8 with format=onnx"):
        export(compose_config("export", [*overrides[:1], "format=torchscript", "quantize=int8"]))


def test_int8_refuses_a_backbone_with_nothing_to_quantize(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from speakerid.export import EmbeddingModel, _export_onnx, _quantize_int8
    from speakerid.features import LogMel

    class MeanOverTime(torch.nn.Module):  # no weights: no operator to quantize
        embed_dim = 40

        def forward(self, features, lengths=None):
            return features.mean(dim=1)

    model = EmbeddingModel(LogMel(num_mels=40), MeanOverTime()).eval()
    _export_onnx(model, 0.1 * torch.randn(1, 16000), tmp_path / "m.onnx", 16000)
    with pytest.raises(ConfigError, match="MeanOverTime has no operator ONNX Runtime quantizes"):
        _quantize_int8(tmp_path / "m.onnx", tmp_path / "m.int8.onnx", "MeanOverTime")
    assert not (tmp_path / "m.int8.onnx").exists()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda t: np.zeros_like(t), "no speech — digital silence"),
        (
            lambda t: 0.1 * np.random.default_rng(0).standard_normal(len(t)),
            "a steady noise or tone",
        ),
        (lambda t: 0.3 * np.sin(2 * np.pi * 50 * t), "a steady noise or tone"),
        (lambda t: 0.1 * np.sin(2 * np.pi * 200 * t[:160]), "shorter than the 0.1 s"),
    ],
    ids=["silence", "white-noise", "hum", "10-ms"],
)
def test_verify_refuses_files_without_speech(
    make, expected: str, trained: tuple[Path, dict], tmp_path: Path, monkeypatch, capsys
) -> None:
    """Silence vs silence used to score 1.0, "same speaker", exit 0; noise vs hum 0.72."""
    ckpt, _ = trained
    path = tmp_path / "x.wav"
    sf.write(path, make(np.arange(3 * 16000) / 16000).astype(np.float32), 16000)
    monkeypatch.setattr("sys.argv", ["speakerid-verify", str(path), str(path), f"ckpt_path={ckpt}"])
    with pytest.raises(SystemExit) as exit_info:
        verify_main()
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert line.startswith(f"error: {path}: no speech — ") and expected in line


def test_an_ad_hoc_list_keeps_the_stored_thresholds_and_flipped_labels_are_flagged(
    trained: tuple[Path, dict], tmp_path: Path, caplog
) -> None:
    ckpt, _ = trained
    run = tmp_path / "ckpt.ckpt"
    shutil.copy(ckpt, run)
    before = stored_thresholds(load_checkpoint(run))
    data = load_checkpoint(run)["speakerid"]["config"]["data"]
    own = Path(data["corpus"]["root"]) / data["test_trials"]
    # labels wrong whatever the model: other speakers called targets, a file and itself not
    flipped = tmp_path / "flipped.txt"  # absolute: read from here, paths inside the corpus root
    lines = [line.split() for line in own.read_text().splitlines()]
    flipped.write_text(
        "".join(f"1 {a} {b}\n" if label == "0" else f"0 {a} {a}\n" for label, a, b in lines)
    )
    quick = [
        f"trials={flipped}",
        "evaluation.sections.identification=null",
        "evaluation.sections.clustering=null",
        "evaluation.sections.similarity_matrix=null",
        "evaluation.sections.plots=null",
        "evaluation.sections.verification.scorings=[cosine]",
    ]
    with caplog.at_level("WARNING"):
        report = evaluate(eval_config(run, tmp_path, *quick))
    assert report["eer"] > 0.5 and "are the trial labels flipped" in caplog.text
    assert stored_thresholds(load_checkpoint(run)) == before  # not the run's own list
    evaluate(eval_config(run, tmp_path, *quick, "save_thresholds=true"))
    assert stored_thresholds(load_checkpoint(run))["trials"] == str(flipped)


def test_eval_on_a_test_only_folder(
    trained: tuple[Path, dict], tiny_corpus, tmp_path: Path
) -> None:
    """Only the root and the list: no num_speakers, no validation or training split; files of
    other formats, rates and channel counts; the folder's non-trial speakers are the cohort."""
    ckpt, _ = trained
    manifest = tiny_corpus.manifest()
    folder = tmp_path / "recordings"
    speakers = manifest.speakers[:4]
    names: dict[str, list[str]] = {}
    for n, speaker in enumerate(speakers):
        rows = [u for u in manifest if u.speaker == speaker][:3]
        for i, row in enumerate(rows):
            wav, rate = sf.read(manifest.audio_path(row), dtype="float32")
            name = f"spk{n}/take{i}"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            if n == 1:  # FLAC at 22.05 kHz, stereo
                import torchaudio.functional as F

                up = F.resample(torch.from_numpy(wav), rate, 22050).numpy()
                sf.write(folder / f"{name}.flac", np.stack([up, up], axis=1), 22050)
            else:
                sf.write(folder / f"{name}.wav", wav, rate)
            names.setdefault(f"spk{n}", []).append(name)
    # trials among spk0 and spk1; spk2 and spk3 are not in the list: the cohort
    lines = [
        f"1 {names['spk0'][0]}.wav {names['spk0'][1]}.wav",
        f"1 {names['spk1'][0]}.flac {names['spk1'][2]}.flac",
    ]
    lines += [f"0 {a}.wav {b}.flac" for a in names["spk0"] for b in names["spk1"][:1]]
    (folder / "trials.txt").write_text("\n".join(lines) + "\n")
    settings = [
        f"ckpt_path={ckpt}",
        "data=folder",
        f"data.corpus.root={folder}",
        f"paths.data_dir={tmp_path / 'data'}",
        "trials=trials.txt",
        f"output_dir={tmp_path / 'out'}",
        f"paths.output_dir={tmp_path / 'out'}",
        "crop_seconds=0.5",
        "num_workers=0",
        "evaluation.cohort_per_speaker=2",
        "evaluation.sections.identification=null",
        "evaluation.sections.clustering=null",
        "evaluation.sections.plots=null",
    ]
    for crops in ("0", "2"):
        report = evaluate(compose_config("eval", [*settings, f"crops={crops}"]))
        assert report["num_trials"] == len(lines) and 0.0 <= report["eer"] <= 1.0
        assert report["cohort_speakers"] == ["spk2", "spk3"] and report["num_cohort"] == 4
        assert set(report["verification"]) == {"cosine", "mean_subtraction", "as_norm"}
    # a cohort from another folder instead of the non-trial speakers
    other = tmp_path / "others"
    for n in (2, 3):
        (other / f"person{n}").mkdir(parents=True)
        for name in names[f"spk{n}"]:
            (other / f"person{n}" / Path(name).name).with_suffix(".wav").write_bytes(
                (folder / f"{name}.wav").read_bytes()
            )
    report = evaluate(compose_config("eval", [*settings, f"cohort_dir={other}"]))
    assert report["cohort_speakers"] == ["cohort:person2", "cohort:person3"]
    assert report["num_cohort"] == 4
    # every speaker in the list: no cohort, cosine scoring only
    everyone = [f"0 {names['spk0'][0]}.wav {names[f'spk{n}'][0]}.wav" for n in (2, 3)]
    (folder / "all.txt").write_text("\n".join(lines + everyone) + "\n")
    report = evaluate(compose_config("eval", [*settings[:4], "trials=all.txt", *settings[5:]]))
    assert report["cohort_speakers"] == [] and set(report["verification"]) == {"cosine"}


def test_eval_and_export_never_overwrite_what_they_did_not_write(
    trained: tuple[Path, dict], tiny_corpus, tmp_path: Path
) -> None:
    """An eval.json or model file of the user's stays; the corpus is never an output folder;
    the earlier outputs of the same command are replaced."""
    from speakerid.evaluate import evaluate
    from speakerid.export import export

    ckpt, _ = trained
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "eval.json").write_text('{"my": "notes"}')
    with pytest.raises(ConfigError, match=r"output_dir=.*mine: already holds files"):
        evaluate(eval_config(ckpt, mine, "evaluation.sections.plots=null"))
    assert (mine / "eval.json").read_text() == '{"my": "notes"}'
    with pytest.raises(ConfigError, match=r"output_dir=.*overlaps an input"):
        evaluate(eval_config(ckpt, Path(tiny_corpus.root), "evaluation.sections.plots=null"))
    ours = tmp_path / "ours"
    for _ in range(2):  # a rerun replaces its own report
        evaluate(eval_config(ckpt, ours, "evaluation.sections.plots=null"))
    (tmp_path / "last.pt").write_bytes(b"the user's own model")
    config = compose_config("export", [f"ckpt_path={ckpt}", f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"last\.pt: exists and is not an export of speakerid"):
        export(config)
    assert (tmp_path / "last.pt").read_bytes() == b"the user's own model"
    (tmp_path / "last.pt").unlink()
    for _ in range(2):  # a re-export replaces its own file
        assert export(config)["parity_ok"]
    model = tmp_path / "model.pt"
    model.write_bytes(ckpt.read_bytes())  # a checkpoint named like its torchscript export
    config = compose_config("export", [f"ckpt_path={model}", f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"overlaps an input of this command"):
        export(config)


def test_prepare_never_writes_shards_into_the_corpus_or_the_users_folder(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    from tests.conftest import TINY_CORPUS

    from speakerid.prepare import prepare

    corpus = [f"corpus.root={tiny_data_dir}/synthetic", f"paths.data_dir={tiny_data_dir}"]
    corpus += [f"corpus.{k}={v}" for k, v in TINY_CORPUS.items()]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "shard-000000.tar").write_text("mine")
    for folder, message in (
        (mine, r"shards=.*mine: already holds files"),
        (tiny_data_dir / "synthetic" / "shards", r"shards=.*overlaps an input"),
    ):
        with pytest.raises(ConfigError, match=message):
            prepare(compose_config("prepare", [*corpus, f"shards={folder}", "validate=false"]))
    assert (mine / "shard-000000.tar").read_text() == "mine"
    assert not (tiny_data_dir / "synthetic" / "shards").exists()
