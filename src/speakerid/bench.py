"""``make bench``: throughput of the hot paths beside naive references, written to bench.json.

0. training data: our loader with and without channel augmentation (2 workers) vs speechbrain's
   DynamicItemDataset pipeline and bare soundfile crop reads; reverb + noise from files, ours vs
   speechbrain's Augmenter doing the same (:mod:`speakerid.bench_augment`);
1. fbank: the batched front end vs torchaudio's Kaldi fbank called once per utterance;
2. training: samples/s of the default recipe (CPU-sized ECAPA + AAM, 2 s crops), forward+backward;
2a. training through Lightning vs a plain PyTorch loop (same model, batches, optimizer);
2b. embedding extraction in × real time: eager vs inference_mode, batched, TorchScript (frozen),
    ONNX Runtime, and speechbrain's EncoderClassifier.encode_batch on the same weights;
3. cosine scoring + EER + minDCF over 1 M synthetic trials vs a per-trial Python loop (timed on a
   sample and extrapolated);
3a. EER + two minDCFs + the 1 % FAR threshold from one VerificationCurve vs one numpy.argsort of
   the same 1 M scores (the floor of any sort-based implementation);
4. AS-norm + EER over the same trials vs per-trial cohort statistics;
5. one-thread ONNX Runtime real-time factors of the full-size backbones, float32 and int8, beside
   the reference packages' modules exported the same way and the published figures
   (:mod:`speakerid.bench_rtf`).
Each figure runs in its own forked process and reports its peak resident memory.
"""

import argparse
import functools
import logging
import resource
import time
import warnings

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torchaudio.compliance.kaldi import fbank

from speakerid.bench_augment import bench_augmentation
from speakerid.bench_data import bench_data_pipeline, bench_manifest, bench_shard_pipeline, timed
from speakerid.bench_peers import (
    bench_lightning_overhead,
    bench_metrics,
    bench_metrics_peers,
    bench_roofline,
    bench_speechbrain_training,
    default_recipe,
    training_step,
)
from speakerid.bench_rtf import bench_rtf
from speakerid.metrics import compute_eer, compute_min_dcf
from speakerid.scoring import as_norm, cosine_scores
from speakerid.utils.io import write_json


def bench_fbank(batch: int = 64, seconds: float = 2.0) -> dict:
    wav = torch.randn(batch, int(16000 * seconds)) * 0.1
    lengths = torch.full((batch,), wav.shape[1])
    front_end = default_recipe()[0]
    ours = timed(lambda: front_end(wav, lengths))
    loop = timed(lambda: [fbank(w[None] * 32768, num_mel_bins=80, dither=0.0) for w in wav])
    return {"name": "fbank (utt/s)", "value": batch / ours, "reference": batch / loop}


