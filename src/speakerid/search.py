"""``speakerid-search RECORDING... store=DIR [output=FILE.rttm|FILE.json]``: who speaks when.

Each recording is read in blocks (``block_seconds``; a 2-hour file never needs its whole decoded
waveform in memory) and goes through three steps:

1. a voice activity detector gives each 32 ms frame a speech probability
   (:mod:`speakerid.data.activity`: Silero VAD, weights inside its wheel; ``vad=energy`` the
   fallback); pauses shorter than ``min_silence`` are filled, speech shorter than ``min_speech``
   dropped;
2. sliding windows (``window`` s every ``hop`` s) with at least ``min_window_speech`` of speech are
   embedded in batches by the store's model and scored against every enrolled voiceprint: the
   best speaker when its cosine is above the threshold (the model's stored operating point by
   default), else ``unknown``; a majority vote over ``smooth`` neighbouring windows smooths the
   labels;
3. each speech frame takes the label of the window whose centre is nearest (``unknown`` when no
   embedded window covers it), and runs of one label become segments, scored by the mean best
   cosine of their windows.

One speaker at a time: overlapped speech is given to one of its speakers. The segments are printed,
or written as RTTM (``*.rttm``, the score in the confidence field) or JSON (``*.json``).
"""

import json
import logging
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import BarColumn, Progress, TimeRemainingColumn
from rich.table import Table
from torch.nn.functional import normalize

from speakerid.api import Model, Speakers
from speakerid.cli import quiet_environment, report_user_errors, tool_config
from speakerid.data.activity import FRAME_SECONDS, activity_detector, clean_mask, runs
from speakerid.data.audio import audio_info
from speakerid.data.corpora.folder import extension_list
from speakerid.enrolment import open_store, probe_files
from speakerid.errors import AudioError, ConfigError
from speakerid.metrics.identification import UNKNOWN, reject_unknown
from speakerid.outputs import result_file
from speakerid.utils.io import atomic_open

log = logging.getLogger(__name__)
FIELDS = ("file", "start", "end", "speaker", "score")
NOT_SPEECH = -2  # a frame's code beside the speakers' indices and UNKNOWN


@dataclass(frozen=True)
class Segment:
    """One turn: ``speaker`` (or ``unknown``) speaks in ``file`` from ``start`` to ``end`` s."""

    file: str
    start: float
    end: float
    speaker: str
    score: float | None


@dataclass(frozen=True)
class Windows:
    """The decided windows of one recording: (K,) start sample, speaker index (-1: unknown) and
    best cosine; ``frames`` the recording's (F,) cleaned speech mask."""

    starts: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    frames: np.ndarray
    length: int  # samples of the window


def search(argv: list[str]) -> list[Segment]:
    """The segments of every recording named in ``argv`` (or inside a folder named there)."""
    cfg, targets = tool_config("search", argv)
    _check_settings(cfg)
    files = probe_files(targets, list(extension_list(cfg.extensions)))
    output = _output(cfg.output, [*files, Path(cfg.store)])
    model, speakers = open_store(cfg.store, cfg.ckpt_path, cfg.threshold)
    if cfg.threshold is not None:
        model.threshold  # noqa: B018 (a missing stored threshold is refused before any work)
    seconds = [_duration(f) for f in files]
    segments: list[Segment] = []
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=not cfg.progress,
    ) as progress:
        task = progress.add_task("searching (audio s)", total=sum(seconds))
        for file in files:
            windows = decide_windows(
                file, model, speakers, cfg, lambda s: progress.advance(task, s)
            )
            segments += label_segments(windows, speakers.names, model.sample_rate, str(file))
    if output is not None:
        _write(output, segments)
    print(model.operating_point.describe(), file=sys.stderr)
    return segments


def _check_settings(cfg: DictConfig) -> None:
    for key in ("window", "hop", "block_seconds", "min_speech", "min_silence"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{key}={value!r}: a number of seconds above 0")
    if cfg.hop > cfg.window:
        raise ConfigError(f"hop={cfg.hop} is longer than window={cfg.window}: audio is skipped")
    if not 0 <= cfg.min_window_speech <= 1 or not 0 < cfg.vad_threshold < 1:
        raise ConfigError("min_window_speech must lie in [0, 1] and vad_threshold in (0, 1)")
    if not isinstance(cfg.smooth, int) or cfg.smooth < 1 or cfg.smooth % 2 == 0:
        raise ConfigError(f"smooth={cfg.smooth!r}: an odd number of windows (1: no smoothing)")
    if not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size!r}: a whole number above 0")


def _duration(path: Path) -> float:
    info = audio_info(path)
    if info.frames == 0:
        raise AudioError(f"{path}: empty audio file")
    return info.frames / info.samplerate


