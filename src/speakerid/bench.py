"""``make bench``: throughput of the hot paths beside naive references, written to bench.json.

1. fbank: the batched front end vs torchaudio's Kaldi fbank called once per utterance;
2. training: samples/s of the default recipe (CPU-sized ECAPA + AAM, 2 s crops), forward+backward;
3. cosine scoring + EER + minDCF over 1 M synthetic trials vs a per-trial Python loop (timed on a
   sample and extrapolated);
4. AS-norm + EER over the same trials vs per-trial cohort statistics.
Peak resident memory is reported for the whole run.
"""

import argparse
import resource
import time

import torch
from rich.console import Console
from rich.table import Table
from torchaudio.compliance.kaldi import fbank

from speakerid.backbones import EcapaTdnn
from speakerid.features import KaldiFbank
from speakerid.losses import AamSoftmax
from speakerid.metrics import compute_eer, compute_min_dcf
from speakerid.scoring import as_norm, cosine_scores
from speakerid.utils.io import write_json


def _timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def bench_fbank(batch: int = 64, seconds: float = 2.0) -> dict:
    wav = torch.randn(batch, int(16000 * seconds)) * 0.1
    lengths = torch.full((batch,), wav.shape[1])
    front_end = KaldiFbank()
    ours = _timed(lambda: front_end(wav, lengths))
    loop = _timed(lambda: [fbank(w[None] * 32768, num_mel_bins=80, dither=0.0) for w in wav])
    return {"name": "fbank (utt/s)", "value": batch / ours, "reference": batch / loop}


def bench_training(batch: int = 32, seconds: float = 2.0, steps: int = 5) -> dict:
    torch.manual_seed(0)
    front_end = KaldiFbank()
    model = EcapaTdnn(channels=128, embed_dim=128, attention_channels=64, se_channels=64)
    head = AamSoftmax(128, 144)
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-3)
    wav, labels = torch.randn(batch, int(16000 * seconds)) * 0.1, torch.randint(0, 144, (batch,))
    lengths = torch.full((batch,), wav.shape[1])

    def step() -> None:
        feats, frames = front_end(wav, lengths)
        loss = head(model(feats, frames), labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    per_step = _timed(step, repeats=steps)
    return {"name": "training (samples/s)", "value": batch / per_step, "reference": None}


def _trial_problem(num_trials: int, num_utts: int, dim: int):
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(num_utts, dim, generator=gen)
    enroll = torch.randint(0, num_utts, (num_trials,), generator=gen)
    test = torch.randint(0, num_utts, (num_trials,), generator=gen)
    labels = torch.randint(0, 2, (num_trials,), generator=gen)
    return emb, enroll, test, labels


def _extrapolated(per_trial, pairs: list[tuple[int, int]], total: int) -> float:
    """Seconds for ``total`` trials of a per-trial loop, timed on ``pairs``."""
    start = time.perf_counter()
    for a, b in pairs:
        per_trial(a, b)
    return (time.perf_counter() - start) * total / len(pairs)


def bench_scoring(num_trials: int = 1_000_000, num_utts: int = 20_000, dim: int = 192) -> dict:
    emb, enroll, test, labels = _trial_problem(num_trials, num_utts, dim)

    def ours() -> None:
        scores = cosine_scores(emb, enroll, test)
        compute_eer(scores, labels)
        compute_min_dcf(scores, labels, p_target=0.01)
        compute_min_dcf(scores, labels, p_target=0.05)

    seconds = _timed(ours, repeats=1)
    pairs = list(zip(enroll[:20_000].tolist(), test[:20_000].tolist(), strict=True))
    loop = _extrapolated(
        lambda a, b: float(torch.nn.functional.cosine_similarity(emb[a], emb[b], dim=0)),
        pairs,
        num_trials,
    )
    return {
        "name": "cosine + EER + minDCF x2, 1 M trials (trials/s)",
        "value": num_trials / seconds,
        "reference": num_trials / loop,
    }


def bench_as_norm(
    num_trials: int = 1_000_000,
    num_utts: int = 20_000,
    dim: int = 192,
    cohort_size: int = 6_000,
    top_k: int = 300,
) -> dict:
    """AS-norm over 1 M trials: cohort statistics once per unique utterance, vs per trial."""
    emb, enroll, test, labels = _trial_problem(num_trials, num_utts, dim)
    cohort = torch.randn(cohort_size, dim, generator=torch.Generator().manual_seed(1))

    def ours() -> None:
        scores = as_norm(cosine_scores(emb, enroll, test), enroll, test, emb, cohort, top_k)
        compute_eer(scores, labels)

    seconds = _timed(ours, repeats=1)
    normed = torch.nn.functional.normalize(cohort, dim=1)

    def per_trial(a: int, b: int) -> float:  # what a straightforward implementation does
        ea, eb = (torch.nn.functional.normalize(emb[i], dim=0) for i in (a, b))
        top_a, top_b = (torch.topk(normed @ e, top_k).values for e in (ea, eb))
        s = float(ea @ eb)
        return 0.5 * ((s - top_a.mean()) / top_a.std() + (s - top_b.mean()) / top_b.std())

    pairs = list(zip(enroll[:2_000].tolist(), test[:2_000].tolist(), strict=True))
    loop = _extrapolated(per_trial, pairs, num_trials)
    return {
        "name": f"AS-norm (cohort {cohort_size:,}, top {top_k}) + EER, 1 M trials (trials/s)",
        "value": num_trials / seconds,
        "reference": num_trials / loop,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="bench.json")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    results = [bench_fbank(), bench_training(), bench_scoring(), bench_as_norm()]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = Table(
        title=f"speakerid bench ({torch.get_num_threads()} threads, torch {torch.__version__})"
    )
    for column in ("figure", "speakerid", "naive reference", "ratio"):
        table.add_column(column, justify="right" if column != "figure" else "left")
    for r in results:
        ratio = f"{r['value'] / r['reference']:.1f}x" if r["reference"] else "-"
        ref = f"{r['reference']:,.0f}" if r["reference"] else "-"
        table.add_row(r["name"], f"{r['value']:,.0f}", ref, ratio)
    Console().print(table)
    Console().print(f"peak resident memory: {peak_mb:,.0f} MB")
    write_json(
        args.output,
        {"results": results, "peak_rss_mb": peak_mb, "threads": torch.get_num_threads()},
    )


if __name__ == "__main__":
    main()