def bench_training(batch: int = 32, seconds: float = 2.0, steps: int = 5) -> dict:
    step = training_step(batch, seconds)[2]
    per_step = timed(step, repeats=steps)
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

    seconds = timed(ours, repeats=1)
    pairs = list(zip(enroll[:20_000].tolist(), test[:20_000].tolist(), strict=True))
    loop = _extrapolated(
        lambda a, b: float(torch.nn.functional.cosine_similarity(emb[a], emb[b], dim=0)),
        pairs,
        num_trials,
    )
    return {
        "name": "cosine + EER + 2 minDCF, 1 M trials (trials/s)",
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

    seconds = timed(ours, repeats=1)
    normed = torch.nn.functional.normalize(cohort, dim=1)

    def per_trial(a: int, b: int) -> float:  # what a straightforward implementation does
        ea, eb = (torch.nn.functional.normalize(emb[i], dim=0) for i in (a, b))
        top_a, top_b = (torch.topk(normed @ e, top_k).values for e in (ea, eb))
        s = float(ea @ eb)
        return 0.5 * ((s - top_a.mean()) / top_a.std() + (s - top_b.mean()) / top_b.std())

    pairs = list(zip(enroll[:2_000].tolist(), test[:2_000].tolist(), strict=True))
    loop = _extrapolated(per_trial, pairs, num_trials)
    return {
        "name": "AS-norm + EER, 1 M trials (trials/s)",
        "value": num_trials / seconds,
        "reference": num_trials / loop,
    }


def _speechbrain_classifier(front_end, backbone):
    """speechbrain's ``EncoderClassifier`` around our ECAPA-TDNN's own speechbrain module (the same
    weights), with speechbrain's ``Fbank`` at the same mel count and sentence mean normalization
    (what its VoxCeleb models ship)."""
    from speechbrain.inference.speaker import EncoderClassifier
    from speechbrain.lobes.features import Fbank
    from speechbrain.processing.features import InputNormalization

    modules = {
        "compute_features": Fbank(n_mels=front_end.num_mels),
        "mean_var_norm": InputNormalization(norm_type="sentence", std_norm=False),
        "embedding_model": backbone.model,
    }
    return EncoderClassifier(modules=modules, hparams={})


def bench_extraction(
    seconds: float = 4.0, count: int = 12, batch: int = 12, rounds_of_all: int = 3
) -> dict:
    """Embedding extraction of the default recipe's model, in × real time: eager PyTorch (no_grad,
    one utterance at a time) vs inference_mode, batched, TorchScript (traced; frozen and
    optimized for inference) and ONNX Runtime, beside speechbrain's ``EncoderClassifier.
    encode_batch`` on the same weights, one at a time and batched. One-at-a-time figures are the
    median utterance; every variant runs once per round, ``rounds_of_all`` interleaved rounds, and
    reports its median round (this machine's speed drifts by ±20 % within a minute)."""
    import tempfile

    from speakerid.export import EmbeddingModel

    front_end, backbone, _ = default_recipe()
    model = EmbeddingModel(front_end, backbone).eval()
    wavs = 0.1 * torch.randn(count, int(16000 * seconds))
    audio = count * seconds

    def one_by_one(run) -> float:
        times = []
        for wav in wavs:
            start = time.perf_counter()
            run(wav[None])
            times.append(time.perf_counter() - start)
        return seconds / sorted(times)[len(times) // 2]

    def batched(run) -> float:
        start = time.perf_counter()
        for i in range(0, count, batch):
            run(wavs[i : i + batch])
        return audio / (time.perf_counter() - start)

    def eager(wav):
        with torch.no_grad():
            return model(wav)

    def inference(wav):
        with torch.inference_mode():
            return model(wav)

    warnings.filterwarnings("ignore")  # tracing and exporter chatter
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    runs = {
        "eager, no_grad, 1 at a time": (one_by_one, eager),
        "inference_mode, 1 at a time": (one_by_one, inference),
        f"inference_mode, batch {batch}": (batched, inference),
    }
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        traced = torch.jit.trace(model, wavs[:1], check_trace=False)
        runs["TorchScript, 1 at a time"] = (one_by_one, traced)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        runs["TorchScript frozen, 1 at a time"] = (one_by_one, frozen)
        try:
            import onnxruntime

            with torch.inference_mode(False):
                torch.onnx.export(
                    model,
                    (wavs[:1],),
                    f"{tmp}/m.onnx",
                    dynamo=True,
                    input_names=["wav"],
                    dynamic_shapes=({1: torch.export.Dim("samples", min=1600, max=10**8)},),
                    verbose=False,
                )
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            session = onnxruntime.InferenceSession(f"{tmp}/m.onnx", options)
            runs["ONNX Runtime, 1 at a time"] = (
                one_by_one,
                lambda w: session.run(None, {"wav": w.numpy()}),
            )
        except ImportError:
            pass
        speechbrain = _speechbrain_classifier(front_end, backbone)
        runs["speechbrain encode_batch, 1 at a time"] = (one_by_one, speechbrain.encode_batch)
        runs[f"speechbrain encode_batch, batch {batch}"] = (batched, speechbrain.encode_batch)
        for _, run in runs.values():
            run(wavs[:1])  # warm-up (TorchScript's profiling runs, ONNX Runtime's allocations)
        rounds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds_of_all):  # interleaved: the machine's drift hits every variant
            for name, (measure, run) in runs.items():
                rounds[name].append(measure(run))
    every = {name: float(np.median(rates)) for name, rates in rounds.items()}
    peer = {k: v for k, v in every.items() if k.startswith("speechbrain")}
    variants = {k: v for k, v in every.items() if k not in peer}
    peer = {k.removeprefix("speechbrain encode_batch, "): v for k, v in peer.items()}
    single = {k: v for k, v in variants.items() if "1 at a time" in k}
    best, best_single = max(variants, key=variants.get), max(single, key=single.get)
    return {
        "name": f"extraction, {best.replace(', ', ' ')} (x real time)",
        "value": variants[best],
        "reference": variants["eager, no_grad, 1 at a time"],
        "variants": variants,
        "best_single": best_single,
        "single_vs_eager": variants[best_single] / variants["eager, no_grad, 1 at a time"],
        "speechbrain": peer,
        "ours_vs_speechbrain_single": variants[best_single] / peer["1 at a time"],
        "ours_vs_speechbrain_batched": variants[f"inference_mode, batch {batch}"]
        / peer[f"batch {batch}"],
    }


def _measured(bench, sender) -> None:
    torch.set_flush_denormal(True)
    result = bench()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # data-loader workers
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sender.send({**result, "peak_rss_mb": max(own, children) / 1024})


def _in_own_process(bench) -> dict:
    """Run one figure in a fresh forked process, so its peak memory is its own."""
    import multiprocessing as mp

    context = mp.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_measured, args=(bench, sender))
    process.start()
    result = receiver.recv()
    process.join()
    return result