def read_blocks(path: Path, rate: int, seconds: float):
    """Mono float32 blocks of ``path`` at ``rate`` (channels averaged, other rates resampled block
    by block), about ``seconds`` long: the whole waveform is never in memory."""
    with sf.SoundFile(str(path)) as audio:
        if audio.samplerate != rate:
            log.info("%s: resampled from %d Hz to %d Hz", path, audio.samplerate, rate)
        size = max(1, round(seconds * audio.samplerate))
        while True:
            block = audio.read(size, dtype="float32", always_2d=True)
            if len(block) == 0:
                return
            mono = block.mean(axis=1)
            if not np.isfinite(mono).all():
                raise AudioError(f"{path}: holds NaN or infinite samples")
            if audio.samplerate != rate:
                mono = torchaudio.functional.resample(
                    torch.from_numpy(mono), audio.samplerate, rate
                ).numpy()
            yield mono.astype(np.float32, copy=False)


class WindowStream:
    """Windows of ``length`` samples every ``hop`` samples over audio fed in blocks; at the end a
    last window reaching the end (or the whole recording, when shorter than a window)."""

    def __init__(self, length: int, hop: int) -> None:
        self.length, self.hop = length, hop
        self.buffer = np.zeros(0, np.float32)
        self.buffer_start = 0  # the sample of the recording at buffer[0]
        self.next_start = 0
        self.last_end = 0

    def feed(self, block: np.ndarray) -> list[tuple[int, np.ndarray]]:
        self.buffer = np.concatenate([self.buffer, block])
        end = self.buffer_start + len(self.buffer)
        out = []
        while self.next_start + self.length <= end:
            offset = self.next_start - self.buffer_start
            out.append((self.next_start, self.buffer[offset : offset + self.length]))
            self.last_end = self.next_start + self.length
            self.next_start += self.hop
        keep = min(self.next_start, max(0, end - self.length))  # room for the final window
        self.buffer = self.buffer[keep - self.buffer_start :]
        self.buffer_start = keep
        return out

    def finish(self) -> list[tuple[int, np.ndarray]]:
        end = self.buffer_start + len(self.buffer)
        if self.last_end == 0 and end > 0:
            return [(0, self.buffer)]  # shorter than one window
        if end - self.last_end > 0:
            return [(end - self.length, self.buffer[len(self.buffer) - self.length :])]
        return []


@torch.inference_mode()
def decide_windows(
    path: Path, model: Model, speakers: Speakers, cfg: DictConfig, advance=lambda seconds: None
) -> Windows:
    """Read ``path`` block by block: speech frames, and a decision for each speech window."""
    rate = model.sample_rate
    vad = activity_detector(cfg.vad, rate)
    stream = WindowStream(round(cfg.window * rate), round(cfg.hop * rate))
    decider = _Decider(model, speakers, FRAME_SECONDS * rate, cfg.min_window_speech)
    speech = np.zeros(0, bool)
    pending: list[tuple[int, np.ndarray]] = []
    for block in read_blocks(path, rate, cfg.block_seconds):
        speech = np.concatenate([speech, vad.feed(block) > cfg.vad_threshold])
        pending += stream.feed(block)
        while len(pending) >= cfg.batch_size:
            decider(pending[: cfg.batch_size], speech)
            pending = pending[cfg.batch_size :]
        advance(len(block) / rate)
    decider(pending + stream.finish(), speech)
    mask = clean_mask(
        speech, round(cfg.min_speech / FRAME_SECONDS), round(cfg.min_silence / FRAME_SECONDS)
    )
    order = np.argsort(decider.starts, kind="stable")
    starts = np.asarray(decider.starts, np.int64)[order]
    labels = np.asarray(decider.labels, np.int64)[order]
    return Windows(
        starts,
        smooth_labels(labels, starts, stream.hop, cfg.smooth),
        np.asarray(decider.scores, np.float64)[order],
        mask,
        stream.length,
    )


class _Decider:
    """Embeds the windows with enough speech, in one batch, and keeps each one's decision."""

    def __init__(self, model: Model, speakers: Speakers, frame: float, min_speech: float) -> None:
        self.system, self.models = model.system, speakers.models
        self.frame, self.min_speech = frame, min_speech
        threshold = model.operating_point.threshold
        self.threshold = -float("inf") if threshold is None else threshold
        self.starts: list[int] = []
        self.labels: list[int] = []
        self.scores: list[float] = []

    def __call__(self, batch: list[tuple[int, np.ndarray]], speech: np.ndarray) -> None:
        kept = [
            (start, wav)
            for start, wav in batch
            if _speech_share(speech, start, len(wav), self.frame) >= self.min_speech
        ]
        for size in sorted({len(wav) for _, wav in kept}):  # the window, or a short recording
            group = [(start, wav) for start, wav in kept if len(wav) == size]
            wav = torch.from_numpy(np.stack([w for _, w in group]))
            raw = self.system(wav, torch.full((len(group),), size))
            scores = normalize(raw.float(), dim=1) @ self.models.T  # (B,C)
            best_class, best = reject_unknown(scores, self.threshold)
            self.starts += [start for start, _ in group]
            self.labels += best_class.tolist()
            self.scores += best.tolist()


