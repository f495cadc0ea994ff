"""``speakerid-prepare corpus=... [shards=DIR]``: build (synthetic) or check a corpus, cache its
manifest, and optionally pack it into WebDataset tar shards."""

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from speakerid.cli import hydra_entry, print_results
from speakerid.contracts import Corpus
from speakerid.data.shard_writer import write_shards

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig) -> dict:
    """Build or check the corpus (a full validation pass with ``validate``), write shards if
    asked; return the summary that is printed."""
    corpus: Corpus = instantiate(cfg.corpus)
    corpus.prepare()
    manifest = corpus.manifest(validate=bool(cfg.validate))
    hours = sum(u.num_samples / u.sample_rate for u in manifest) / 3600
    results: dict = {
        "speakers": len(manifest.speakers),
        "utterances": len(manifest),
        "hours": round(hours, 2),
    }
    for path, report in corpus.validation_reports().items():  # passes run now, not cached
        results[f"checked ({report.corpus})"] = f"{report.files} files, {report.kept} kept"
        for problem, actions in report.counts().items():
            done = ", ".join(f"{n} {a}" for a, n in actions.items())
            results[f"  {problem}"] = done
        results["  report"] = str(path)
    if cfg.shards:
        index = write_shards(manifest, cfg.shards, cfg.shard_size, cfg.shard_audio, cfg.shard_seed)
        results["shards"] = f"{len(index['shards'])} in {cfg.shards}"
    return results


@hydra_entry("prepare")
def main(cfg: DictConfig) -> None:
    results = prepare(cfg)
    print_results(f"speakerid-prepare: {instantiate(cfg.corpus).root}", results)


if __name__ == "__main__":
    main()
