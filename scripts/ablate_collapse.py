"""The first steps of ``wespeaker_resnet34`` at CPU size (docs/results.md): the loss, and how
alike the batch's embeddings are (mean pairwise cosine) and their norm, every 10 steps.

Usage (from the repository root, the built-in corpus under data/):
    python scripts/ablate_collapse.py PEAK_LR WARMUP_STEPS MARGIN STEPS LABEL [override ...]
LABEL starting with ``adam``: Adam; else SGD (momentum 0.9, Nesterov, weight decay 1e-4, as the
recipe), the rate rising linearly to PEAK_LR over WARMUP_STEPS.
"""

import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import compose_config

OVERRIDES = [
    "experiment=wespeaker_resnet34",
    "trainer=cpu",
    "trainer.devices=1",
    "data.num_workers=1",
    "data.num_speakers=432",  # 144 speakers x 3 speeds
    "model.backbone.width=8",
    "model.backbone.embed_dim=128",
    "data.batch_size=32",
    "paths.output_dir=logs/ablate",
]


def main(peak: float, warmup: int, margin: float, steps: int, label: str, extra: list[str]):
    cfg = compose_config("train", OVERRIDES + extra)
    torch.manual_seed(0)
    data = instantiate(cfg.data)
    data.setup("fit")
    system = instantiate(cfg.system)
    system.loss.margin = margin
    params = system.parameters()
    optimizer = (
        torch.optim.Adam(params, lr=peak)
        if label.startswith("adam")
        else torch.optim.SGD(params, lr=peak, momentum=0.9, nesterov=True, weight_decay=1e-4)
    )
    start, step = time.time(), 0
    while step < steps:
        for batch in data.train_dataloader():
            lr = peak * min(1.0, (step + 1) / max(warmup, 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            embeddings = system(batch.wav, batch.lengths)
            loss = system.loss(embeddings, batch.labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 10 == 0 or step == steps - 1:
                unit = torch.nn.functional.normalize(embeddings.detach(), dim=1)
                alike = (unit @ unit.T)[~torch.eye(len(unit), dtype=torch.bool)].mean()
                norm = embeddings.detach().norm(dim=1).mean()
                seconds = time.time() - start
                print(
                    f"{label} step {step} lr {lr:.5f} loss {loss.item():.3f} "
                    f"cosine {alike:.3f} norm {norm:.2f} {seconds:.0f}s",
                    flush=True,
                )
            step += 1
            if step >= steps:
                return


if __name__ == "__main__":
    peak, warmup, margin, steps, label, *extra = sys.argv[1:]
    main(float(peak), int(warmup), float(margin), int(steps), label, extra)
