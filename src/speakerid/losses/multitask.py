"""Multi-task head (Hive-MTL): a speaker classifier plus metadata tasks (gender, language, ...)."""

from collections.abc import Mapping

from torch import Tensor, nn

from speakerid.contracts import HeadOutput, label_column

IGNORE = -100  # a label the corpus does not state


class MultiTask(nn.Module):
    """Speaker branch (Dense ``hidden`` + ReLU -> softmax over speakers) and one branch per
    metadata task, losses summed with weights.

    Labels are (B, 1 + T): the speaker, then one column per task in ``tasks`` order (the data
    module's ``extra_labels``; -100 where the corpus says nothing — those rows do not count for
    that task). A two-class task is one sigmoid output with binary cross-entropy (Hive-MTL's
    gender branch); more classes, a softmax.

    Args:
        embed_dim: input size (the shared layer's output, see ``backbones.Projected``).
        num_speakers: speaker classes.
        tasks: name -> ``{classes: int, weight: float}``.
        speaker_weight: weight of the speaker loss.
        hidden: width of the speaker branch's hidden layer (0: none).

    Example:
        >>> head = MultiTask(8, 3, {"gender": {"classes": 2, "weight": 1.0}})
        >>> out = head(torch.randn(4, 8), torch.tensor([[0, 1], [1, 0], [2, -100], [0, 1]]))
        >>> out.logits.shape
        torch.Size([4, 3])
    """

    def __init__(
        self,
        embed_dim: int,
        num_speakers: int,
        tasks: Mapping[str, Mapping] | None = None,
        speaker_weight: float = 1.0,
        hidden: int = 1024,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(embed_dim, hidden), nn.ReLU()] if hidden else []
        self.speaker = nn.Sequential(*layers, nn.Linear(hidden or embed_dim, num_speakers))
        self.speaker_weight = speaker_weight
        self.tasks = {name: dict(spec) for name, spec in (tasks or {}).items()}
        self.branches = nn.ModuleDict()
        for name, spec in self.tasks.items():
            classes = int(spec["classes"])
            if classes < 2:
                raise ValueError(f"task {name!r}: classes must be >= 2, got {classes}")
            self.branches[name] = nn.Linear(embed_dim, 1 if classes == 2 else classes)

    def forward(self, embeddings: Tensor, labels: Tensor) -> HeadOutput:
        if labels.ndim != 2 or labels.shape[1] != 1 + len(self.tasks):
            raise ValueError(
                f"MultiTask with tasks {list(self.tasks)} needs (B, {1 + len(self.tasks)}) labels "
                f"(set data.extra_labels to {list(self.tasks)}); got {tuple(labels.shape)}"
            )
        logits = self.speaker(embeddings)
        loss = self.speaker_weight * nn.functional.cross_entropy(logits, label_column(labels))
        for column, (name, branch) in enumerate(self.branches.items(), start=1):
            target, out = labels[:, column], branch(embeddings)
            known = target != IGNORE
            if not known.any():
                continue
            weight = float(self.tasks[name].get("weight", 1.0))
            if out.shape[1] == 1:
                task_loss = nn.functional.binary_cross_entropy_with_logits(
                    out[known, 0], target[known].float()
                )
            else:
                task_loss = nn.functional.cross_entropy(out[known], target[known])
            loss = loss + weight * task_loss
        return HeadOutput(loss, logits)

    def classify(self, embeddings: Tensor) -> Tensor:
        """Speaker logits (B,C), for identification."""
        return self.speaker(embeddings)

    def predict(self, embeddings: Tensor) -> dict[str, Tensor]:
        """Class predictions of every branch (speaker and tasks)."""
        out = {"speaker": self.speaker(embeddings).argmax(1)}
        for name, branch in self.branches.items():
            logit = branch(embeddings)
            out[name] = (logit[:, 0] > 0).long() if logit.shape[1] == 1 else logit.argmax(1)
        return out
