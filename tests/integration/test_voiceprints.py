"""speakerid-enroll's voiceprint store and speakerid-identify store=, on the tiny model."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from speakerid.enroll import enroll
from speakerid.enroll import main as enroll_main
from speakerid.errors import ConfigError
from speakerid.identify import identify
from speakerid.inference import load_checkpoint, stored_thresholds
from speakerid.voiceprints import FILE, VoiceprintStore, weights_sha256


def _enrol_folder(corpus, root: Path, speakers: int = 3, per_speaker: int = 2) -> dict:
    """One sub-folder per speaker with ``per_speaker`` of its files; speaker -> its other files."""
    manifest = corpus.manifest()
    others = {}
    for speaker in manifest.speakers[:speakers]:
        utterances = [u for u in manifest if u.speaker == speaker]
        (root / speaker).mkdir(parents=True)
        for n, u in enumerate(utterances[:per_speaker]):
            shutil.copy(manifest.audio_path(u), root / speaker / f"{n}.wav")
        others[speaker] = [str(manifest.audio_path(u)) for u in utterances[per_speaker:]]
    return others


def test_a_store_identifies_as_the_enrolment_folders_do(
    tiny_checkpoint: Path, tiny_corpus, tmp_path: Path
) -> None:
    others = _enrol_folder(tiny_corpus, tmp_path / "enrol")
    store = tmp_path / "voices"
    prints = enroll(
        [f"ckpt_path={tiny_checkpoint}", f"store={store}", f"enrol_dir={tmp_path}/enrol"]
    )
    assert prints.names == tuple(sorted(others)) and prints.counts.tolist() == [2, 2, 2]
    assert prints.meta["model_sha256"] == weights_sha256(
        load_checkpoint(tiny_checkpoint)["state_dict"]
    )
    probes = [f for files in others.values() for f in files]
    from_folders = identify(
        [*probes, f"ckpt_path={tiny_checkpoint}", f"enrol_dir={tmp_path}/enrol", "top_k=3"]
    )
    from_store = identify([*probes, f"store={store}", "top_k=3"])  # the store's own model
    assert [r.speaker for r in from_store] == [r.speaker for r in from_folders]
    for a, b in zip(from_store, from_folders, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-5)
        assert [c.split(":")[0] for c in a.candidates.split()] == [
            c.split(":")[0] for c in b.candidates.split()
        ]
    assert len(from_store[0].candidates.split()) == 3
    # the stored operating point decides "unknown"; a threshold no voice reaches rejects all
    assert stored_thresholds(load_checkpoint(tiny_checkpoint))["eer"] is not None
    strict = identify([*probes[:2], f"store={store}", "threshold=0.99999"])
    assert {r.speaker for r in strict} == {"unknown"}


def test_enrolling_in_steps_equals_enrolling_at_once(
    tiny_checkpoint: Path, tiny_corpus, tmp_path: Path
) -> None:
    _enrol_folder(tiny_corpus, tmp_path / "enrol", speakers=1, per_speaker=3)
    name = next((tmp_path / "enrol").iterdir()).name
    files = sorted(str(p) for p in (tmp_path / "enrol" / name).iterdir())
    at_once, in_steps = tmp_path / "once", tmp_path / "steps"
    common = [f"ckpt_path={tiny_checkpoint}", f"speaker={name}"]
    enroll([*common, f"store={at_once}", *files])
    enroll([*common, f"store={in_steps}", files[0]])
    enroll([f"store={in_steps}", f"speaker={name}", *files[1:]])  # the store's model
    once, steps = VoiceprintStore(at_once).read(), VoiceprintStore(in_steps).read()
    assert steps.counts.tolist() == once.counts.tolist() == [3]
    np.testing.assert_allclose(steps.means, once.means, atol=1e-6)
    enroll([*common, f"store={in_steps}", "speaker=other", files[0]])
    assert enroll([f"store={in_steps}", "action=list"]).names == (name, "other")
    assert enroll([f"store={in_steps}", "action=remove", "speaker=other"]).names == (name,)
    with pytest.raises(ConfigError, match="no speaker 'nobody' enrolled"):
        enroll([f"store={in_steps}", "action=remove", "speaker=nobody"])


def test_a_store_refuses_another_model_and_bad_input(
    tiny_checkpoint: Path, tiny_corpus, tmp_path: Path, monkeypatch, capsys
) -> None:
    _enrol_folder(tiny_corpus, tmp_path / "enrol", speakers=2, per_speaker=1)
    store = tmp_path / "voices"
    enroll([f"ckpt_path={tiny_checkpoint}", f"store={store}", f"enrol_dir={tmp_path}/enrol"])
    probe = next((tmp_path / "enrol").rglob("*.wav"))
    checkpoint = load_checkpoint(tiny_checkpoint)
    checkpoint["speakerid"]["thresholds"] = {"eer": 0.5}  # the same weights: the same model
    torch.save(checkpoint, tmp_path / "same.ckpt")
    assert identify([str(probe), f"store={store}", f"ckpt_path={tmp_path}/same.ckpt"])
    key = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
    checkpoint["state_dict"][key] = checkpoint["state_dict"][key] + 0.01
    torch.save(checkpoint, tmp_path / "other.ckpt")
    with pytest.raises(ConfigError, match="made with another model"):
        identify([str(probe), f"store={store}", f"ckpt_path={tmp_path}/other.ckpt"])
    with pytest.raises(ConfigError, match="made with another model"):
        enroll([f"store={store}", f"ckpt_path={tmp_path}/other.ckpt", "speaker=x", str(probe)])
    with pytest.raises(ConfigError, match="speaker name 'unknown'"):
        enroll([f"store={store}", "speaker=unknown", str(probe)])
    with pytest.raises(ConfigError, match="exactly one of enrol_dir=DIR"):
        identify([str(probe), f"store={store}", f"enrol_dir={tmp_path}/enrol"])
    with pytest.raises(ConfigError, match="overlaps an input"):  # the store inside the enrolment
        enroll(
            [
                f"ckpt_path={tiny_checkpoint}",
                f"store={probe.parent}/s",
                f"enrol_dir={probe.parent.parent}",
            ]
        )
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a speakerid store"):
        enroll([f"ckpt_path={tiny_checkpoint}", f"store={tmp_path}/mine", "speaker=a", str(probe)])
    (store / FILE).write_bytes(b"not a zip")
    capsys.readouterr()  # what the commands above printed
    monkeypatch.setattr("sys.argv", ["speakerid-enroll", f"store={store}", "action=list"])
    with pytest.raises(SystemExit) as exit_info:
        enroll_main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: {store / FILE}: damaged voiceprint store (not an .npz archive)\n"
