"""A model that learns nothing: cosine of mean log-fbank vectors, scored on the test trials.

``make baseline`` (``python -m speakerid.analysis.baseline``, over ``conf/train.yaml``'s data)
prints its EER, the floor a trained encoder must clear by far for its figure to mean anything.
"""

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor

from speakerid.cli import CONFIG_PATH, print_results, report_user_errors
from speakerid.data.datamodule import SpeakerDataModule
from speakerid.features import KaldiFbank
from speakerid.metrics import compute_eer, compute_min_dcf
from speakerid.scoring import cosine_scores


@torch.inference_mode()
def mean_fbank_embeddings(datamodule: SpeakerDataModule, num_mels: int = 80) -> Tensor:
    """(U,F): each test utterance's mean log mel energies (no normalization, nothing learned)."""
    front_end = KaldiFbank(sample_rate=datamodule.sample_rate, num_mels=num_mels, mean_norm=False)
    rows, means = [], []
    for batch in datamodule.test_dataloader():
        feats, frames = front_end(batch.wav, batch.lengths)
        means.append(feats.sum(dim=1) / frames.clamp_min(1)[:, None])
        rows.append(batch.index)
    table = torch.zeros(len(datamodule.test_trials.utterances), num_mels)
    table[torch.cat(rows)] = torch.cat(means)
    return table


def baseline_metrics(datamodule: SpeakerDataModule) -> dict[str, float]:
    trials = datamodule.test_trials
    scores = cosine_scores(mean_fbank_embeddings(datamodule), trials.enroll, trials.test)
    return {
        "baseline/eer": compute_eer(scores, trials.labels)[0],
        "baseline/min_dcf": compute_min_dcf(scores, trials.labels)[0],
    }


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
@report_user_errors
def main(cfg: DictConfig) -> None:
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    print_results("no-training baseline (cosine of mean fbank)", baseline_metrics(datamodule))


if __name__ == "__main__":
    main()