def rtf_table(rows: dict) -> Table:
    """The one-thread real-time factors (seconds per second of audio; lower is faster)."""
    table = Table(title="one-thread ONNX Runtime real-time factor, 5 s utterance (lower: faster)")
    columns = ("model", "params", "ours f32", "ours int8", "MB f32/int8", "reference f32")
    for column in (*columns, "reference int8", "ours/ref", "published"):
        table.add_column(column, justify="left" if column in ("model", "published") else "right")
    for name, row in rows.items():
        ours, ref = row["ours"], row["reference"]

        def rtf(r: dict, key: str) -> str:
            return f"{r[key]:.4f}" if key in r else "-"

        ratio = "-"
        if "float32" in ref and "float32" in ours:
            ratio = f"{ours['float32'] / ref['float32']:.2f}x"
        sizes = f"{ours['mb']:.1f}/{ours['int8_mb']:.1f}" if "int8_mb" in ours else "-"
        published = ", ".join(f"{k} {v}" for k, v in row["anchors"].items()) or "-"
        table.add_row(
            name, f"{row['parameters'] / 1e6:.2f} M", rtf(ours, "float32"), rtf(ours, "int8"),
            sizes, rtf(ref, "float32"), rtf(ref, "int8"), ratio, published,
        )  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="bench.json")
    parser.add_argument("--only", nargs="*", help="run only these figures (e.g. bench_rtf)")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    benches = [
        bench_manifest,
        bench_data_pipeline,
        bench_augmentation,
        bench_shard_pipeline,
        functools.partial(bench_shard_pipeline, audio="flac"),
        bench_fbank,
        bench_training,
        bench_lightning_overhead,
        bench_speechbrain_training,
        bench_roofline,
        bench_metrics,
        bench_metrics_peers,
        bench_extraction,
        bench_scoring,
        bench_as_norm,
        bench_rtf,
    ]
    if args.only:
        benches = [b for b in benches if getattr(b, "__name__", "") in args.only]
    results = [_in_own_process(bench) for bench in benches]
    peak_mb = max(r["peak_rss_mb"] for r in results)
    table = Table(
        title=f"speakerid bench ({torch.get_num_threads()} threads, torch {torch.__version__})"
    )
    for column in ("figure", "speakerid", "naive reference", "ratio", "peak RSS (MB)"):
        table.add_column(column, justify="right" if column != "figure" else "left")
    for r in results:
        ratio = f"{r['value'] / r['reference']:.2f}x" if r["reference"] else "-"
        ref = f"{r['reference']:,.0f}" if r["reference"] else "-"
        value = f"{r['value']:,.0f}" if abs(r["value"]) >= 100 else f"{r['value']:.3g}"
        table.add_row(r["name"], value, ref, ratio, f"{r['peak_rss_mb']:,.0f}")
    Console().print(table)
    for r in results:
        if "rtf_rows" in r:
            Console().print(rtf_table(r["rtf_rows"]))
    Console().print(f"largest peak resident memory of a figure: {peak_mb:,.0f} MB")
    write_json(
        args.output,
        {"results": results, "peak_rss_mb": peak_mb, "threads": torch.get_num_threads()},
    )


if __name__ == "__main__":
    main()
