"""speakerid-search on generated conversations with known truth: the table in docs/evaluation.md.

Usage:
    python scripts/conversations.py CKPT [--out logs/conversations] [--count 10] [--seconds 120]
    python scripts/conversations.py CKPT --long 7200   # one 2-hour recording, for memory and speed

Conversations are built from the built-in corpus's held-out speakers (``data/synthetic``, made
by ``make prepare``): in each, 4 speakers, 3 of them enrolled (2 files each, into one store that
holds every enrolled speaker of every conversation), 1 not. Each is searched with the default
settings and scored with pyannote.metrics (speakerid.conversations.score); the table (markdown)
is printed and written to ``<out>/table.md``. ``--long`` writes ``<out>/long.wav`` (consecutive
conversations, written as they are made) and the store, and prints the command to measure.
"""

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from speakerid.conversations import (
    Turn,
    held_out_speakers,
    make_conversation,
    score,
    write_rttm,
)
from speakerid.data.corpora import SyntheticCorpus
from speakerid.enroll import enroll
from speakerid.search import search

SPEAKERS, ENROLLED = 4, 3


def _conversations(manifest, count: int, seconds: float):
    held_out = held_out_speakers(manifest, 40)
    rng = np.random.default_rng(0)
    for seed in range(count):
        speakers = [str(s) for s in rng.choice(held_out, SPEAKERS, replace=False)]
        yield seed, make_conversation(manifest, speakers, ENROLLED, seconds, seed=seed)


def _enrol(ckpt: str, store: Path, enrolment: dict) -> None:
    known = set(enroll([f"store={store}", "action=list"]).names) if store.exists() else set()
    for name, files in enrolment.items():
        if name not in known:
            enroll([f"ckpt_path={ckpt}", f"store={store}", f"speaker={name}", *map(str, files)])


def measure(
    ckpt: str, out: Path, manifest, count: int, seconds: float, threshold: str
) -> list[dict]:
    rows = []
    talks = list(_conversations(manifest, count, seconds))
    for _, talk in talks:
        _enrol(ckpt, out / "voices", talk.enrolment)
    for seed, talk in talks:
        wav = out / f"talk{seed}.wav"
        sf.write(wav, talk.wav, talk.sample_rate)
        write_rttm(out / f"talk{seed}.reference.rttm", f"talk{seed}", talk.turns)
        found = search(
            [
                str(wav),
                f"store={out / 'voices'}",
                f"output={out / f'talk{seed}.rttm'}",
                "progress=false",
                f"threshold={threshold}",
            ]
        )
        hypothesis = [Turn(s.start, s.end, s.speaker) for s in found]
        overlap = _overlap_seconds(talk.turns)
        rows.append(
            {"talk": seed, "overlap": overlap, **score(talk.turns, hypothesis, talk.enrolment)}
        )
    return rows


def _overlap_seconds(turns) -> float:
    """Seconds where two turns overlap (turns overlap only their neighbour)."""
    return sum(max(0.0, a.end - b.start) for a, b in itertools.pairwise(turns))


def table(rows: list[dict]) -> str:
    lines = [
        "| conversation | speech s | overlap s | DER | IER | missed | false alarm | confusion |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| talk{r['talk']} | {r['speech_seconds']:.0f} | {r['overlap']:.1f} | "
            f"{r['der']:.1%} | "
            f"{r['ier']:.1%} | {r['missed']:.1%} | {r['false_alarm']:.1%} | {r['confusion']:.1%} |"
        )
    speech = sum(r["speech_seconds"] for r in rows)
    pooled = {
        k: sum(r[k] * r["speech_seconds"] for r in rows) / speech
        for k in ("der", "ier", "missed", "false_alarm", "confusion")
    }
    lines.append(
        f"| **all** | {speech:.0f} | {sum(r['overlap'] for r in rows):.1f} | {pooled['der']:.1%} | "
        f"{pooled['ier']:.1%} | {pooled['missed']:.1%} | {pooled['false_alarm']:.1%} | "
        f"{pooled['confusion']:.1%} |"
    )
    return "\n".join(lines).replace("%", " %")


def write_long(ckpt: str, out: Path, manifest, seconds: float) -> Path:
    """A recording of ``seconds``: four 5-minute conversations, repeated in turn, written as
    they go (speed and memory do not depend on which voices speak)."""
    path = out / "long.wav"
    talks = [talk for _, talk in _conversations(manifest, 4, 300)]
    for talk in talks:
        _enrol(ckpt, out / "voices", talk.enrolment)
    written, total = 0, round(seconds * 16000)
    with sf.SoundFile(str(path), "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        for talk in itertools.cycle(talks):
            if written >= total:
                break
            part = talk.wav[: total - written]
            f.write(part)
            written += len(part)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--data", default="data", help="holds synthetic/ and cache/")
    parser.add_argument("--out", default="logs/conversations")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--long", type=float, default=0, help="write one recording this long")
    parser.add_argument("--threshold", default="stored", help="speakerid-search's threshold=")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = SyntheticCorpus(f"{args.data}/synthetic", f"{args.data}/cache").manifest()
    if args.long:
        path = write_long(args.ckpt, out, manifest, args.long)
        print(
            f"/usr/bin/time -v nice -n 10 speakerid-search {path} store={out / 'voices'} "
            f"output={out / 'long.rttm'} progress=false threshold={args.threshold}"
        )
        return
    rows = measure(args.ckpt, out, manifest, args.count, args.seconds, args.threshold)
    (out / "scores.json").write_text(json.dumps(rows, indent=1))
    text = table(rows)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
