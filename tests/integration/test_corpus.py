"""The built-in corpus: layout, determinism, lists; the VoxCeleb reader's manifest and bad input."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.conftest import TINY_CORPUS

from speakerid.data.corpora import SyntheticCorpus, VoxCelebCorpus, synthetic
from speakerid.data.corpora.espeak import (
    LANGUAGE_FILES,
    Espeak,
    make_data_dir,
    variant_file,
    voice_name,
)
from speakerid.data.trials import read_trials
from speakerid.errors import CorpusError

_DETERMINISM = {
    **TINY_CORPUS,
    "num_speakers": 12,
    "test_speakers": 2,
    "utterances_per_speaker": 3,
    "trials_per_utterance": 1,
}


def _digest(root: Path) -> str:
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_layout_and_lists(tiny_corpus: SyntheticCorpus) -> None:
    root = tiny_corpus.root
    manifest = tiny_corpus.manifest()
    assert len(manifest) == 10 * 6
    assert len(manifest.speakers) == 10
    first = manifest[0]
    assert (
        first.path == "wav/id10001/session01/00001.wav"
        and first.utt_id == "id10001/session01/00001"
    )
    assert {u.gender for u in manifest} == {"male", "female"}
    durations = [u.duration for u in manifest]
    assert min(durations) >= 1.0 and max(durations) <= 2.0
    info = sf.info(str(root / first.path))
    assert (info.samplerate, info.channels) == (16000, 1)
    # trials: held-out speakers only, both labels, every file exists
    trials = read_trials(root / "veri_test2.txt")
    test_speakers = {f"id{10001 + i}" for i in range(7, 10)}
    assert {t.enroll.split("/")[0] for t in trials} | {
        t.test.split("/")[0] for t in trials
    } <= test_speakers
    assert {t.label for t in trials} == {0, 1}
    assert all(
        (root / "wav" / t.enroll).is_file() and (root / "wav" / t.test).is_file() for t in trials
    )
    splits = [line.split() for line in (root / "iden_split.txt").read_text().splitlines()]
    assert len(splits) == len(manifest)
    assert {s for s, path in splits if "session02" in path} == {"3"}  # last session: test
    assert {s for s, path in splits if "session01" in path} == {"1"}
    assert (root / "meta.csv").read_text().startswith("speaker,gender,language,set")


def test_build_is_deterministic_and_seeded(tiny_corpus: SyntheticCorpus, tmp_path: Path) -> None:
    params = _DETERMINISM
    a = SyntheticCorpus(str(tmp_path / "a"), str(tmp_path / "cache"), **params)
    b = SyntheticCorpus(
        str(tmp_path / "b"), str(tmp_path / "cache"), **{**params, "num_workers": 1}
    )
    c = SyntheticCorpus(str(tmp_path / "c"), str(tmp_path / "cache"), **{**params, "seed": 1})
    for corpus in (a, b, c):
        corpus.prepare()
    assert _digest(a.root) == _digest(b.root)  # worker count does not change the output
    assert _digest(a.root) != _digest(c.root)


def test_an_utterance_does_not_depend_on_what_was_spoken_before(tmp_path: Path) -> None:
    """libespeak-ng leaks state between utterances; each is rendered from the same state."""
    params = {**synthetic.SyntheticCorpus("x", "y", **_DETERMINISM).params}
    voices = synthetic._design_voices(params)
    data_dir = make_data_dir(
        tmp_path / "espeak", params["languages"], {v.speaker: v.variant for v in voices}
    )
    jobs, _ = synthetic._plan_jobs(params, voices)
    # with these settings, jobs[20]'s audio changed when other synthesizers spoke before it
    probe = jobs[18:21]  # its speaker's utterances
    others = [[j] for k, j in enumerate(jobs) if voices[k // 3].klatt != voices[6].klatt]
    synthetic._init_worker(str(data_dir), str(tmp_path / "first"), params)
    for group in [probe, *others]:
        synthetic._render(group)
    synthetic._init_worker(str(data_dir), str(tmp_path / "again"), params)
    for group in [*others, probe]:
        synthetic._render(group)
    probe = probe[2]
    assert (tmp_path / "first" / probe.path).read_bytes() == (
        tmp_path / "again" / probe.path
    ).read_bytes()


def test_more_speakers_than_espeak_lists_voices(tmp_path: Path) -> None:
    """espeak-ng lists at most 349 voices of a data folder; a 400-speaker corpus still speaks
    with every variant, the last one included, and each variant still changes the voice."""
    variants = {
        f"v{i}": variant_file(
            f"v{i}", "male", (60 + i % 150, 100), [(1, 80 + i % 60, 100)], 0, 0, 0, 0
        )
        for i in range(400)
    }
    tts = Espeak(make_data_dir(tmp_path, list(LANGUAGE_FILES), variants))
    first = tts.synthesize("hello world", voice_name("en", "v0"), rate=170)
    last = tts.synthesize("hello world", voice_name("de", "v399"), rate=170)
    for language in LANGUAGE_FILES:
        assert len(tts.synthesize("hello world", voice_name(language, "v200"), rate=170))
    other = tts.synthesize("hello world", voice_name("en", "v149"), rate=170)
    assert len(first) and len(last)
    assert len(first) != len(other) or not np.array_equal(first, other)


def test_existing_corpus_with_other_settings_is_refused(tiny_corpus: SyntheticCorpus) -> None:
    other = SyntheticCorpus(str(tiny_corpus.root), "unused", **{**TINY_CORPUS, "difficulty": 0.5})
    with pytest.raises(CorpusError, match=r"built with other settings.*difficulty"):
        other.prepare()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"languages": ["en", "klingon"]}, r"languages \['klingon'\] not available"),
        ({"test_speakers": 10}, "test_speakers=10 must be in"),
        ({"min_seconds": 3.0}, "min_seconds <= max_seconds"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(CorpusError, match=message):
        SyntheticCorpus(str(tmp_path / "c"), str(tmp_path / "cache"), **{**TINY_CORPUS, **change})


def test_missing_and_empty_corpus_folders(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=f"{tmp_path}/nowhere/wav: corpus folder not found"):
        VoxCelebCorpus(str(tmp_path / "nowhere"), str(tmp_path / "cache")).manifest()
    (tmp_path / "empty" / "wav").mkdir(parents=True)
    with pytest.raises(CorpusError, match="no utterances found"):
        VoxCelebCorpus(str(tmp_path / "empty"), str(tmp_path / "cache")).manifest()


def _copy_corpus(tiny_corpus: SyntheticCorpus, dst: Path) -> Path:
    shutil.copytree(tiny_corpus.root, dst)
    return dst


def test_bad_files_are_reported_or_skipped(tiny_corpus: SyntheticCorpus, tmp_path: Path) -> None:
    root = _copy_corpus(tiny_corpus, tmp_path / "corpus")
    (root / "wav/id10001/session01/00001.wav").write_bytes(b"not audio")
    sf.write(str(root / "wav/id10002/session01/00001.wav"), np.zeros((800, 2)), 16000)
    sf.write(str(root / "wav/id10003/session01/00001.wav"), np.zeros(800), 8000)
    with pytest.raises(CorpusError) as info:
        VoxCelebCorpus(str(root), str(tmp_path / "cache")).manifest()
    message = str(info.value)
    assert message.startswith("3 bad audio file(s)")
    assert "id10001/session01/00001.wav: not a readable audio file" in message
    assert "2 channels, expected mono" in message and "sample rate 8000 Hz" in message
    manifest = VoxCelebCorpus(str(root), str(tmp_path / "cache"), on_bad_file="skip").manifest()
    assert len(manifest) == 60 - 3


def test_manifest_is_cached_and_refreshed(tiny_corpus: SyntheticCorpus, tmp_path: Path) -> None:
    root = _copy_corpus(tiny_corpus, tmp_path / "corpus")
    reader = VoxCelebCorpus(str(root), str(tmp_path / "cache"), meta_file="meta.csv")
    assert len(reader.manifest()) == 60
    assert len(list((tmp_path / "cache" / "manifests").glob("*.tsv"))) == 1
    shutil.rmtree(root / "wav/id10001/session02")
    assert len(reader.manifest()) == 57  # the fingerprint saw the folder change
