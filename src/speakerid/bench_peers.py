"""``make bench``'s comparisons with the peers and the machine: training through Lightning vs a
plain loop and vs speechbrain's ``Brain`` loop (same model widths, batches and optimizer), the
share of the CPU's measured matmul FLOP/s a training step and extraction use, and the
verification metrics vs one ``numpy.argsort``, scikit-learn and speechbrain."""

import functools
import time

import numpy as np
import torch

from speakerid.bench_data import timed

NUM_CLASSES = 144  # the built-in corpus's training speakers


def default_config():
    """``conf/train.yaml`` as composed (with ``NUM_CLASSES`` speakers): the recipe that
    ``make train`` runs, so the figures follow any change to its defaults."""
    from hydra import compose, initialize_config_dir

    from speakerid.cli import CONFIG_PATH

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose("train", [f"data.num_speakers={NUM_CLASSES}"])


def default_recipe(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """(front end, backbone, loss head) of :func:`default_config`."""
    from hydra.utils import instantiate

    cfg = default_config()
    torch.manual_seed(seed)
    return instantiate(cfg.features), instantiate(cfg.model.backbone), instantiate(cfg.loss)


def training_step(batch: int, seconds: float):
    """(front end, backbone, step): one forward + backward + Adam step of the default recipe on a
    fixed random batch, as a closure."""
    features, backbone, head = default_recipe()
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-3)
    wav = 0.1 * torch.randn(batch, int(16000 * seconds))
    lengths, labels = torch.full((batch,), wav.shape[1]), torch.randint(0, NUM_CLASSES, (batch,))

    def step() -> None:
        feats, frames = features(wav, lengths)
        loss = head(backbone(feats, frames), labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return features, backbone, step


def _batches(batch: int, seconds: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    wavs = 0.1 * torch.randn(steps * batch, int(16000 * seconds), generator=generator)
    return wavs, torch.randint(0, NUM_CLASSES, (steps * batch,), generator=generator)


def _median_rate(stamps: list[float], batch: int) -> float:
    """Samples/s of the median step (robust to this machine's noise)."""
    return batch / float(np.median(np.diff(stamps)))


def _lightning_rate(wavs: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    """Samples/s of the default recipe through ``EncoderModule`` + ``Trainer``."""
    import lightning as L
    from torch.utils.data import DataLoader

    from speakerid.data.datasets import SpeakerBatch
    from speakerid.systems import EncoderModule

    stamps: list[float] = []

    class Clock(L.Callback):
        def on_train_batch_end(self, *args) -> None:
            stamps.append(time.perf_counter())

    module = EncoderModule(
        *default_recipe(), optimizer=functools.partial(torch.optim.Adam, lr=1e-3)
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=len(wavs) // batch,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[Clock()],
    )
    batches = [
        SpeakerBatch(
            wavs[i : i + batch],
            torch.full((batch,), wavs.shape[1]),
            labels[i : i + batch],
            torch.arange(i, i + batch),
        )
        for i in range(0, len(wavs), batch)
    ]
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    return _median_rate(stamps, batch)


def bench_lightning_overhead(batch: int = 32, seconds: float = 2.0, steps: int = 17) -> dict:
    """Training samples/s of the default recipe through Lightning (EncoderModule + Trainer) vs a
    plain PyTorch loop over the same model, batches and optimizer (median step time of each)."""
    wavs, labels = _batches(batch, seconds, steps)
    features, backbone, head = default_recipe()
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-3)
    stamps = []
    for i in range(0, len(wavs), batch):
        w, y = wavs[i : i + batch], labels[i : i + batch]
        feats, frames = features(w, torch.full((batch,), w.shape[1]))
        loss = head(backbone(feats, frames), y).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    plain = _median_rate(stamps, batch)
    lightning = _lightning_rate(wavs, labels, batch)
    return {
        "name": "training, Lightning vs plain loop (samples/s)",
        "value": lightning,
        "reference": plain,
        "overhead_percent": 100 * (plain / lightning - 1),
    }


def bench_speechbrain_training(batch: int = 32, seconds: float = 2.0, steps: int = 17) -> dict:
    """Our training step under Lightning vs speechbrain's own loop (``speechbrain.core.Brain``
    with its ``Fbank``, ``ECAPA_TDNN``, cosine ``Classifier`` and ``AdditiveAngularMargin``),
    at the default recipe's widths, on the same batches, Adam lr 1e-3 (median step)."""
    from speechbrain.core import Brain
    from speechbrain.lobes.features import Fbank
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
    from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper
    from torch.utils.data import DataLoader

    wavs, labels = _batches(batch, seconds, steps)
    cfg = default_config()
    net, mels = cfg.model.backbone, cfg.features.num_mels  # the same widths as ours
    torch.manual_seed(0)
    modules = {
        "fbank": Fbank(n_mels=mels),
        "ecapa": ECAPA_TDNN(
            mels,
            lin_neurons=net.embed_dim,
            channels=[net.channels] * 4 + [3 * net.channels],
            attention_channels=net.attention_channels,
            se_channels=net.se_channels,
        ),
        "classifier": Classifier(net.embed_dim, out_neurons=NUM_CLASSES),
    }
    loss = LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.2, scale=30))
    stamps: list[float] = []

    class SpeakerBrain(Brain):
        def compute_forward(self, batch, stage):
            wav, _ = batch
            return self.modules.classifier(self.modules.ecapa(self.modules.fbank(wav)))

        def compute_objectives(self, predictions, batch, stage):
            return loss(predictions, batch[1].unsqueeze(1))

        def on_fit_batch_end(self, batch, outputs, loss, should_step):
            stamps.append(time.perf_counter())

    brain = SpeakerBrain(
        modules,
        opt_class=lambda params: torch.optim.Adam(params, lr=1e-3),
        run_opts={"device": "cpu", "noprogressbar": True},
    )
    pairs = [(wavs[i : i + batch], labels[i : i + batch]) for i in range(0, len(wavs), batch)]
    brain.fit(range(1), DataLoader(pairs, batch_size=None))
    return {
        "name": "training, ours (Lightning) vs speechbrain Brain (samples/s)",
        "value": _lightning_rate(wavs, labels, batch),
        "reference": _median_rate(stamps, batch),
    }


