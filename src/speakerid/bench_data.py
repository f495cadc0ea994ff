"""``make bench``'s data figures: the training-data pipeline from files and from shards beside
bare soundfile decoding, and opening a 100 k-file manifest from its cache beside building it."""

import time
from pathlib import Path

import numpy as np


def timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _generated_wavs(folder: str, num_files: int) -> tuple[list[str], list[int]]:
    """``num_files`` 3-5 s noise wavs at 16 kHz in ``folder`` (10 speaker folders)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    paths, lengths = [], []
    for i in range(num_files):
        wav = (0.1 * rng.standard_normal(int(16000 * rng.uniform(3, 5)))).astype(np.float32)
        paths.append(f"{folder}/id{i % 10:05d}/s/{i:05d}.wav")
        lengths.append(len(wav))
        Path(paths[-1]).parent.mkdir(parents=True, exist_ok=True)
        sf.write(paths[-1], wav, 16000)
    return paths, lengths


def _speechbrain_loader(paths: list[str], lengths: list[int], crop: int, workers: int):
    """speechbrain's data pipeline as its VoxCeleb recipe builds it: a ``DynamicItemDataset``
    whose audio item reads a random ``crop`` with ``sb.dataio.dataio.read_audio`` (start/stop),
    batched by ``PaddedBatch``."""
    import random

    import speechbrain as sb
    from torch.utils.data import DataLoader

    rows = enumerate(zip(paths, lengths, strict=True))
    data = {str(i): {"wav": path, "length": n} for i, (path, n) in rows}
    dataset = sb.dataio.dataset.DynamicItemDataset(data)

    @sb.utils.data_pipeline.takes("wav", "length")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav, length):
        start = random.randint(0, length - crop)
        return sb.dataio.dataio.read_audio({"file": wav, "start": start, "stop": start + crop})

    sb.dataio.dataset.add_dynamic_item([dataset], audio_pipeline)
    sb.dataio.dataset.set_output_keys([dataset], ["id", "sig"])
    return DataLoader(
        dataset,
        batch_size=32,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        collate_fn=sb.dataio.batch.PaddedBatch,
    )


def bench_data_pipeline(num_files: int = 400, seconds: float = 2.0, workers: int = 2) -> dict:
    """Training data loading in utterances/s, on generated 3-5 s wavs, random ``seconds`` crops,
    batches of 32, ``workers`` loader processes: ours with and without the default channel
    augmentation, speechbrain's ``DynamicItemDataset`` pipeline (read + random crop, no
    augmentation) and bare ``soundfile`` crop reads of the same spans in one process. Loaders keep
    their workers between epochs (as training does); the first epoch, which starts them, is a
    warm-up and not timed."""
    import tempfile

    import soundfile as sf

    from speakerid.data.augment import ChannelAugment
    from speakerid.data.datasets import CropDataset, collate
    from speakerid.data.samplers import ResumableLoader, ResumableSampler

    crop = int(16000 * seconds)
    with tempfile.TemporaryDirectory() as tmp:
        paths, lengths = _generated_wavs(tmp, num_files)
        starts = np.random.default_rng(1).integers(0, np.asarray(lengths) - crop + 1)

        def ours(augment) -> float:
            loader = ResumableLoader(
                CropDataset(paths, lengths, [0] * num_files, crop, 16000, augment),
                ResumableSampler(num_files, seed=0),
                batch_size=32,
                num_workers=workers,
                persistent_workers=workers > 0,  # as training runs it
                collate_fn=collate,
            )
            return num_files / timed(lambda: sum(len(b.index) for b in loader), repeats=2)

        def bare() -> None:
            for path, start in zip(paths, starts, strict=True):
                sf.read(path, frames=crop, start=int(start), dtype="float32")

        speechbrain = _speechbrain_loader(paths, lengths, crop, workers)
        rates = {
            "ours, channel augmentation": ours(ChannelAugment()),
            "ours, no augmentation": ours(None),
            "speechbrain DynamicItemDataset, no augmentation": num_files
            / timed(lambda: sum(len(b.id) for b in speechbrain), repeats=2),
            "bare soundfile crop reads, 1 process": num_files / timed(bare, repeats=3),
        }
        augmented = rates["ours, channel augmentation"]
        plain = rates["ours, no augmentation"]
    return {
        "name": f"training data, {workers} workers, augmented vs bare crop reads (utt/s)",
        "value": augmented,
        "reference": rates["bare soundfile crop reads, 1 process"],
        "rates": rates,
        "ours_vs_speechbrain": plain / rates["speechbrain DynamicItemDataset, no augmentation"],
        "unaugmented_vs_bare": plain / rates["bare soundfile crop reads, 1 process"],
    }


def bench_shard_pipeline(num_files: int = 400, seconds: float = 2.0, audio: str = "int16") -> dict:
    """The same training data streamed from tar shards (``audio``: int16 or FLAC; 2 workers) vs
    read from the wav files (utterances/s, crop + channel augmentation in both)."""
    import tempfile

    from speakerid.data.augment import ChannelAugment
    from speakerid.data.datasets import CropDataset, collate
    from speakerid.data.manifest import Manifest, Utterance
    from speakerid.data.samplers import ResumableLoader, ResumableSampler
    from speakerid.data.shard_writer import write_shards
    from speakerid.data.shards import ShardDataset, ShardLoader

    with tempfile.TemporaryDirectory() as tmp:
        paths, lengths = _generated_wavs(f"{tmp}/wav", num_files)
        rows = [
            Utterance(p[len(tmp) + 5 : -4], p[len(tmp) + 5 :], p.split("/")[-3], "s", n, 16000)
            for p, n in zip(paths, lengths, strict=True)
        ]
        write_shards(Manifest(Path(f"{tmp}/wav"), rows), f"{tmp}/shards", 50, audio)
        crop = int(16000 * seconds)
        labels = {f"id{i:05d}": i for i in range(10)}
        shards = ShardLoader(
            ShardDataset(f"{tmp}/shards", labels, crop, 32, 2, augment=ChannelAugment()),
            num_workers=2,
            collate_fn=collate,
        )
        files = ResumableLoader(
            CropDataset(paths, lengths, [0] * num_files, crop, 16000, ChannelAugment()),
            ResumableSampler(num_files, seed=0),
            batch_size=32,
            num_workers=2,
            collate_fn=collate,
        )
        ours = timed(lambda: sum(len(b.labels) for b in shards), repeats=1)
        reference = timed(lambda: sum(len(b.labels) for b in files), repeats=1)
    return {
        "name": f"training data from {audio} shards vs wav files (utt/s)",
        "value": num_files / ours,
        "reference": num_files / reference,
    }


def bench_manifest(speakers: int = 1000, sessions: int = 10, per_session: int = 10) -> dict:
    """A VoxCeleb-layout corpus of ``speakers x sessions x per_session`` (100 k) small wavs:
    reopening its cached manifest vs building it (every header read), in files/s."""
    import io
    import tempfile

    import soundfile as sf

    from speakerid.data.corpora import VoxCelebCorpus

    templates = []
    for seconds in (0.1, 0.2, 0.3):
        buffer = io.BytesIO()
        sf.write(buffer, np.zeros(int(16000 * seconds), np.int16), 16000, format="WAV")
        templates.append(buffer.getvalue())
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(speakers):
            for v in range(sessions):
                folder = Path(tmp, "wav", f"id{s:05d}", f"video{v:02d}")
                folder.mkdir(parents=True)
                for u in range(per_session):
                    (folder / f"{u:05d}.wav").write_bytes(templates[(s + v + u) % 3])
        files = speakers * sessions * per_session
        start = time.perf_counter()  # once: a second build would be a reopen
        VoxCelebCorpus(tmp, f"{tmp}/cache").manifest()
        build = time.perf_counter() - start
        reopen = timed(lambda: VoxCelebCorpus(tmp, f"{tmp}/cache").manifest(), repeats=3)
        assert len(VoxCelebCorpus(tmp, f"{tmp}/cache").manifest()) == files
    return {
        "name": f"manifest of {files // 1000} k files: reopen vs build (files/s)",
        "value": files / reopen,
        "reference": files / build,
        "build_s": build,
        "reopen_s": reopen,
    }
