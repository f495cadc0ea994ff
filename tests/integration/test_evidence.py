"""No verdict without evidence (#23), on a tiny model trained once for the module.

speakerid-verify and speakerid-identify refuse noise that only sounds like syllables, thresholds
outside the score range and nonsense gate settings (one line, exit 2), and print no LLR from a
calibration that was not checked or failed its check; identify reports files without speech on
their rows, never writes over its inputs, quotes its output, and warns about what it cannot
tell apart.
"""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.conftest import tiny_train_config
from tests.unit.test_speech import noise

from speakerid.errors import AudioError, ConfigError
from speakerid.identify import identify
from speakerid.identify import main as identify_main
from speakerid.inference import save_thresholds, stored_thresholds
from speakerid.train import train
from speakerid.verify import main as verify_main
from speakerid.verify import verify


@pytest.fixture(scope="module")
def trained(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(tiny_train_config(tiny_data_dir, out))
    return out / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def voices(tiny_corpus) -> dict[str, list[str]]:
    """Speaker -> its utterances' paths, for three speakers of the tiny corpus."""
    manifest = tiny_corpus.manifest()
    return {
        s: [str(manifest.audio_path(u)) for u in manifest if u.speaker == s][:3]
        for s in manifest.speakers[:3]
    }


def _run(main, argv: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of an entry point's ``main``."""
    monkeypatch.setattr("sys.argv", argv)
    try:
        main()
        status = 0
    except SystemExit as exit_info:
        status = exit_info.code or 0
    out, err = capsys.readouterr()
    return status, out, err


def _noise_file(folder: Path, name: str, kind: str, exponent: float) -> str:
    path = folder / name
    sf.write(path, noise(kind, exponent).astype(np.float32), 16000)
    return str(path)


def test_noise_that_sounds_like_syllables_gets_no_verdict(
    trained: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Two recordings of gated, amplitude-modulated noise scored "same speaker" 0.9965."""
    a = _noise_file(tmp_path, "gated.wav", "gated", 0)
    b = _noise_file(tmp_path, "am.wav", "am", 1)
    status, out, err = _run(
        verify_main, ["speakerid-verify", a, b, f"ckpt_path={trained}"], monkeypatch, capsys
    )
    (line,) = err.strip().splitlines()
    assert status == 2 and out == ""
    assert line.startswith(f"error: {a}: no speech — ") and "carry a voice's pitch" in line
    # the energy test alone (what the gate was) lets the pair through to a verdict
    assert verify([a, b, f"ckpt_path={trained}", "speech_gate.min_voiced=0"])[2] in (True, False)


def test_speech_with_a_dc_offset_is_verified(trained: Path, voices, tmp_path: Path) -> None:
    first, second = next(iter(voices.values()))[:2]
    wav, rate = sf.read(first, dtype="float32")
    shifted = tmp_path / "offset.wav"
    sf.write(shifted, 0.5 + 0.5 * wav, rate, subtype="FLOAT")  # a DC offset of 0.5
    score, _, _, _ = verify([str(shifted), second, f"ckpt_path={trained}"])
    assert -1.0 <= score <= 1.0


@pytest.mark.parametrize("threshold", ["nan", "inf", "-inf", "2", "-1", "1"])
@pytest.mark.parametrize("tool", ["verify", "identify"])
def test_thresholds_outside_the_score_range_are_refused(
    threshold: str, tool: str, trained: Path, voices, monkeypatch, capsys
) -> None:
    """Each one forced the verdict (cosine scores lie in [-1, 1])."""
    a, b = next(iter(voices.values()))[:2]
    enrol = Path(a).parent.parent.parent  # the corpus's wav/ folder: one folder per speaker
    argv = {
        "verify": ["speakerid-verify", a, b],
        "identify": ["speakerid-identify", a, f"enrol_dir={enrol}"],
    }[tool]
    main = {"verify": verify_main, "identify": identify_main}[tool]
    status, out, err = _run(
        main, [*argv, f"ckpt_path={trained}", f"threshold={threshold}"], monkeypatch, capsys
    )
    (line,) = err.strip().splitlines()
    assert status == 2 and out == ""
    assert line.startswith("error: threshold=") and "must be a number above -1 and below 1" in line


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("speech_gate.silence=2", "speech_gate.silence=2: must lie in [0, 1)"),
        ("speech_gate.min_seconds=abc", "speech_gate.min_seconds='abc': a number is needed"),
        ("speech_gate.min_voiced=-0.1", "speech_gate.min_voiced=-0.1: must lie in [0, 1]"),
    ],
)
def test_nonsense_gate_settings_are_one_line(
    setting: str, message: str, trained: Path, voices, monkeypatch, capsys
) -> None:
    a, b = next(iter(voices.values()))[:2]
    argv = ["speakerid-verify", a, b, f"ckpt_path={trained}", setting]
    status, _, err = _run(verify_main, argv, monkeypatch, capsys)
    assert status == 2 and err.strip().splitlines() == [f"error: {message}"]


def test_verify_prints_an_llr_only_from_a_calibration_that_passed_its_check(
    trained: Path, voices, tmp_path: Path, caplog
) -> None:
    a, b = next(iter(voices.values()))[:2]
    run = tmp_path / "model.ckpt"
    shutil.copy(trained, run)
    thresholds = stored_thresholds(__import__("torch").load(run, weights_only=True))
    model = {"features": ["score"], "weights": [8.0], "bias": -4.0, "scoring": "cosine"}
    cases = [
        ({}, "it was never checked on held-out trials"),  # stored by an older speakerid-eval
        ({"cllr": 1.7, "cllr_uncalibrated": 0.9}, "held-out Cllr 1.700 is not below 1"),
        ({"cllr": 0.6, "cllr_uncalibrated": 0.5}, "not below the uncalibrated scores' 0.500"),
        ({"weights": "x", "cllr": 0.1, "cllr_uncalibrated": 0.5}, "unreadable: ValueError"),
    ]
    for extra, why in cases:
        save_thresholds(run, {**thresholds, "calibration": {**model, **extra}})
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert verify([a, b, f"ckpt_path={run}"])[3] is None
        assert "no llr: the calibration stored with the model is not used" in caplog.text
        assert why in caplog.text
    save_thresholds(
        run, {**thresholds, "calibration": {**model, "cllr": 0.3, "cllr_uncalibrated": 0.8}}
    )
    score, _, _, llr = verify([a, b, f"ckpt_path={run}"])
    assert llr == pytest.approx(8.0 * score - 4.0)


def _enrol(root: Path, speakers: dict[str, list[str]]) -> Path:
    """An enrolment folder: one sub-folder per speaker with copies of its files."""
    for name, files in speakers.items():
        (root / name).mkdir(parents=True)
        for i, file in enumerate(files):
            shutil.copy(file, root / name / f"{i}{Path(file).suffix}")
    return root


def test_identify_never_writes_over_what_it_reads(trained: Path, voices, tmp_path: Path) -> None:
    enrol = _enrol(tmp_path / "enrol", {s: fs[:1] for s, fs in voices.items()})
    probe = tmp_path / "probe.wav"
    shutil.copy(next(iter(voices.values()))[1], probe)
    before = probe.read_bytes()
    for output in (probe, next((enrol).rglob("*.wav"))):
        with pytest.raises(ConfigError, match=r"output=.*: overlaps an input of this command"):
            identify([str(probe), f"ckpt_path={trained}", f"enrol_dir={enrol}", f"output={output}"])
    notes = tmp_path / "notes.tsv"
    notes.write_text("my notes\n")
    with pytest.raises(ConfigError, match="is not an earlier speakerid-identify result"):
        identify([str(probe), f"ckpt_path={trained}", f"enrol_dir={enrol}", f"output={notes}"])
    assert probe.read_bytes() == before and notes.read_text() == "my notes\n"
    result = tmp_path / "labels.tsv"
    for _ in range(2):  # an earlier result of its own is replaced
        identify([str(probe), f"ckpt_path={trained}", f"enrol_dir={enrol}", f"output={result}"])
    assert len(result.read_text().splitlines()) == 2


def test_identify_output_cannot_be_forged_by_a_file_name(
    trained: Path, voices, tmp_path: Path
) -> None:
    enrol = _enrol(tmp_path / "enrol", {s: fs[:1] for s, fs in voices.items()})
    forged = tmp_path / "take\nforged.wav\tsomeone\t0.999999\t.wav"
    shutil.copy(next(iter(voices.values()))[1], forged)
    plain = tmp_path / "plain.wav"
    shutil.copy(list(voices.values())[1][1], plain)
    args = [str(forged), str(plain), f"ckpt_path={trained}", f"enrol_dir={enrol}", "threshold=null"]
    identify([*args, f"output={tmp_path / 'labels.tsv'}"])
    with open(tmp_path / "labels.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["file", "speaker", "score", "note", "candidates"] and len(rows) == 3
    assert [r[0] for r in rows[1:]] == [str(forged), str(plain)]
    assert {r[1] for r in rows[1:]} <= set(voices)  # "someone" forged nothing
    identify([*args, f"output={tmp_path / 'labels.json'}"])
    rows = json.loads((tmp_path / "labels.json").read_text(encoding="utf-8"))
    assert [r["file"] for r in rows] == [str(forged), str(plain)]
    assert set(rows[0]) == {"file", "speaker", "score", "note", "candidates"}


def test_identify_reports_files_without_speech_on_their_rows(
    trained: Path, voices, tmp_path: Path, monkeypatch, capsys, caplog
) -> None:
    names = list(voices)
    gated = _noise_file(tmp_path, "gated.wav", "gated", 0)
    enrol = _enrol(
        tmp_path / "enrol", {names[0]: [voices[names[0]][0], gated], names[1]: voices[names[1]][:1]}
    )
    common = [f"ckpt_path={trained}", f"enrol_dir={enrol}", "threshold=null"]
    speech, silent = voices[names[1]][1], tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    with caplog.at_level("WARNING"):
        status, _, err = _run(
            identify_main,
            ["speakerid-identify", speech, str(silent), gated, *common],
            monkeypatch,
            capsys,
        )
    assert status == 0 and "warning: 2 of 3 files hold no speech (their rows say why)" in err
    # the enrolment file without speech is left out; the speaker keeps its other file
    assert f"speaker {names[0]!r} enrolled without 1.wav: " in caplog.text
    rows = identify([speech, str(silent), gated, *common])
    assert rows[0].speaker in names and rows[0].score is not None and rows[0].note == ""
    assert rows[1][1:4] == ("no speech", None, "digital silence (peak 0)")
    assert rows[2].speaker == "no speech" and "carry a voice's pitch" in rows[2].note
    with pytest.raises(
        AudioError, match=r"none of the 2 files holds speech \(.*silent\.wav: digital"
    ):
        identify([str(silent), gated, *common])
    (enrol / "noise").mkdir()
    shutil.copy(gated, enrol / "noise" / "only.wav")
    with pytest.raises(
        AudioError, match=r"speaker 'noise': none of its 1 enrolment files holds speech"
    ):
        identify([speech, *common])


def test_identify_warns_about_what_it_cannot_tell_apart(
    trained: Path, voices, tmp_path: Path, caplog
) -> None:
    names = list(voices)
    enrol = _enrol(
        tmp_path / "enrol", {names[0]: voices[names[0]][:2], names[1]: voices[names[1]][:1]}
    )
    shutil.copytree(enrol / names[0], enrol / "twin")  # the same recordings under two names
    copy = tmp_path / "copy.wav"
    shutil.copy(enrol / names[1] / "0.wav", copy)  # the same bytes as an enrolment file
    with caplog.at_level("WARNING"):
        identify(
            [
                str(enrol / names[0] / "1.wav"),
                str(copy),
                voices[names[2]][0],
                f"ckpt_path={trained}",
                f"enrol_dir={enrol}",
            ]
        )
    assert "2 file(s) to identify are enrolment files (same path or same bytes)" in caplog.text
    assert (
        "1 pair(s) of enrolled speakers are (near-)identical (cosine above 0.999): "
        f"{names[0]} = twin" in caplog.text
    )
    for reserved in ("unknown", "no speech"):
        (enrol / reserved).mkdir()
        with pytest.raises(ConfigError, match=f"a speaker cannot be called '{reserved}'"):
            identify([str(copy), f"ckpt_path={trained}", f"enrol_dir={enrol}"])
        (enrol / reserved).rmdir()
