"""``make bench``'s augmented loader beside SpeechBrain's augmentation doing the same work.

Both read random ``seconds`` crops of the same generated 3-5 s wavs (batches of 32, 2 loader
workers kept between epochs) and give every crop reverberation with an impulse response read
from a file, then additive noise read from a file at 0-15 dB SNR (probability 1 each: the
choices are the same, so the work is). Ours augments in the loader workers
(``data.augment``: ``Reverb`` + ``AdditiveNoise`` over RIRS_NOISES / MUSAN layouts); SpeechBrain
augments each batch as its VoxCeleb recipe does (``speechbrain.augment.augmenter.Augmenter`` with
``AddReverb`` + ``AddNoise`` from CSV lists, in the training process).
"""

import csv
from pathlib import Path

import numpy as np

from speakerid.bench_data import _generated_wavs, _speechbrain_loader, timed


def _sources(folder: Path, count: int = 20) -> tuple[Path, Path, list[str], list[str]]:
    """(MUSAN-like root, RIRS_NOISES-like root, noise files, RIR files): ``count`` 5 s coloured
    noises and ``count`` simulated RIRs (RT60 0.2-0.8 s), as 16 kHz wavs."""
    import soundfile as sf

    from speakerid.data.corpora.channel import coloured_noise

    rng = np.random.default_rng(2)
    musan, rirs = folder / "musan", folder / "RIRS_NOISES"
    noises, responses = [], []
    for i in range(count):
        noise = musan / "noise" / "free-sound" / f"noise-{i:04d}.wav"
        rir = rirs / "simulated_rirs" / "smallroom" / f"Room{i:03d}" / f"Room{i:03d}-00001.wav"
        for path in (noise, rir):
            path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(noise, coloured_noise(80000, float(rng.uniform(0, 2)), rng), 16000)
        rt60 = rng.uniform(0.2, 0.8)
        t = np.arange(int(rt60 * 16000)) / 16000
        sf.write(rir, (0.5 * rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)), 16000)
        noises.append(str(noise))
        responses.append(str(rir))
    return musan, rirs, noises, responses


def _csv(path: Path, files: list[str]) -> str:
    """A SpeechBrain (extended) data CSV of ``files``: ID, duration, wav, its format and options."""
    import soundfile as sf

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "duration", "wav", "wav_format", "wav_opts"])
        for i, file in enumerate(files):
            writer.writerow([f"f{i}", sf.info(file).duration, file, "wav", ""])
    return str(path)


def bench_augmentation(num_files: int = 400, seconds: float = 2.0, workers: int = 2) -> dict:
    """Augmented training crops per second: ours vs SpeechBrain's augmentation, same work."""
    import tempfile

    import torch
    from speechbrain.augment.augmenter import Augmenter
    from speechbrain.augment.time_domain import AddNoise, AddReverb

    from speakerid.data.augment import AdditiveNoise, Compose, Reverb
    from speakerid.data.datasets import CropDataset, collate
    from speakerid.data.samplers import ResumableLoader, ResumableSampler

    crop = int(16000 * seconds)
    with tempfile.TemporaryDirectory() as tmp:
        paths, lengths = _generated_wavs(tmp, num_files)
        musan, rirs, noises, responses = _sources(Path(tmp))
        cache = f"{tmp}/cache"
        augment = Compose(
            [
                Reverb(str(rirs), ["simulated_rir"], probability=1.0, cache_dir=cache),
                AdditiveNoise(str(musan), {"noise": [0, 15]}, probability=1.0, cache_dir=cache),
            ]
        )
        ours = ResumableLoader(
            CropDataset(paths, lengths, [0] * num_files, crop, 16000, augment),
            ResumableSampler(num_files, seed=0),
            batch_size=32,
            num_workers=workers,
            persistent_workers=workers > 0,
            collate_fn=collate,
        )
        speechbrain = _speechbrain_loader(paths, lengths, crop, workers)
        sb_augment = Augmenter(
            augmentations=[
                AddReverb(_csv(Path(tmp) / "rirs.csv", responses)),
                AddNoise(_csv(Path(tmp) / "noise.csv", noises), snr_low=0, snr_high=15),
            ],
            min_augmentations=2,
            max_augmentations=2,
            augment_prob=1.0,
        )

        def speechbrain_epoch() -> int:
            done = 0
            with torch.no_grad():
                for batch in speechbrain:
                    wav, relative = batch.sig
                    done += len(sb_augment(wav, relative)[0])
            return done

        rates = {
            "ours, reverb + noise in the workers": num_files
            / timed(lambda: sum(len(b.index) for b in ours), repeats=2),
            "speechbrain Augmenter (AddReverb + AddNoise) on each batch": num_files
            / timed(speechbrain_epoch, repeats=2),
        }
    ours_rate, peer = rates.values()
    return {
        "name": f"augmented crops (reverb + noise), {workers} workers, vs speechbrain (utt/s)",
        "value": ours_rate,
        "reference": peer,
        "rates": rates,
    }
