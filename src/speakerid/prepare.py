"""``speakerid-prepare corpus=... [shards=DIR]``: build (synthetic) or check a corpus, cache its
manifest, and optionally pack it into WebDataset tar shards."""

import logging

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from speakerid.cli import CONFIG_PATH, print_results, report_user_errors
from speakerid.data.shards import write_shards

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="prepare")
@report_user_errors
def main(cfg: DictConfig) -> None:
    corpus = instantiate(cfg.corpus)
    corpus.prepare()
    manifest = corpus.manifest()
    hours = sum(u.num_samples / u.sample_rate for u in manifest) / 3600
    results = {
        "speakers": len(manifest.speakers),
        "utterances": len(manifest),
        "hours": round(hours, 2),
    }
    if cfg.shards:
        index = write_shards(manifest, cfg.shards, cfg.shard_size, cfg.shard_audio, cfg.shard_seed)
        results["shards"] = f"{len(index['shards'])} in {cfg.shards}"
    print_results(f"speakerid-prepare: {manifest.root}", results)


if __name__ == "__main__":
    main()
