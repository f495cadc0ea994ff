"""EnhancerModule: trains an embedding enhancer; scores trials before and after enhancement."""

from collections.abc import Callable, Iterable

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from speakerid.contracts import Enhancer, LossHead, NeedsTargets
from speakerid.metrics import VerificationCurve
from speakerid.scoring import cosine_scores
from speakerid.systems.schedules import configure_optimizers

Schedule = Callable[[Optimizer, int], dict]


def verification_figures(table: Tensor, trials) -> dict[str, float]:
    """EER and minDCF (P_target 0.01 and 0.05) of cosine-scored trials over an embedding table."""
    scores = cosine_scores(table, trials.enroll.to(table.device), trials.test.to(table.device))
    curve = VerificationCurve(scores, trials.labels)
    return {
        "eer": curve.eer()[0],
        "min_dcf": curve.min_dcf(p_target=0.01)[0],
        "min_dcf_p05": curve.min_dcf(p_target=0.05)[0],
    }


class EnhancerModule(L.LightningModule):
    """Enhancer ``(B,D) -> (B,D')`` + loss head, on batches of an :class:`EmbeddingDataModule`.

    Heads with per-speaker targets (``set_targets``) get the data module's targets when fitting
    starts. Validation and test enhance the unique utterances of their trial lists and log
    ``{stage}/eer``, ``{stage}/min_dcf`` (P_target 0.01) and ``{stage}/min_dcf_p05``, and the same
    for the original embeddings with the suffix ``_original``.

    Args:
        enhancer: the network.
        loss: loss head ``(outputs, labels (B,3)) -> HeadOutput``.
        optimizer: ``params -> Optimizer`` (a Hydra partial).
        scheduler: ``(optimizer, total_steps) -> scheduler config``, or None.
    """

    def __init__(
        self,
        enhancer: Enhancer,
        loss: LossHead,
        optimizer: Callable[[Iterable[nn.Parameter]], Optimizer],
        scheduler: Schedule | None = None,
    ) -> None:
        super().__init__()
        self.enhancer = enhancer
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self._outputs: list[Tensor] = []
        self._inputs: list[Tensor] = []

    def forward(self, embeddings: Tensor) -> Tensor:
        return self.enhancer(embeddings)

    def on_fit_start(self) -> None:
        if isinstance(self.loss, NeedsTargets):
            self.loss.set_targets(self.trainer.datamodule.targets.to(self.device))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, labels = batch
        out = self.loss(self(x), labels)
        self.log("train/loss", out.loss, prog_bar=True)
        if out.logits is not None:
            self.log("train/acc", (out.logits.argmax(dim=1) == labels[:, 0]).float().mean())
        return out.loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._inputs.append(batch[0])
        self._outputs.append(self(batch[0]))

    test_step = validation_step

    def on_validation_epoch_end(self) -> None:
        self._score("val")

    def on_test_epoch_end(self) -> None:
        self._score("test")

    def _score(self, stage: str) -> None:
        inputs, outputs = torch.cat(self._inputs), torch.cat(self._outputs).float()
        self._inputs, self._outputs = [], []
        if self.trainer.sanity_checking:
            return
        datamodule = self.trainer.datamodule
        trials = datamodule.val_trials if stage == "val" else datamodule.test_trials
        for suffix, table in (("", outputs), ("_original", inputs)):
            for name, value in verification_figures(table, trials).items():
                self.log(f"{stage}/{name}{suffix}", value, prog_bar=name == "eer")

    def configure_optimizers(self) -> dict:
        return configure_optimizers(
            self.parameters(), self.optimizer_factory, self.scheduler_factory, self.trainer
        )