def _speech_share(speech: np.ndarray, start: int, length: int, frame: float) -> float:
    """The fraction of the frames under a window that are speech (frames not yet known: none)."""
    first, last = int(start // frame), int(np.ceil((start + length) / frame))
    return float(speech[first:last].sum()) / max(1, last - first)


def smooth_labels(labels: np.ndarray, starts: np.ndarray, hop: int, width: int) -> np.ndarray:
    """A majority vote over ``width`` neighbouring windows, within runs of adjacent windows (a
    tie keeps the window's own label).

    Example:
        >>> smooth_labels(np.array([0, 1, 0, 0, 2, 2]), np.arange(6) * 10, 10, 3).tolist()
        [0, 0, 0, 0, 2, 2]
    """
    if width == 1 or len(labels) == 0:
        return labels
    out = labels.copy()
    breaks = np.flatnonzero(np.diff(starts) > hop) + 1
    half = width // 2
    for run in np.split(np.arange(len(labels)), breaks):
        for i, k in enumerate(run):
            votes = Counter(labels[run[max(0, i - half) : i + half + 1]].tolist())
            top, count = votes.most_common(1)[0]
            if count > votes[labels[k]]:
                out[k] = top
    return out


def label_segments(windows: Windows, names: list[str], rate: int, file: str) -> list[Segment]:
    """Speech frames labelled by the nearest window's decision, as segments of one label."""
    centres = (windows.starts + windows.length / 2) / rate  # (K,) s
    times = (np.arange(len(windows.frames)) + 0.5) * FRAME_SECONDS  # (F,) s
    if len(centres):
        right = np.searchsorted(centres, times).clip(0, len(centres) - 1)
        left = (right - 1).clip(0)
        closer = np.abs(centres[left] - times) <= np.abs(centres[right] - times)
        nearest = np.where(closer, left, right)
        covered = np.abs(centres[nearest] - times) <= windows.length / rate / 2
        codes = np.where(covered, windows.labels[nearest], UNKNOWN)
    else:
        nearest, covered = np.zeros(len(times), np.int64), np.zeros(len(times), bool)
        codes = np.full(len(times), UNKNOWN)
    codes = np.where(windows.frames, codes, NOT_SPEECH)
    segments = []
    for code in np.unique(codes[codes != NOT_SPEECH]):
        for start, end in zip(*runs(codes == code), strict=True):
            inside = np.unique(nearest[start:end][covered[start:end]])
            score = float(windows.scores[inside].mean()) if len(inside) else None
            segments.append(
                Segment(
                    file,
                    round(start * FRAME_SECONDS, 3),
                    round(end * FRAME_SECONDS, 3),
                    "unknown" if code == UNKNOWN else names[int(code)],
                    score,
                )
            )
    return sorted(segments, key=lambda s: s.start)


def _output(output: str | None, inputs: list[Path]) -> Path | None:
    """The output path, checked before any work: an .rttm or .json file that is not an input and
    not a file of the user's (an earlier result of this tool is replaced)."""
    if output and Path(output).suffix.lower() not in (".rttm", ".json"):
        raise ConfigError(f"output={output}: name an .rttm or a .json file")
    return result_file(output, inputs, "speakerid-search", "search results", _earlier_result)


def _earlier_result(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            rows = json.loads(text)
            return isinstance(rows, list) and all(
                isinstance(r, dict) and set(r) == set(FIELDS) for r in rows
            )
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    lines = text.splitlines()
    return all(line.startswith("SPEAKER ") and len(line.split()) == 10 for line in lines)


def _write(output: Path, segments: list[Segment]) -> None:
    with atomic_open(output) as out:
        if output.suffix.lower() == ".json":
            json.dump([asdict(s) for s in segments], out, indent=1, ensure_ascii=False)
            out.write("\n")
            return
        for s in segments:
            uri = "_".join(Path(s.file).stem.split()) or "recording"
            score = "<NA>" if s.score is None else f"{s.score:.4f}"
            out.write(
                f"SPEAKER {uri} 1 {s.start:.3f} {s.end - s.start:.3f} <NA> <NA> "
                f"{s.speaker} {score} <NA>\n"
            )


def main() -> None:
    quiet_environment()
    torch.set_flush_denormal(True)
    segments = report_user_errors(search)(sys.argv[1:])
    table = Table(title="speakerid-search")
    for column in FIELDS:
        table.add_column(column, justify="left" if column in ("file", "speaker") else "right")
    for s in segments:
        score = "" if s.score is None else f"{s.score:.4f}"
        table.add_row(s.file, f"{s.start:.2f}", f"{s.end:.2f}", s.speaker, score)
    Console().print(table)


if __name__ == "__main__":
    main()
