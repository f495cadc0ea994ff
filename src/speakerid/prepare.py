"""``speakerid-prepare corpus=... [shards=DIR]``: build (synthetic) or check a corpus, cache its
manifest, and optionally pack it into WebDataset tar shards."""

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from speakerid.cli import hydra_entry, print_results
from speakerid.contracts import Corpus
from speakerid.data.shard_writer import write_shards
from speakerid.data.shards import INDEX as SHARD_INDEX
from speakerid.errors import ConfigError
from speakerid.outputs import claim_folder, refuse_overlap

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig) -> dict:
    """Build or check the corpus (a full validation pass with ``validate``), write shards if
    asked; return the summary that is printed. ``pretrained=<source>`` converts another
    toolkit's model instead (:func:`prepare_pretrained`)."""
    if cfg.get("pretrained"):
        return prepare_pretrained(cfg)
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
        _check_shards_folder(Path(cfg.shards), manifest.root)
        index = write_shards(manifest, cfg.shards, cfg.shard_size, cfg.shard_audio, cfg.shard_seed)
        results["shards"] = f"{len(index['shards'])} in {cfg.shards}"
    return results


def _check_shards_folder(folder: Path, corpus_root: Path) -> None:
    """``shards=`` is a new or empty folder, or shards written before; never in the corpus."""
    refuse_overlap(folder, [corpus_root], "shards")
    claim_folder(folder, "shards", lambda f: (f / SHARD_INDEX).is_file())


def prepare_pretrained(cfg: DictConfig) -> dict:
    """``pretrained=<source>``: convert that toolkit's model (``conf/pretrained/``) into a
    speakerid checkpoint at ``output`` (default ``<data_dir>/pretrained/<model>.ckpt``)."""
    missing = sorted(OmegaConf.missing_keys(cfg.pretrained))
    if missing:
        raise ConfigError(f"pretrained needs {', '.join(f'{k}=...' for k in missing)}")
    converter = instantiate(cfg.pretrained)
    default = Path(cfg.paths.data_dir) / "pretrained" / f"{converter.name}.ckpt"
    return converter.convert(Path(cfg.output) if cfg.output else default)


@hydra_entry("prepare")
def main(cfg: DictConfig) -> None:
    results = prepare(cfg)
    title = "pretrained" if cfg.get("pretrained") else instantiate(cfg.corpus).root
    print_results(f"speakerid-prepare: {title}", results)


if __name__ == "__main__":
    main()
