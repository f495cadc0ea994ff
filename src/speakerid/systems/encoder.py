"""EncoderModule: trains a speaker encoder and scores verification trials."""

from collections.abc import Callable, Iterable

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from speakerid.contracts import Backbone, FrontEnd, LossHead, OwnOptimizer, label_column
from speakerid.data.datasets import SpeakerBatch
from speakerid.errors import ConfigError
from speakerid.metrics import EqualErrorRate, MinDCF, compute_eer, threshold_at_far
from speakerid.scoring import cosine_scores
from speakerid.systems.schedules import configure_optimizers

Schedule = Callable[[Optimizer, int], dict]


def embedding_table(embeddings: Tensor, rows: Tensor, utterances: int, crops: int = 1) -> Tensor:
    """(U,D) table of ``utterances`` from (N,D) embeddings of rows ``rows`` (each utterance's
    ``crops`` crops are rows ``u*crops ... u*crops+crops-1``; the table holds their mean)."""
    table = embeddings.new_zeros(utterances * crops, embeddings.shape[-1])
    table[rows] = embeddings
    return table.view(-1, crops, table.shape[-1]).mean(dim=1)


class EncoderModule(L.LightningModule):
    """Front end -> backbone -> loss head, with validation/test EER from trial lists.

    Validation and test embed each unique utterance of the data module's trial set once, gather
    the embeddings of all processes, score the trials by cosine, and log ``{stage}/eer`` and
    ``{stage}/min_dcf`` (P_target 0.01; test also ``min_dcf_p05``, ``eer_threshold`` and
    ``far_threshold``).
    With the data module's ``eval.crops`` > 0 an utterance's embedding is the mean of its crops'.
    ``predict_step`` returns each batch's ``(embeddings, rows)`` (``trainer.predict`` over an
    evaluation loader; :func:`embedding_table` assembles them).

    Args:
        features: front end, ``(B,S), (B,) -> (B,T,F), (B,)``; always run in float32.
        backbone: ``(B,T,F), (B,) -> (B,D)``.
        loss: loss head ``(B,D), (B,) -> HeadOutput``.
        optimizer: ``params -> Optimizer`` (a Hydra partial).
        scheduler: ``(optimizer, total_steps) -> scheduler config``, or None.
        far_target: test also logs ``far_threshold``, where the false-accept rate is at most this.
        compile_backbone: ``torch.compile`` the backbone in place when fitting or testing starts
            (state-dict keys unchanged, so checkpoints stay interchangeable).
        compile_backend: the ``torch.compile`` backend (``inductor``; ``eager`` for debugging).
        feature_augment: ``(B,T,F), (B,) -> (B,T,F)`` applied to the features in training only
            (SpecAugment, noise on the mel spectrogram), on the device, or None.
        wave_augment: a SpeechBrain ``Augmenter`` (``(B,S), (B,) relative lengths -> (B',S),
            (B',)`` with ``replicate_labels``) applied to training batches on the device, e.g.
            four augmented copies concatenated to the clean batch (SpeechBrain's VoxCeleb
            recipe), or None.
    """

    def __init__(
        self,
        features: FrontEnd,
        backbone: Backbone,
        loss: LossHead,
        optimizer: Callable[[Iterable[nn.Parameter]], Optimizer],
        scheduler: Schedule | None = None,
        far_target: float = 0.01,
        compile_backbone: bool = False,
        compile_backend: str = "inductor",
        feature_augment: nn.Module | None = None,
        wave_augment: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.features = features
        self.feature_augment = feature_augment
        self.wave_augment = wave_augment
        self.backbone = backbone
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.far_target = far_target
        self.compile_backbone = compile_backbone
        self.compile_backend = compile_backend
        self.metrics = nn.ModuleDict(
            {
                "val_eer": EqualErrorRate(),
                "val_min_dcf": MinDCF(p_target=0.01),
                "test_eer": EqualErrorRate(),
                "test_min_dcf": MinDCF(p_target=0.01),
                "test_min_dcf_p05": MinDCF(p_target=0.05),
            }
        )
        self._embeddings: list[Tensor] = []
        self._rows: list[Tensor] = []

    def setup(self, stage: str) -> None:
        # torch's own mark of a module compiled in place (setup runs again for testing)
        compiled = getattr(self.backbone, "_compiled_call_impl", None) is not None
        if self.compile_backbone and not compiled:
            self.backbone.compile(backend=self.compile_backend, dynamic=True)

    def forward(self, wav: Tensor, lengths: Tensor) -> Tensor:
        """(B,S) waveforms, (B,) sample counts -> (B,D) embeddings."""
        with torch.autocast(device_type=wav.device.type, enabled=False):
            feats, frames = self.features(wav.float(), lengths)
            if self.feature_augment is not None and self.training:
                feats = self.feature_augment(feats, frames)
        return self.backbone(feats, frames)

    def training_step(self, batch: SpeakerBatch, batch_idx: int) -> Tensor:
        wav, lengths, labels = batch.wav, batch.lengths, batch.labels
        if self.wave_augment is not None:
            wav, lengths, labels = self._augment_batch(wav, lengths, labels)
        out = self.loss(self(wav, lengths), labels)
        self.log("train/loss", out.loss, prog_bar=True)
        if out.logits is not None:
            accuracy = (out.logits.argmax(dim=1) == label_column(labels)).float().mean()
            self.log("train/acc", accuracy, prog_bar=True)
        return out.loss

    def _augment_batch(self, wav: Tensor, lengths: Tensor, labels: Tensor):
        """The wave augmenter's batch (SpeechBrain's relative lengths converted both ways) and
        the labels replicated to match it."""
        with torch.no_grad(), torch.autocast(device_type=wav.device.type, enabled=False):
            out, relative = self.wave_augment(wav.float(), lengths.float() / wav.shape[1])
        lengths = (relative * out.shape[1]).round().long().clamp(1, out.shape[1])
        return out, lengths, self.wave_augment.replicate_labels(labels)

    def validation_step(self, batch: SpeakerBatch, batch_idx: int) -> None:
        self._embed(batch)

    def test_step(self, batch: SpeakerBatch, batch_idx: int) -> None:
        self._embed(batch)

    def predict_step(self, batch: SpeakerBatch, batch_idx: int) -> tuple[Tensor, Tensor]:
        """(B,D) embeddings of the batch and the (B,) table rows they belong to."""
        return self(batch.wav, batch.lengths).float().cpu(), batch.index.cpu()

    def on_validation_epoch_end(self) -> None:
        self._score("val")

    def on_test_epoch_end(self) -> None:
        self._score("test")

    def _embed(self, batch: SpeakerBatch) -> None:
        self._embeddings.append(self(batch.wav, batch.lengths).float())
        self._rows.append(batch.index)

    def _score(self, stage: str) -> None:
        embeddings, rows = torch.cat(self._embeddings), torch.cat(self._rows)
        self._embeddings, self._rows = [], []
        if self.trainer.sanity_checking:
            return
        datamodule = self.trainer.datamodule
        trials = datamodule.val_trials if stage == "val" else datamodule.test_trials
        crops = max(datamodule.eval.crops, 1)
        # (W,N,D) under DDP, (N,D) alone; the sampler's padding repeats rows, which is harmless
        # here: a repeated row is written twice with the same value
        embeddings = self.all_gather(embeddings).reshape(-1, embeddings.shape[-1])
        rows = self.all_gather(rows).reshape(-1)
        table = embedding_table(embeddings, rows, len(trials.utterances), crops)
        if not torch.isfinite(table).all():
            raise ConfigError(
                f"training diverged: NaN or infinite {stage} embeddings at epoch "
                f"{self.current_epoch} (check the learning rate and the loss settings); "
                "checkpoints holding them are not written"
            )
        scores = cosine_scores(table, trials.enroll.to(self.device), trials.test.to(self.device))
        labels = trials.labels.to(self.device)
        shard = slice(self.global_rank, None, self.trainer.world_size)  # each trial counted once
        for name, metric in self.metrics.items():
            if name.startswith(stage):
                metric.update(scores[shard], labels[shard])
                self.log(
                    f"{stage}/{name.removeprefix(stage + '_')}",
                    metric.compute(),
                    prog_bar=name.endswith("eer"),
                )
                metric.reset()
        if stage == "test":
            self.log("test/eer_threshold", compute_eer(scores, labels)[1])
            self.log("test/far_threshold", threshold_at_far(scores, labels, self.far_target)[0])

    def optimized_parameters(self) -> list[nn.Parameter]:
        """What the configured optimizer updates: everything but parameters a loss head
        optimizes itself (the contrastive-center loss's centers)."""
        if not isinstance(self.loss, OwnOptimizer):
            return list(self.parameters())
        own = {id(p) for p in self.loss.own_parameters()}
        return [p for p in self.parameters() if id(p) not in own]

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        """With the main optimizer's step (after the backward pass, gradients accumulated): the
        head's own optimizer steps too."""
        if isinstance(self.loss, OwnOptimizer):
            self.loss.step_own()

    def configure_optimizers(self) -> dict:
        return configure_optimizers(
            self.optimized_parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.trainer,
        )
