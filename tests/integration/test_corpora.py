"""Corpora in their shipped layouts (VoxForge folders and .tgz, Common Voice mp3 + two releases'
tsv columns, VoxCeleb1 lists, VoxCeleb2 m4a, MUSAN, RIRS_NOISES), combined corpora, speaker
splits, and the validation pass over a corpus planted with every kind of bad file."""

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.conftest import compose_config

from speakerid.data.audio import read_audio
from speakerid.data.corpora import (
    CombinedCorpus,
    CommonVoiceCorpus,
    MusanCorpus,
    RirCorpus,
    VoxCelebCorpus,
    VoxForgeCorpus,
    voxceleb,
)
from speakerid.data.datamodule import SpeakerDataModule
from speakerid.errors import ConfigError, CorpusError, ListFileError
from speakerid.prepare import prepare


def _audio(path: Path, seconds: float = 1.5, rate: int = 16000, channels: int = 1, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    shape = (int(seconds * rate), channels) if channels > 1 else int(seconds * rate)
    sf.write(str(path), 0.1 * rng.standard_normal(shape), rate, **kw)


# -- VoxForge -------------------------------------------------------------------------------


def _submission(folder: Path, user: str, readme: dict, files: int, kind="wav", rate=16000) -> None:
    (folder / "etc").mkdir(parents=True)
    lines = [f"User Name:{user}", "", "Speaker Characteristics:", ""]
    lines += [f"{k}: {v}" for k, v in readme.items()]
    (folder / "etc" / "README").write_text("\n".join(lines) + "\n")
    (folder / "etc" / "prompts-original").write_text(
        "".join(f"a{i:04d} SOME PROMPT\n" for i in range(files))
    )
    for i in range(files):
        _audio(folder / kind / f"a{i:04d}.{kind}", rate=rate)


@pytest.fixture
def voxforge(tmp_path: Path) -> Path:
    root = tmp_path / "voxforge"
    adult_en = {"Gender": "Male", "Age Range": "Adult", "Language": "EN"}
    _submission(root / "ralf-20080101-abc", "ralf", adult_en, 3)
    _submission(
        root / "maria-20090202-xyz",
        "maria",
        {
            "Gender": "Female",
            "Age Range": "Senior",
            "Language": "DE",
            "Pronunciation dialect": "Bavarian",
        },
        2,
        kind="flac",
    )
    _submission(root / "anonymous-20100101-aaa", "anonymous", {"Gender": "Please Select"}, 2)
    _submission(root / "anonymous-20100102-bbb", "anonymous", {}, 2)
    # ralf's second submission, as the .tgz archive it is downloaded as, 48 kHz flac
    staged = tmp_path / "staging" / "ralf-20080303-def"
    _submission(staged, "ralf", adult_en, 2, kind="flac", rate=48000)
    with tarfile.open(root / "ralf-20080303-def.tgz", "w:gz") as tar:
        tar.add(staged, arcname=staged.name)
    return root


def test_voxforge_merges_submissions_per_user_and_reads_archives(
    voxforge: Path, tmp_path: Path
) -> None:
    corpus = VoxForgeCorpus(
        str(voxforge), str(tmp_path / "cache"), policy={"wrong_rate": "resample"}
    )
    manifest = corpus.manifest()
    assert manifest.speakers == [
        "anonymous-anonymous-20100101-aaa",  # anonymous submissions stay apart
        "anonymous-anonymous-20100102-bbb",
        "maria",
        "ralf",
    ]
    ralf = [u for u in manifest if u.speaker == "ralf"]
    assert len(ralf) == 5 and {u.session for u in ralf} == {
        "ralf-20080101-abc",
        "ralf-20080303-def",
    }
    archived = next(u for u in ralf if u.session == "ralf-20080303-def")
    assert archived.num_samples == 24000 and archived.sample_rate == 16000  # 48 kHz, resampled
    assert len(read_audio(manifest.audio_path(archived), 16000, convert=True)) == 24000
    maria = next(u for u in manifest if u.speaker == "maria")
    assert (maria.gender, maria.language, maria.age, maria.accent) == (
        "female",
        "de",
        "senior",
        "Bavarian",
    )
    anon = next(u for u in manifest if u.speaker.startswith("anonymous"))
    assert anon.gender == ""  # "Please Select" is no gender
    skipped = VoxForgeCorpus(
        str(voxforge), str(tmp_path / "cache"), anonymous="skip", policy={"wrong_rate": "skip"}
    ).manifest()
    assert skipped.speakers == ["maria", "ralf"] and len(skipped) == 5  # 48 kHz skipped
    german = VoxForgeCorpus(
        str(voxforge), str(tmp_path / "cache"), languages=["de"], policy={"wrong_rate": "skip"}
    ).manifest()
    assert german.speakers == ["maria"]


def test_a_corrupt_archive_is_reported_not_fatal(voxforge: Path, tmp_path: Path, caplog) -> None:
    (voxforge / "broken-20110101-zzz.tgz").write_bytes(b"not gzip")
    corpus = VoxForgeCorpus(str(voxforge), str(tmp_path / "cache"), on_bad_file="skip")
    assert "ralf" in corpus.manifest().speakers
    assert "broken-20110101-zzz.tgz: unreadable archive" in caplog.text


def test_a_truncated_archive_leaves_no_half_extracted_speaker(
    voxforge: Path, tmp_path: Path, caplog
) -> None:
    whole = (voxforge / "ralf-20080303-def.tgz").read_bytes()
    (voxforge / "ralf-20080303-def.tgz").write_bytes(whole[: len(whole) // 2])  # cut download
    corpus = VoxForgeCorpus(str(voxforge), str(tmp_path / "cache"), on_bad_file="skip")
    sessions = {u.session for u in corpus.manifest()}
    assert "ralf-20080303-def" not in sessions and "unreadable archive" in caplog.text
    assert not list(corpus.extracted.glob("*.part"))  # removed, not read as a submission
    (corpus.extracted / "ralf-20080303-def.part" / "x" / "etc").mkdir(parents=True)  # killed run
    assert (
        corpus._submissions() == VoxForgeCorpus(str(voxforge), str(tmp_path / "c2"))._submissions()
    )


# -- Common Voice ---------------------------------------------------------------------------

OLD = [
    "client_id",
    "path",
    "sentence",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accent",
    "locale",
    "segment",
]
NEW = [
    "client_id",
    "path",
    "sentence_id",
    "sentence",
    "sentence_domain",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accents",
    "variant",
    "locale",
    "segment",
]


def _commonvoice(root: Path, columns: list[str]) -> None:
    speakers = {"aaa111": ("male", "twenties", "England"), "bbb222": ("female", "forties", "")}
    new = "accents" in columns
    rows = []
    for n, (client, (gender, age, accent)) in enumerate(sorted(speakers.items())):
        for i in range(3):
            clip = f"common_voice_en_{n}{i}.mp3"
            _audio(root / "clips" / clip, seconds=1.2, rate=48000, format="MP3")
            values = {
                "client_id": client,
                "path": clip,
                "sentence": "hello",
                "sentence_id": "s1",
                "sentence_domain": "",
                "up_votes": "2",
                "down_votes": "1" if i == 2 and client == "aaa111" else "0",
                "age": age,
                "gender": {"male": "male_masculine", "female": "female_feminine"}[gender]
                if new
                else gender,
                "accents" if new else "accent": accent,
                "variant": "",
                "locale": "en",
                "segment": "",
            }
            rows.append("\t".join(values.get(c, "") for c in columns))
    (root / "validated.tsv").write_text("\t".join(columns) + "\n" + "\n".join(rows) + "\n")
    (root / "clips" / "common_voice_en_missing.mp3").unlink(missing_ok=True)


@pytest.mark.parametrize("columns", [OLD, NEW], ids=["old-release", "new-release"])
def test_commonvoice_reads_both_releases(tmp_path: Path, columns: list[str]) -> None:
    root = tmp_path / "cv" / "en"
    _commonvoice(root, columns)
    corpus = CommonVoiceCorpus(
        str(root), str(tmp_path / "cache"), policy={"wrong_rate": "resample"}
    )
    manifest = corpus.manifest()
    assert manifest.speakers == ["aaa111", "bbb222"]
    assert len(manifest) == 5  # the clip with a down vote is left out
    first = next(u for u in manifest if u.speaker == "aaa111")
    assert (first.gender, first.language, first.age, first.accent) == (
        "male",
        "en",
        "twenties",
        "England",
    )
    assert first.sample_rate == 16000 and abs(first.num_samples - 19200) < 1200  # mp3 padding
    wav = read_audio(manifest.audio_path(first), 16000, 0, 16000, convert=True)
    assert wav.shape == (16000,) and np.abs(wav).max() > 0.01
    everything = CommonVoiceCorpus(
        str(root),
        str(tmp_path / "cache"),
        max_down_votes=5,
        min_utterances=3,
        policy={"wrong_rate": "resample"},
    ).manifest()
    assert len(everything) == 6 and everything.speakers == ["aaa111", "bbb222"]
    few = CommonVoiceCorpus(
        str(root), str(tmp_path / "cache"), min_utterances=3, policy={"wrong_rate": "resample"}
    ).manifest()
    assert few.speakers == ["bbb222"]  # aaa111 kept only 2 clips


def test_commonvoice_list_problems_are_named(tmp_path: Path) -> None:
    root = tmp_path / "cv" / "en"
    _commonvoice(root, OLD)
    with open(root / "validated.tsv", "a") as f:
        f.write("ccc333\tcommon_voice_en_missing.mp3\thi\t1\t0\t\t\t\ten\t\n")
    corpus = CommonVoiceCorpus(
        str(root), str(tmp_path / "cache"), on_bad_file="error", policy={"wrong_rate": "resample"}
    )
    with pytest.raises(CorpusError, match=r"common_voice_en_missing\.mp3: file not found"):
        corpus.manifest()
    (root / "validated.tsv").write_text("client_id\tsentence\nabc\thello\n")
    with pytest.raises(ListFileError, match=r"validated\.tsv:1: no path column"):
        corpus.manifest()
    (root / "validated.tsv").write_text("client_id\tpath\nabc\t../../etc/passwd\n")
    with pytest.raises(ListFileError, match=r"validated\.tsv:2: '\.\./\.\./etc/passwd' is not"):
        corpus.manifest()
    with pytest.raises(ListFileError, match=r"test\.tsv: Common Voice list not found \(the "):
        CommonVoiceCorpus(str(root), str(tmp_path / "cache"), lists=["test.tsv"]).manifest()
    # the release folder instead of its language folder; a language folder without clips/
    with pytest.raises(CorpusError, match=r"cv is a Common Voice release folder.*cv/en \(en\)"):
        CommonVoiceCorpus(str(root.parent), str(tmp_path / "cache")).manifest()
    (tmp_path / "cv" / "de").mkdir()
    with pytest.raises(CorpusError, match=r"de: no clips/ folder"):
        CommonVoiceCorpus(str(tmp_path / "cv" / "de"), str(tmp_path / "cache")).manifest()


# -- the validation pass --------------------------------------------------------------------


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A VoxCeleb-layout corpus: 7 good files and one of each kind of bad file."""
    root = tmp_path / "planted"
    for speaker in ("id00001", "id00002", "id00003"):
        for utt in ("00001", "00002"):
            _audio(root / "wav" / speaker / "v1" / f"{utt}.wav")
    (root / "wav/id00001/v1/unreadable.wav").write_bytes(b"RIFF random bytes")
    sf.write(str(root / "wav/id00001/v1/empty.wav"), np.zeros(0), 16000)
    _audio(root / "wav/id00002/v1/short.wav", seconds=0.2)
    _audio(root / "wav/id00002/v1/rate.wav", rate=8000)
    _audio(root / "wav/id00003/v1/stereo.wav", channels=2)
    nan = np.full(24000, 0.1, np.float32)
    nan[5000:5010] = np.nan  # a float wav can hold them; no header says so
    sf.write(str(root / "wav/id00003/v1/nan.wav"), nan, 16000, subtype="FLOAT")
    _audio(root / "wav/id00003/v1/float.wav", subtype="FLOAT")  # a good float wav is kept
    return root


def test_the_validation_pass_counts_every_problem(planted: Path, tmp_path: Path) -> None:
    settings = dict(root=str(planted), cache_dir=str(tmp_path / "cache"), min_seconds=0.5)
    with pytest.raises(CorpusError) as failure:
        VoxCelebCorpus(**settings).manifest()
    assert str(failure.value).startswith("5 bad audio file(s)")  # too short: skipped anyway
    assert "nan.wav: 10 NaN or infinite samples" in str(failure.value)
    skipped = VoxCelebCorpus(**settings, on_bad_file="skip")
    assert len(skipped.manifest(validate=True)) == 7
    expected = {
        "empty": {"skip": 1},
        "multichannel": {"skip": 1},
        "nonfinite": {"skip": 1},
        "too_short": {"skip": 1},
        "unreadable": {"skip": 1},
        "wrong_rate": {"skip": 1},
    }
    assert skipped.report.counts() == expected
    report = json.loads(skipped.report_path().read_text())
    assert report["counts"] == expected and (report["files"], report["kept"]) == (13, 7)
    assert {p["file"].split("/")[-1] for p in report["problems"]} == {
        "nan.wav",
        "unreadable.wav",
        "empty.wav",
        "short.wav",
        "rate.wav",
        "stereo.wav",
    }
    fixing = VoxCelebCorpus(
        **settings, on_bad_file="skip", policy={"wrong_rate": "resample", "multichannel": "downmix"}
    )
    manifest = fixing.manifest()
    assert len(manifest) == 9
    rate = next(u for u in manifest if u.utt_id.endswith("rate"))
    assert rate.num_samples == 24000  # 1.5 s at 8 kHz, counted at 16 kHz
    for row in (rate, next(u for u in manifest if u.utt_id.endswith("stereo"))):
        wav = read_audio(manifest.audio_path(row), 16000, 1000, 8000, convert=True)
        assert wav.shape == (8000,)
    assert fixing.report.counts()["wrong_rate"] == {"resample": 1}
    copying = VoxCelebCorpus(
        **settings, on_bad_file="skip", policy={"wrong_rate": "convert", "multichannel": "convert"}
    )
    copies = [u for u in copying.manifest() if u.utt_id.endswith(("rate", "stereo"))]
    assert len(copies) == 2
    for row in copies:  # one-off copies in the cache, read without any conversion
        path = Path(row.path)
        assert path.is_absolute() and path.is_relative_to(copying.converted_dir)
        assert len(read_audio(path, 16000)) == row.num_samples == 24000


def test_policies_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"policy\.wrong_rate='downmix': choose one of"):
        VoxCelebCorpus(str(tmp_path), str(tmp_path), policy={"wrong_rate": "downmix"})
    with pytest.raises(ConfigError, match="unknown problem 'loud'"):
        VoxCelebCorpus(str(tmp_path), str(tmp_path), policy={"loud": "skip"})


def test_the_manifest_cache_is_reused_until_the_contents_change(
    planted: Path, tmp_path: Path, monkeypatch
) -> None:
    corpus = VoxCelebCorpus(str(planted), str(tmp_path / "cache"), on_bad_file="skip")
    first = corpus.manifest()
    calls = []
    original = corpus.entries
    monkeypatch.setattr(corpus, "entries", lambda v: calls.append(1) or original(v))
    assert list(corpus.manifest()) == list(first) and not calls  # from the cache
    _audio(planted / "wav" / "id00004" / "v9" / "00001.wav")
    assert "id00004" in corpus.manifest().speakers and calls == [1]  # a new folder: rescanned


def test_a_file_rewritten_in_place_is_noticed_before_training(
    planted: Path, tmp_path: Path
) -> None:
    corpus = VoxCelebCorpus(str(planted), str(tmp_path / "cache"), on_bad_file="skip")
    first = {u.utt_id: u.num_samples for u in corpus.manifest()}
    utt_id = next(iter(first))
    path = planted / "wav" / f"{utt_id}.wav"
    folder_time = path.parent.stat().st_mtime_ns
    _audio(path, seconds=0.75)  # replaced in place: its folder's time does not move
    assert path.parent.stat().st_mtime_ns == folder_time
    again = {u.utt_id: u.num_samples for u in corpus.manifest()}
    assert again[utt_id] == 12000 != first[utt_id]


# -- VoxCeleb: trial lists, VoxCeleb2's m4a, combining ---------------------------------------


def test_voxceleb2_without_ffmpeg_names_the_fix(tmp_path: Path, monkeypatch) -> None:
    m4a = tmp_path / "vox2" / "aac" / "id00012" / "abc" / "00001.m4a"
    m4a.parent.mkdir(parents=True)
    m4a.write_bytes(b"\0" * 100)
    monkeypatch.setattr(voxceleb, "find_ffmpeg", lambda: None)
    corpus = VoxCelebCorpus(str(tmp_path / "vox2"), str(tmp_path / "cache"), m4a_dir="aac")
    with pytest.raises(CorpusError, match=r"1 .m4a files need converting .* needs ffmpeg: install"):
        corpus.prepare()


@pytest.mark.skipif(voxceleb.find_ffmpeg() is None, reason="no ffmpeg (nor imageio-ffmpeg)")
def test_voxceleb2_m4a_is_converted_once(tmp_path: Path, monkeypatch) -> None:
    ffmpeg = voxceleb.find_ffmpeg()
    for i, rate in enumerate((16000, 44100)):  # an AAC file at another rate is converted too
        source = tmp_path / f"src{i}.wav"
        _audio(source, rate=rate)
        m4a = tmp_path / "vox2" / "aac" / "id00012" / "abc" / f"0000{i}.m4a"
        m4a.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(source), str(m4a)], check=True)
    corpus = VoxCelebCorpus(str(tmp_path / "vox2"), str(tmp_path / "cache"), m4a_dir="aac")
    manifest = corpus.manifest()
    assert [u.utt_id for u in manifest] == ["id00012/abc/00000", "id00012/abc/00001"]
    for row in manifest:
        info = sf.info(str(manifest.audio_path(row)))
        assert (info.samplerate, info.channels) == (16000, 1)
        assert abs(row.num_samples - 24000) < 2048  # 1.5 s (+ AAC priming)
    converted = manifest.audio_path(manifest[0])
    stamp = converted.stat().st_mtime_ns
    corpus.prepare()  # nothing left to convert
    assert converted.stat().st_mtime_ns == stamp


def test_train_on_one_corpus_and_test_on_another_with_its_lists(
    tiny_corpus, tmp_path: Path
) -> None:
    """VoxCeleb2-style training with VoxCeleb1's trial list: ids prefixed, eval-only speakers."""
    vox1 = tiny_corpus.reader
    train_root = tmp_path / "vox2"
    shutil.copytree(Path(vox1.root) / "wav", train_root / "wav")
    vox2 = VoxCelebCorpus(str(train_root), str(tmp_path / "cache"))
    combined = CombinedCorpus({"vox2": vox2, "vox1": vox1}, eval_only=["vox1"])
    manifest = combined.manifest()
    assert len(manifest) == 2 * len(vox1.manifest())
    assert {s.split("/")[0] for s in manifest.speakers} == {"vox1", "vox2"}
    assert Path(manifest.audio_path(manifest[0])).is_file()  # absolute paths
    dm = SpeakerDataModule(
        combined,
        num_speakers=None,
        val_speakers=2,
        test_trials="veri_test2.txt",
        batch_size=4,
        num_workers=0,
    )
    dm.setup("fit")
    assert all(s.startswith("vox2/") for s in dm.speakers)  # vox1 only tests
    assert all(u.speaker.startswith("vox1/") for u in dm.test_trials.utterances)
    assert len(dm.test_trials.labels) == len(
        [line for line in (Path(vox1.root) / "veri_test2.txt").read_text().splitlines() if line]
    )
    with pytest.raises(ListFileError, match=r"list_test_hard2\.txt: in none of the combined"):
        combined.trial_path("list_test_hard2.txt")
    with pytest.raises(ConfigError, match="eval_only names no combined corpus"):
        CombinedCorpus({"vox2": vox2}, eval_only=["vox1"])


def test_generated_test_split_is_speaker_disjoint_and_seeded(tiny_corpus) -> None:
    def split(seed: int):
        dm = SpeakerDataModule(
            tiny_corpus,
            num_speakers=None,
            val_speakers=0.2,
            test_trials=None,
            test_speakers=0.25,
            seed=seed,
            batch_size=4,
            num_workers=0,
        )
        dm.setup("fit")
        return dm

    dm = split(0)
    test = {u.speaker for u in dm.test_trials.utterances}
    val = {u.speaker for u in dm.val_trials.utterances}
    total = len(tiny_corpus.manifest().speakers)
    assert len(test) == round(0.25 * total) and not test & val and not test & set(dm.speakers)
    assert set(dm.test_trials.labels.tolist()) == {0, 1}
    assert {u.speaker for u in split(0).test_trials.utterances} == test
    assert {u.speaker for u in split(1).test_trials.utterances} != test


# -- augmentation sources -------------------------------------------------------------------


def test_musan_and_rirs_read_as_shipped(tmp_path: Path) -> None:
    musan = tmp_path / "musan"
    for category, source in (("noise", "free-sound"), ("music", "fma"), ("speech", "librivox")):
        for i in range(2):
            _audio(musan / category / source / f"{category}-{i}.wav")
    reader = MusanCorpus(str(musan), str(tmp_path / "cache"))
    assert [len(reader.files(c)) for c in ("noise", "music", "speech")] == [2, 2, 2]
    assert all(p.is_file() for p in reader.files("music"))

    rirs = tmp_path / "RIRS_NOISES"
    for room in ("smallroom/Room001", "largeroom/Room002"):
        _audio(rirs / "simulated_rirs" / room / "Room-00001.wav", seconds=0.3)
    real = rirs / "real_rirs_isotropic_noises"
    _audio(real / "RWCP_type1_rir_circle_ane_imp000.wav", seconds=0.3, channels=2)
    _audio(real / "RWCP_type1_noise_ane_circle_000.wav", seconds=0.3)
    (real / "noise_list").write_text(
        "--noise-id 001 --noise-type isotropic RIRS_NOISES/real_rirs_isotropic_noises/"
        "RWCP_type1_noise_ane_circle_000.wav\n"
    )
    reader = RirCorpus(str(rirs), str(tmp_path / "cache"), policy={"multichannel": "downmix"})
    assert len(reader.files("simulated_rir")) == 2
    assert [p.name for p in reader.files("real_noise")] == ["RWCP_type1_noise_ane_circle_000.wav"]
    assert [p.name for p in reader.files("real_rir")] == ["RWCP_type1_rir_circle_ane_imp000.wav"]


def test_prepare_validate_reports_the_counts(planted: Path, tmp_path: Path) -> None:
    overrides = [
        "corpus=voxceleb",
        f"corpus.root={planted}",
        f"corpus.cache_dir={tmp_path / 'cache'}",
        "corpus.meta_file=null",
        "corpus.on_bad_file=skip",
        "+corpus.policy.wrong_rate=resample",
        "corpus.min_seconds=0.5",
        "validate=true",
    ]
    results = prepare(compose_config("prepare", overrides))
    assert results["utterances"] == 8 and results[f"checked ({planted})"] == "13 files, 8 kept"
    assert results["  wrong_rate"] == "1 resample" and results["  unreadable"] == "1 skip"
    assert Path(results["  report"]).is_file()
    again = prepare(compose_config("prepare", overrides[:-1]))  # the cached manifest: no pass
    assert again["utterances"] == 8 and f"checked ({planted})" not in again
