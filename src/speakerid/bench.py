"""``make bench``: throughput of the hot paths beside naive references, written to bench.json.

1. fbank: the batched front end vs torchaudio's Kaldi fbank called once per utterance;
2. training: samples/s of the default recipe (CPU-sized ECAPA + AAM, 2 s crops), forward+backward;
3. scoring + EER over 1 M synthetic trials vs a per-trial Python loop (timed on a sample).
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
from speakerid.metrics import compute_eer
from speakerid.scoring import cosine_scores
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


def bench_scoring(num_trials: int = 1_000_000, num_utts: int = 20_000, dim: int = 192) -> dict:
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(num_utts, dim, generator=gen)
    enroll = torch.randint(0, num_utts, (num_trials,), generator=gen)
    test = torch.randint(0, num_utts, (num_trials,), generator=gen)
    labels = torch.randint(0, 2, (num_trials,), generator=gen)
    ours = _timed(lambda: compute_eer(cosine_scores(emb, enroll, test), labels), repeats=1)
    sample = 20_000
    start = time.perf_counter()
    for a, b in zip(enroll[:sample].tolist(), test[:sample].tolist(), strict=True):
        float(torch.nn.functional.cosine_similarity(emb[a], emb[b], dim=0))
    loop = (time.perf_counter() - start) * num_trials / sample  # extrapolated from the sample
    return {
        "name": "scoring + EER, 1 M trials (trials/s)",
        "value": num_trials / ours,
        "reference": num_trials / loop,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="bench.json")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    results = [bench_fbank(), bench_training(), bench_scoring()]
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
