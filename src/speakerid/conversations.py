"""Conversations with known truth, built from a corpus's held-out speakers, and their scores.

A conversation is a sequence of turns (``turn_seconds``, default 1–8 s) of randomly alternating
speakers, each turn the speaker's utterances with their leading and trailing silence trimmed and
joined; turns are separated by pauses (``pause_seconds``) or, for a share of them
(``overlap_share``), start before the previous one ends (``overlap_seconds``). Some speakers are
enrolled (their first ``enrol_per_speaker`` utterances, never used in the conversation), the
others are not: ``speakerid-search`` should call them ``unknown``.

:func:`score` compares what ``speakerid-search`` found with the reference using pyannote.metrics
(Bredin, 2017, "pyannote.metrics: a toolkit for reproducible evaluation, diagnostic, and error
analysis of speaker diarization systems"): diarization error rate (speakers mapped one to one),
identification error rate (names compared as they are; every unenrolled speaker is ``unknown``
in the reference), and missed and false-alarm speech, each a fraction of the reference speech.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from speakerid.data.manifest import Manifest

TRIM_DB = 35.0  # an utterance's edges quieter than its loudest 32 ms by this much are cut


@dataclass(frozen=True)
class Turn:
    """``speaker`` speaks from ``start`` to ``end`` s."""

    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Conversation:
    """A recording, its reference turns, and the enrolment files of its enrolled speakers."""

    wav: np.ndarray
    sample_rate: int
    turns: list[Turn]
    enrolment: dict[str, list[Path]]
    unenrolled: list[str]


def held_out_speakers(manifest: Manifest, test_speakers: int) -> list[str]:
    """The built-in corpus's held-out speakers: the last ``test_speakers`` in sorted order."""
    return sorted(manifest.speakers)[-test_speakers:]


def trimmed(wav: np.ndarray, rate: int) -> np.ndarray:
    """``wav`` without its leading and trailing frames ``TRIM_DB`` below its loudest.

    Example:
        >>> x = np.concatenate([np.zeros(1600), np.ones(3200), np.zeros(1600)])
        >>> len(trimmed(x, 16000))
        3584
    """
    frame = round(0.032 * rate)
    usable = len(wav) // frame * frame
    energy = 10 * np.log10(np.mean(wav[:usable].reshape(-1, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() - TRIM_DB)
    if len(loud) == 0:
        return wav
    return wav[loud[0] * frame : (loud[-1] + 1) * frame]


def make_conversation(
    manifest: Manifest,
    speakers: list[str],
    enrolled: int,
    seconds: float,
    seed: int,
    enrol_per_speaker: int = 2,
    turn_seconds: tuple[float, float] = (1.0, 8.0),
    pause_seconds: tuple[float, float] = (0.2, 1.5),
    overlap_share: float = 0.1,
    overlap_seconds: tuple[float, float] = (0.2, 1.0),
) -> Conversation:
    """A conversation of about ``seconds`` among ``speakers``, the first ``enrolled`` enrolled."""
    rng = np.random.default_rng(seed)
    by_speaker = {s: [u for u in manifest if u.speaker == s] for s in speakers}
    enrolment = {
        s: [manifest.audio_path(u) for u in by_speaker[s][:enrol_per_speaker]]
        for s in speakers[:enrolled]
    }
    pools = {s: by_speaker[s][enrol_per_speaker:] for s in speakers}
    if any(len(pool) == 0 for pool in pools.values()):
        raise ValueError(f"every speaker needs more than {enrol_per_speaker} utterances")
    used = dict.fromkeys(speakers, 0)
    rate = manifest_rate(manifest, by_speaker[speakers[0]][0])
    pieces, turns, cursor, previous = [], [], 0.0, None
    while cursor < seconds:
        speaker = str(rng.choice([s for s in speakers if s != previous]))
        audio = _turn_audio(manifest, pools[speaker], used, speaker, rate, rng, turn_seconds)
        if turns and rng.random() < overlap_share:
            overlap = min(rng.uniform(*overlap_seconds), (turns[-1].end - turns[-1].start) / 2)
            start = turns[-1].end - overlap
        else:
            start = (turns[-1].end if turns else 0.0) + rng.uniform(*pause_seconds)
        start = round(start * rate) / rate
        turns.append(Turn(start, start + len(audio) / rate, speaker))
        pieces.append((round(start * rate), audio))
        cursor, previous = turns[-1].end, speaker
    wav = np.zeros(max(s + len(a) for s, a in pieces) + round(0.5 * rate), np.float32)
    for start, audio in pieces:
        wav[start : start + len(audio)] += audio
    wav /= max(1.0, float(np.abs(wav).max()) / 0.9)  # overlaps may sum above full scale
    return Conversation(wav, rate, turns, enrolment, speakers[enrolled:])


def manifest_rate(manifest: Manifest, utterance) -> int:
    return sf.info(str(manifest.audio_path(utterance))).samplerate


def _turn_audio(manifest, pool, used, speaker, rate, rng, turn_seconds) -> np.ndarray:
    """A turn of ``speaker``: its next utterances (in turn, cycling), trimmed and joined, cut to
    a length drawn from ``turn_seconds`` (at least one whole utterance when shorter)."""
    length = rng.uniform(*turn_seconds) * rate
    parts, total = [], 0
    while total < length:
        utterance = pool[used[speaker] % len(pool)]
        used[speaker] += 1
        wav, file_rate = sf.read(str(manifest.audio_path(utterance)), dtype="float32")
        if file_rate != rate:
            raise ValueError(f"{utterance.path}: {file_rate} Hz, not {rate} Hz as the others")
        parts.append(trimmed(wav, rate))
        total += len(parts[-1])
    return np.concatenate(parts)[: max(round(length), len(parts[0]))]


def write_rttm(path: Path, uri: str, turns: Iterable[Turn]) -> None:
    """Turns as RTTM lines (``SPEAKER uri 1 start duration <NA> <NA> speaker <NA> <NA>``)."""
    with open(path, "w") as out:
        for t in turns:
            out.write(
                f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} "
                "<NA> <NA>\n"
            )


def score(reference: list[Turn], hypothesis: Iterable[Turn], enrolled: Iterable[str]) -> dict:
    """Diarization and identification error rates, missed and false-alarm speech (pyannote)."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.detection import DetectionErrorRate
    from pyannote.metrics.diarization import DiarizationErrorRate
    from pyannote.metrics.identification import IdentificationErrorRate

    known = set(enrolled)

    def annotation(turns: Iterable[Turn], rename: bool) -> Annotation:
        out = Annotation()
        for i, t in enumerate(turns):
            name = t.speaker if not rename or t.speaker in known else "unknown"
            out[Segment(t.start, t.end), i] = name
        return out

    ref, hyp = annotation(reference, False), annotation(hypothesis, False)
    der = DiarizationErrorRate()(ref, hyp, detailed=True)
    ier = IdentificationErrorRate()(annotation(reference, True), hyp, detailed=True)
    detection = DetectionErrorRate()(ref, hyp, detailed=True)
    speech = detection["total"]
    return {
        "speech_seconds": speech,
        "der": der["diarization error rate"],
        "ier": ier["identification error rate"],
        "missed": detection["miss"] / speech,
        "false_alarm": detection["false alarm"] / speech,
        "confusion": ier["confusion"] / ier["total"],
    }