def _matmul_flops(size: int = 2048, repeats: int = 5) -> float:
    """The machine's dense float32 matmul FLOP/s (torch.mm of two size x size matrices)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / timed(lambda: a @ b, repeats=repeats)


def bench_roofline(batch: int = 32, seconds: float = 2.0) -> dict:
    """Achieved FLOP/s of a training step and of batched extraction (FLOPs counted by
    ``torch.utils.flop_counter``) as a share of the measured dense matmul FLOP/s."""
    from torch.utils.flop_counter import FlopCounterMode

    features, backbone, step = training_step(batch, seconds)
    wav = 0.1 * torch.randn(batch, int(16000 * seconds))
    lengths = torch.full((batch,), wav.shape[1])

    def extract() -> None:
        with torch.inference_mode():
            backbone.eval()
            backbone(*features(wav, lengths))
            backbone.train()

    peak = _matmul_flops()
    figures = {}
    for name, fn in (("training", step), ("extraction", extract)):
        with FlopCounterMode(display=False) as counter:
            fn()
        figures[name] = counter.get_total_flops() / timed(fn, repeats=3)
    return {
        "name": "training step: achieved vs dense matmul (GFLOP/s)",
        "value": figures["training"] / 1e9,
        "reference": peak / 1e9,
        "training_share": figures["training"] / peak,
        "extraction_gflops": figures["extraction"] / 1e9,
        "extraction_share": figures["extraction"] / peak,
    }


def bench_metrics(num_trials: int = 1_000_000) -> dict:
    """EER, two minDCFs and the threshold at 1 % FAR from one VerificationCurve, beside one
    ``numpy.argsort`` of the same scores (the floor any sort-based implementation pays)."""
    import numpy as np

    from speakerid.metrics import VerificationCurve

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (num_trials,), generator=generator)
    scores = torch.randn(num_trials, generator=generator) + labels  # float32, as scored

    def ours() -> tuple:
        curve = VerificationCurve(scores, labels)
        return curve.eer(), curve.min_dcf(0.01), curve.min_dcf(0.05), curve.at_far(0.01)

    array = scores.numpy()
    ours(), np.argsort(array)  # warm-up
    pairs = []  # interleaved, so both see the same machine state; medians of each
    for _ in range(7):
        start = time.perf_counter()
        ours()
        middle = time.perf_counter()
        np.argsort(array)
        pairs.append((middle - start, time.perf_counter() - middle))
    seconds, argsort = np.median(np.array(pairs), axis=0)
    return {
        "name": "EER + 2 minDCF + FAR threshold vs one argsort, 1 M trials (trials/s)",
        "value": num_trials / seconds,
        "reference": num_trials / argsort,
        "times_one_argsort": seconds / argsort,
    }


def bench_metrics_peers(num_trials: int = 1_000_000, speechbrain_trials: int = 10_000) -> dict:
    """EER + minDCF(0.01) beside the peers: scikit-learn's ``roc_curve`` (EER only, as users
    compute it) on the same 1 M trials, and speechbrain's ``EER`` + ``minDCF`` on 10 k (they
    compare every score with every threshold: N x T memory, so 1 M trials do not fit)."""
    import numpy as np
    from sklearn.metrics import roc_curve
    from speechbrain.utils.metric_stats import EER, minDCF

    from speakerid.metrics import VerificationCurve

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (num_trials,), generator=generator)
    scores = torch.randn(num_trials, generator=generator) + labels

    def ours(n: int) -> tuple:
        curve = VerificationCurve(scores[:n], labels[:n])
        return curve.eer(), curve.min_dcf(0.01)

    def sklearn_eer() -> float:
        fpr, tpr, _ = roc_curve(labels.numpy(), scores.numpy())
        best = np.argmin(np.abs(1 - tpr - fpr))
        return (fpr[best] + 1 - tpr[best]) / 2

    small = speechbrain_trials
    target, nontarget = scores[:small][labels[:small] == 1], scores[:small][labels[:small] == 0]

    def speechbrain() -> tuple:
        return EER(target, nontarget), minDCF(target, nontarget, p_target=0.01)

    ours_s, sklearn_s = timed(lambda: ours(num_trials)), timed(sklearn_eer)
    ours_small, speechbrain_s = timed(lambda: ours(small)), timed(speechbrain, repeats=1)
    return {
        "name": "EER + minDCF vs scikit-learn roc_curve EER, 1 M trials (trials/s)",
        "value": num_trials / ours_s,
        "reference": num_trials / sklearn_s,
        "speechbrain_trials": small,
        "ours_trials_per_s_at_speechbrain_size": small / ours_small,
        "speechbrain_trials_per_s": small / speechbrain_s,
    }
