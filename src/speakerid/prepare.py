"""``speakerid-prepare corpus=...``: build (synthetic) or check a corpus and cache its manifest."""

import logging

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from speakerid.cli import CONFIG_PATH, print_results, report_user_errors

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="prepare")
@report_user_errors
def main(cfg: DictConfig) -> None:
    corpus = instantiate(cfg.corpus)
    corpus.prepare()
    manifest = corpus.manifest()
    hours = sum(u.num_samples / u.sample_rate for u in manifest) / 3600
    print_results(
        f"speakerid-prepare: {manifest.root}",
        {"speakers": len(manifest.speakers), "utterances": len(manifest), "hours": round(hours, 2)},
    )


if __name__ == "__main__":
    main()
