"""speakerid-search on a short generated conversation of the tiny corpus's held-out speakers,
scored with pyannote.metrics; its parts (windows over blocks, smoothing, segments) on their own."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.conftest import TINY_CORPUS

from speakerid.conversations import Turn, held_out_speakers, make_conversation, score
from speakerid.data.activity import EnergyActivity, SileroVad, clean_mask
from speakerid.enroll import enroll
from speakerid.errors import ConfigError
from speakerid.search import WindowStream, search


def test_windows_over_blocks_are_the_windows_of_the_whole() -> None:
    audio = np.arange(1000, dtype=np.float32)
    whole = WindowStream(300, 150)
    expected = whole.feed(audio) + whole.finish()
    stream = WindowStream(300, 150)
    got = []
    for start in range(0, 1000, 77):  # blocks unrelated to the hop
        got += stream.feed(audio[start : start + 77])
    got += stream.finish()
    assert [s for s, _ in got] == [s for s, _ in expected] == [0, 150, 300, 450, 600, 700]
    for (start, window), _ in zip(got, expected, strict=True):
        np.testing.assert_array_equal(window, audio[start : start + 300])
    short = WindowStream(300, 150)
    assert [len(w) for _, w in short.feed(audio[:200]) + short.finish()] == [200]


def test_the_detectors_find_speech_and_not_silence(tiny_corpus) -> None:
    manifest = tiny_corpus.manifest()
    wav, rate = sf.read(str(manifest.audio_path(next(iter(manifest)))), dtype="float32")
    audio = np.concatenate([np.zeros(rate, np.float32), wav, np.zeros(rate, np.float32)])
    for vad in (SileroVad(rate), EnergyActivity(rate)):
        blocks = [vad.feed(audio[i : i + 5000]) for i in range(0, len(audio), 5000)]
        speech = clean_mask(np.concatenate(blocks) > 0.5, 8, 10)
        frames = np.arange(len(speech)) * 0.032
        assert not speech[frames < 0.9].any(), type(vad).__name__  # the leading second
        assert speech[(frames > 1.2) & (frames < 1 + len(wav) / rate - 0.2)].mean() > 0.5


def test_search_finds_who_speaks_when(tiny_checkpoint: Path, tiny_corpus, tmp_path: Path) -> None:
    manifest = tiny_corpus.manifest()
    speakers = held_out_speakers(manifest, TINY_CORPUS["test_speakers"])  # 3, one not enrolled
    talk = make_conversation(manifest, speakers, enrolled=2, seconds=30, seed=0)
    sf.write(tmp_path / "talk.wav", talk.wav, talk.sample_rate)
    for name, files in talk.enrolment.items():
        enroll(
            [f"ckpt_path={tiny_checkpoint}", f"store={tmp_path}/voices", f"speaker={name}"]
            + [str(f) for f in files]
        )
    common = [str(tmp_path / "talk.wav"), f"store={tmp_path}/voices", "progress=false"]
    segments = search([*common, f"output={tmp_path}/found.rttm"])
    assert {s.speaker for s in segments} <= {*talk.enrolment, "unknown"}
    found = [Turn(s.start, s.end, s.speaker) for s in segments]
    scores = score(talk.turns, found, talk.enrolment)
    # what a search that finds the speech but not the speakers scores: all of it one speaker
    one = [Turn(s.start, s.end, speakers[0]) for s in segments]
    assert scores["missed"] < 0.2 and scores["false_alarm"] < 0.2, scores
    # the tiny model (2 epochs, 16-d) confuses voices: bounded, and well below no answer at all
    assert scores["ier"] < 0.75, scores
    assert scores["ier"] < score(talk.turns, one, talk.enrolment)["ier"] - 0.1
    rttm = (tmp_path / "found.rttm").read_text().splitlines()
    assert len(rttm) == len(segments) and all(line.split()[1] == "talk" for line in rttm)


def test_search_settings_and_outputs_are_checked(
    tiny_checkpoint: Path, tiny_corpus, tmp_path: Path
) -> None:
    manifest = tiny_corpus.manifest()
    first = next(iter(manifest))
    enroll(
        [
            f"ckpt_path={tiny_checkpoint}",
            f"store={tmp_path}/voices",
            f"speaker={first.speaker}",
            str(manifest.audio_path(first)),
        ]
    )
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000 * 3, np.float32), 16000)
    common = [str(wav), f"store={tmp_path}/voices", "progress=false"]
    assert search(common) == []  # silence: nobody speaks
    mine = tmp_path / "mine.rttm"
    mine.write_text("my notes\n")
    with pytest.raises(ConfigError, match="not an earlier speakerid-search result"):
        search([*common, f"output={mine}"])
    with pytest.raises(ConfigError, match="hop=2 is longer than window"):
        search([*common, "hop=2"])
    with pytest.raises(ConfigError, match="smooth=2"):
        search([*common, "smooth=2"])
    search([*common, f"output={tmp_path}/out.json"])
    assert json.loads((tmp_path / "out.json").read_text()) == []


def test_search_without_a_store_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from speakerid.search import main

    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    monkeypatch.setattr("sys.argv", ["speakerid-search", str(wav), f"store={tmp_path}/none"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: store={tmp_path}/none: no voiceprint store here")
