"""``make gpu-check``: what only a GPU can show, in one run (under 8 minutes on one GPU).

Full-size ECAPA-TDNN (C=512) and ResNet-34 on the built-in corpus (built first if missing), each
in fp32, bf16-mixed and 16-mixed: training samples/s, peak GPU memory, the share of step time
spent waiting for data, the speed-up of ``torch.compile`` (bf16), extraction speed (x real time,
10 s utterances one at a time), and a 200-step run whose loss must fall, with no NaN, in every
precision. Prints a table and writes ``gpu_check.json``; exits 1 if a loss did not fall.

Without CUDA (or with ``--dry``) it runs a dry version in about a minute: tiny models on a tiny
corpus, a few steps, fp32 and bf16 on the CPU, no compile. The test suite runs it that way.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

FULL = {
    "ecapa_tdnn_512": ["model/backbone=ecapa_tdnn"],
    "resnet34": ["model/backbone=resnet34", "loss.scale=32.0"],
}
DRY = {
    "ecapa_tdnn_512": [
        "model/backbone=ecapa_tdnn", "model.backbone.channels=16", "model.backbone.embed_dim=16",
        "model.backbone.attention_channels=8", "model.backbone.se_channels=8",
    ],
    "resnet34": [
        "model/backbone=resnet34", "model.backbone.width=4", "model.backbone.embed_dim=16",
    ],
}  # fmt: skip
TINY_CORPUS = [  # the dry run's corpus: 10 speakers, built in seconds
    "data.corpus.root=${paths.data_dir}/gpu_check_tiny", "data.corpus.num_speakers=10",
    "data.corpus.utterances_per_speaker=6", "data.corpus.sessions_per_speaker=2",
    "data.corpus.test_speakers=3", "data.corpus.min_seconds=1.0", "data.corpus.max_seconds=2.0",
    "data.val_speakers=2",
]  # fmt: skip
PRECISIONS = {"fp32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from speakerid.cli import CONFIG_PATH

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg


def _build(overrides: list[str], device: torch.device):
    """(system, training loader) of the train config with ``overrides``."""
    from hydra.utils import instantiate

    cfg = _compose(overrides)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    cfg.data.num_speakers = len(datamodule.speakers)
    system = instantiate(cfg.system).to(device)
    return system, datamodule.train_dataloader()


def _batches(loader):
    while True:
        yield from loader


def _train(system, loader, device, dtype, steps: int, compile_backbone: bool = False) -> dict:
    """``steps`` optimizer steps; their losses, samples/s (after 3 warm-up steps) and the share
    of the timed wall time spent waiting for the next batch."""
    optimizer = torch.optim.Adam(system.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    if compile_backbone:
        system.backbone.compile(dynamic=False)
    system.train()
    batches, losses = _batches(loader), []
    waited = samples = 0.0
    warmup = min(3, steps - 1)
    start = time.perf_counter()
    for step in range(steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start, waited, samples = time.perf_counter(), 0.0, 0
        fetch = time.perf_counter()
        batch = next(batches)
        wav, lengths, labels = (x.to(device, non_blocking=True) for x in batch[:3])
        waited += time.perf_counter() - fetch
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = system.loss(system(wav, lengths), labels).loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(float(loss.detach()))
        samples += len(wav)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    return {
        "losses": losses,
        "samples_per_s": samples / elapsed,
        "data_wait_fraction": waited / elapsed,
    }


def _extraction(system, device, dtype, seconds: float, repeats: int) -> float:
    """x real time of embedding ``seconds`` of audio one utterance at a time."""
    system.eval()
    wav = torch.randn(1, int(16000 * seconds), device=device) * 0.1
    lengths = torch.tensor([wav.shape[1]], device=device)
    with (
        torch.no_grad(),
        torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
    ):
        system(wav, lengths)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            system(wav, lengths)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return seconds * repeats / (time.perf_counter() - start)


def _first_last(losses: list[float]) -> tuple[float, float]:
    """Mean loss of the first and of the last tenth of the steps."""
    k = max(1, len(losses) // 10)
    return sum(losses[:k]) / k, sum(losses[-k:]) / k


def run(dry: bool, out: Path, extra: list[str] | None = None) -> dict:
    """Every figure of the check, as written to ``out`` (gpu_check.json)."""
    cuda = torch.cuda.is_available() and not dry
    device = torch.device("cuda" if cuda else "cpu")
    torch.set_flush_denormal(True)
    models, precisions = (
        (FULL, PRECISIONS) if cuda else (DRY, {"fp32": None, "bf16-mixed": torch.bfloat16})
    )
    steps, timed = (200, 30) if cuda else (8, 4)
    common = [
        "data.batch_size=128" if cuda else "data.batch_size=8",
        "data.crop_seconds=2.0" if cuda else "data.crop_seconds=0.5",
        f"data.num_workers={min(16, torch.multiprocessing.cpu_count()) if cuda else 0}",
        f"data.pin_memory={'true' if cuda else 'false'}",
        "data.num_speakers=null",
        *([] if cuda else TINY_CORPUS),
        *(extra or []),
    ]  # fmt: skip
    report: dict = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu (dry run)",
        "dry": not cuda,
        "torch": torch.__version__,
        "models": {},
    }
    for name, overrides in models.items():
        figures: dict = {}
        for precision, dtype in precisions.items():
            torch.manual_seed(0)
            system, loader = _build([*overrides, *common], device)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            result = _train(system, loader, device, dtype, steps)
            first, last = _first_last(result["losses"])
            finite = all(math.isfinite(x) for x in result["losses"])
            figures[precision] = {
                "samples_per_s": round(result["samples_per_s"], 1),
                "data_wait_fraction": round(result["data_wait_fraction"], 3),
                "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                if cuda
                else None,
                "loss_first": round(first, 3),
                "loss_last": round(last, 3),
                "loss_fell": finite and last < first,
                "extraction_x_realtime": round(
                    _extraction(system, device, dtype, 10.0 if cuda else 2.0, 20 if cuda else 1), 1
                ),
            }  # fmt: skip
        if cuda:  # torch.compile, bf16: the same steps timed again
            torch.manual_seed(0)
            system, loader = _build([*overrides, *common], device)
            compiled = _train(system, loader, device, torch.bfloat16, timed, compile_backbone=True)
            eager = figures["bf16-mixed"]["samples_per_s"]
            figures["compile_speedup_bf16"] = round(compiled["samples_per_s"] / eager, 2)
        report["models"][name] = figures
    report["passed"] = all(
        f["loss_fell"]
        for m in report["models"].values()
        for k, f in m.items()
        if isinstance(f, dict)
    )
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def table(report: dict) -> str:
    lines = [
        f"device: {report['device']}  torch {report['torch']}",
        "| model | precision | samples/s | peak GiB | data wait | loss first -> last "
        "| x RT (extraction) |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: |",
    ]  # fmt: skip
    for name, figures in report["models"].items():
        for precision, f in figures.items():
            if not isinstance(f, dict):
                continue
            memory = "-" if f["peak_memory_gib"] is None else f"{f['peak_memory_gib']:.2f}"
            fell = "falls" if f["loss_fell"] else "DOES NOT FALL"
            lines.append(
                f"| {name} | {precision} | {f['samples_per_s']:.0f} | {memory} | "
                f"{100 * f['data_wait_fraction']:.0f} % | {f['loss_first']} -> {f['loss_last']} "
                f"({fell}) | {f['extraction_x_realtime']:.0f} |"
            )
        if "compile_speedup_bf16" in figures:
            lines.append(
                f"| {name} | torch.compile (bf16) | x{figures['compile_speedup_bf16']} | | | | |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="the CPU version, even with a GPU")
    parser.add_argument("--out", default="gpu_check.json", type=Path)
    parser.add_argument("overrides", nargs="*", help="train-config overrides for both models")
    args = parser.parse_args()
    report = run(args.dry, args.out, args.overrides)
    print(table(report))
    print(f"wrote {args.out}")
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
