"""A plain folder of one's own speakers is a training corpus: ``speakerid-train data=folder``
splits it speaker-disjoint (fractions or lists), generates trials for the held-out speakers,
reads any format and rate, and refuses a folder it cannot split in one line."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from scipy.signal import resample_poly
from tests.conftest import TINY_MODEL, compose_config

from speakerid import train
from speakerid.errors import ConfigError

FAST = [
    "data.batch_size=4",
    "data.num_workers=0",
    "data.crop_seconds=0.5",
    "data.test_speakers=3",
    "data.val_speakers=2",
    "trainer.max_epochs=1",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "trainer.enable_progress_bar=false",
    *[f"{k}={v}" for k, v in TINY_MODEL.items()],
]


def speaker_folder(corpus_wav: Path, root: Path) -> Path:
    """The built-in corpus's audio as ``<root>/<speaker>/[<session>/]<n>.<ext>``: every third
    file FLAC at 22.05 kHz, every fourth a stereo WAV at 8 kHz, the rest 16 kHz WAV."""
    for s, speaker in enumerate(sorted(p for p in corpus_wav.iterdir() if p.is_dir())):
        for n, path in enumerate(sorted(speaker.rglob("*.wav"))):
            wav, rate = sf.read(path, dtype="float32")
            target = root / f"person{s:02d}"
            if s % 2:  # half the speakers have session folders
                target = target / path.parent.name
            target.mkdir(parents=True, exist_ok=True)
            if n % 3 == 0:
                sf.write(target / f"{n}.flac", resample_poly(wav, 441, 320), 22050)
            elif n % 4 == 1:
                low = resample_poly(wav, 1, 2)
                sf.write(target / f"{n}.wav", np.stack([low, 0.5 * low], axis=1), 8000)
            else:
                sf.write(target / f"{n}.wav", wav, rate)
    return root


@pytest.fixture(scope="module")
def folder(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speaker_folder(tiny_data_dir / "synthetic" / "wav", tmp_path_factory.mktemp("mine"))


def _main(argv: list[str], monkeypatch, tmp_path: Path):
    GlobalHydra.instance().clear()
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "logs" / "train" / "runs"  # one folder a call: two within a second differ
    run = runs / str(len(list(runs.iterdir())) if runs.is_dir() else 0)
    argv = ["speakerid-train", *argv, f"paths.root_dir={tmp_path}", f"hydra.run.dir={run}"]
    monkeypatch.setattr(sys, "argv", argv)
    return train.main()


def _datamodule(folder: Path, tmp_path: Path, *overrides: str):
    settings = ["data=folder", f"data.corpus.root={folder}", f"paths.data_dir={tmp_path}"]
    cfg = compose_config("train", [*settings, *FAST, *overrides])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule


def test_train_on_a_folder_from_the_command_line(folder: Path, tmp_path: Path, monkeypatch):
    _main(["data=folder", f"data.corpus.root={folder}", *FAST], monkeypatch, tmp_path)
    (metrics_file,) = (tmp_path / "logs" / "train" / "runs").rglob("metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert 0.0 <= metrics["test/eer"] <= 1.0 and 0.0 <= metrics["val/eer"] <= 1.0
    assert (metrics_file.parent / "checkpoints" / "last.ckpt").is_file()


def test_the_splits_are_speaker_disjoint_and_the_trials_generated(
    folder: Path, tmp_path: Path
) -> None:
    dm = _datamodule(folder, tmp_path)
    test = {u.speaker for u in dm.test_trials.utterances}
    val = {u.speaker for u in dm.val_trials.utterances}
    train_speakers = {u.speaker for u in dm.train_rows}
    assert (len(test), len(val), len(train_speakers)) == (3, 2, 5) == (3, 2, len(dm.speakers))
    assert not (test & val) and not (test | val) & train_speakers
    assert test | val | train_speakers == {p.name for p in folder.iterdir()}
    labels = dm.test_trials.labels.tolist()
    assert 0 < sum(labels) < len(labels)  # targets and non-targets
    rates = {sf.info(dm.manifest.audio_path(u)).samplerate for u in dm.manifest}
    assert rates == {8000, 16000, 22050}  # read as they are, resampled on the fly
    again = _datamodule(folder, tmp_path / "again")  # the same seed: the same split
    assert {u.speaker for u in again.test_trials.utterances} == test


def test_the_splits_can_be_lists_of_speakers(folder: Path, tmp_path: Path) -> None:
    dm = _datamodule(
        folder,
        tmp_path,
        "data.test_speakers=[person00,person03,person07]",
        "data.val_speakers=[person01,person02]",
    )
    assert {u.speaker for u in dm.test_trials.utterances} == {"person00", "person03", "person07"}
    assert {u.speaker for u in dm.val_trials.utterances} == {"person01", "person02"}
    assert not {"person00", "person01", "person02"} & set(dm.speakers)
    with pytest.raises(ConfigError, match=r"data.val_speakers: nobody not among the 7 speakers"):
        _datamodule(folder, tmp_path, "data.val_speakers=[person01,nobody]")


def _refusal(argv: list[str], monkeypatch, capsys, tmp_path: Path, files: int = 0) -> str:
    """The error line of a refused run (exit status 2), followed by ``files`` lines naming bad
    files (the validation pass lists the first ten) and nothing else: no traceback."""
    with pytest.raises(SystemExit) as stopped:
        _main(argv, monkeypatch, tmp_path)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("INFO: Seed set")]
    assert stopped.value.code == 2 and len(lines) == 1 + files, err
    return "\n".join(lines)


def test_a_folder_that_cannot_be_split_is_one_line(
    folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    one = tmp_path / "one"
    shutil.copytree(folder / "person00", one / "person00")
    line = _refusal(
        ["data=folder", f"data.corpus.root={one}", *FAST], monkeypatch, capsys, tmp_path
    )
    assert line == (
        f"error: {one} has 1 speaker(s) left to split for data.test_speakers: training needs 2 "
        "or more speakers in each of training, validation and test"
    )
    few = tmp_path / "few"  # one recording a speaker: no target trial among the held-out ones
    for speaker in sorted(folder.iterdir()):
        (few / speaker.name).mkdir(parents=True)
        first = sorted(speaker.rglob("*.wav"))[0]
        shutil.copy(first, few / speaker.name / first.name)
    line = _refusal(
        ["data=folder", f"data.corpus.root={few}", *FAST], monkeypatch, capsys, tmp_path
    )
    assert line.startswith("error: the 3 test speaker(s) give no test trials")


def test_an_unreadable_file_is_one_line(folder: Path, tmp_path: Path, monkeypatch, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "person04" / "bad.wav").write_bytes(b"RIFF not audio")
    argv = ["data=folder", f"data.corpus.root={broken}", *FAST]
    lines = _refusal(argv, monkeypatch, capsys, tmp_path, files=1).splitlines()
    assert lines[0].startswith(f"error: 1 bad audio file(s) in {broken} (report: ")
    assert lines[1].strip().startswith(f"{broken}/person04/bad.wav: not a readable audio file")
