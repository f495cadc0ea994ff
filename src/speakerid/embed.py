"""``speakerid-embed ckpt_path=...|pretrained=speechbrain pretrained.path=DIR``: embed every
utterance of a corpus once.

Each utterance becomes ``crops`` evenly spaced crops of ``crop_seconds`` (default 10 × 4 s, as the
enhancement project's stage 1), or one whole-utterance embedding (``crops=0``), batched, on the
GPU when there is one. The result is one embedding store (see :mod:`speakerid.data.embedding_store`)
written shard by shard: rerunning the same command after a crash or Ctrl-C resumes it (the
default ``output`` is derived from the model file and the corpus settings, so it is the same
folder each time). A second run into a store being written is refused; a store begun with other
weights at the same checkpoint path is refused on resume.
"""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader

from speakerid.cli import hydra_entry, print_results, quiet_environment
from speakerid.data.datasets import MultiCropDataset, UtteranceDataset, collate
from speakerid.data.embedding_store import NPY_TREE, EmbeddingStore, StoreWriter
from speakerid.data.speech import SpeechTally, speech_tally
from speakerid.errors import ConfigError
from speakerid.inference import load_system
from speakerid.outputs import claim_folder, refuse_overlap
from speakerid.pretrained import InPlaceSource
from speakerid.settings import EMBEDDING, check_settings
from speakerid.utils.io import file_sha256

log = logging.getLogger(__name__)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_encoder(cfg: DictConfig) -> tuple[nn.Module, DictConfig | None, str, str | None]:
    """The model to embed with: ``(model, its run's data config or None, description, sha256 of
    its weights file)``."""
    if (cfg.ckpt_path is None) == (cfg.get("pretrained") is None):
        raise ConfigError(
            "give exactly one of ckpt_path=<speakerid checkpoint> or "
            "pretrained=speechbrain pretrained.path=<dir>"
        )
    if cfg.ckpt_path is not None:
        system, run_cfg, _ = load_system(cfg.ckpt_path)
        source = Path(cfg.ckpt_path).resolve()
        return system, run_cfg.data, str(source), file_sha256(source)
    missing = sorted(OmegaConf.missing_keys(cfg.pretrained))
    if missing:
        raise ConfigError(f"pretrained needs {', '.join(f'{k}=...' for k in missing)}")
    source = instantiate(cfg.pretrained)
    if not isinstance(source, InPlaceSource):
        raise ConfigError(
            f"{type(source).__name__} cannot be used in place: convert it first "
            "(speakerid-prepare pretrained=...), then ckpt_path=<the converted checkpoint>"
        )
    model, description, sha = source.encoder()
    return model, None, description, sha


def default_output(cfg: DictConfig, source: str, data_cfg: DictConfig) -> Path:
    """``<data_dir>/embeddings/<model>-<key>``: the same model file, corpus settings and crops
    always name the same store, so rerunning a command resumes it (and a second run of it while
    the first is writing is refused by the store's lock)."""
    settings = {
        "source": source,
        "data": OmegaConf.to_container(data_cfg, resolve=True),
        "crops": cfg.crops,
        "crop_seconds": cfg.crop_seconds,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return Path(cfg.paths.data_dir) / "embeddings" / f"{Path(source).stem}-{key}"


@torch.inference_mode()
def embed_corpus(
    model: nn.Module,
    datamodule,
    writer: StoreWriter,
    crops: int,
    crop_seconds: float,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    tally: SpeechTally | None = None,
) -> None:
    """Embed the writer's pending shards of ``datamodule.manifest`` and store them (each batch
    also checked for speech by ``tally``, if given; rows are store rows)."""
    rows, rate = list(datamodule.manifest), datamodule.sample_rate
    model = model.to(device).eval()
    per_utterance = max(crops, 1)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task("embedding (crops)", total=len(rows) * per_utterance)
        progress.advance(task, sum(len(writer.shard_rows(s)) for s in writer.done) * per_utterance)
        for shard in writer.pending():
            span = writer.shard_rows(shard)
            shard_rows = [rows[i] for i in span]
            paths = [datamodule.manifest.audio_path(u) for u in shard_rows]
            dataset = (
                MultiCropDataset(
                    paths,
                    [u.num_samples for u in shard_rows],
                    rate,
                    int(crop_seconds * rate),
                    crops,
                )
                if crops
                else UtteranceDataset(paths, rate)
            )
            loader = DataLoader(
                dataset,
                batch_size=batch_size if crops else 1,  # whole utterances: no padding, exact
                num_workers=num_workers,
                collate_fn=collate,
            )
            out = np.empty((len(shard_rows) * per_utterance, writer.array.shape[2]), np.float32)
            for batch in loader:
                if tally is not None:  # crop i of this shard: row span.start*C + i of the store
                    tally.add(batch.wav, batch.lengths, batch.index + span.start * per_utterance)
                embeddings = model(batch.wav.to(device), batch.lengths.to(device))
                out[batch.index.numpy()] = embeddings.float().cpu().numpy()
                progress.advance(task, len(batch.index))
            writer.write_shard(shard, out.reshape(len(shard_rows), per_utterance, -1))


def _open_corpus(data_cfg: DictConfig, num_workers: int, source: str) -> tuple[object, dict]:
    """The set-up data module of the corpus to embed, and the store's metadata."""
    unsplit = {"num_workers": num_workers, "val_speakers": 0, "test_speakers": 0}  # all embedded
    datamodule = instantiate(data_cfg, **unsplit)
    datamodule.prepare_data()
    listed = datamodule.test_trials_name
    if listed and not datamodule.corpus.trial_path(listed).is_file():
        # every utterance is embedded: a trial list is only recorded (speakerid-enhance's default)
        log.info("%s: no trial list, none recorded", datamodule.corpus.trial_path(listed))
        datamodule = instantiate(data_cfg, **unsplit, test_trials=None)
    datamodule.setup("test")
    test_trials = datamodule.test_trials_name
    return datamodule, {
        "source": source,
        "corpus_root": str(datamodule.manifest.root.resolve()),
        "trials": str(datamodule.corpus.trial_path(test_trials)) if test_trials else None,
        "sample_rate": datamodule.sample_rate,
        "data": OmegaConf.to_container(data_cfg, resolve=True),
    }


def embed(cfg: DictConfig) -> EmbeddingStore:
    """Embed the configured corpus (or import a one-.npy-per-wav tree); return the store."""
    if cfg.import_npy:
        return _import_npy(cfg)
    check_settings(cfg, EMBEDDING)
    model, run_data, source, sha256 = load_encoder(cfg)
    data_cfg = cfg.data if cfg.get("data") is not None else run_data
    if data_cfg is None:
        raise ConfigError("pretrained= needs a data config: add data=synthetic|voxceleb|...")
    output = Path(cfg.output) if cfg.output else default_output(cfg, source, data_cfg)
    datamodule, meta = _open_corpus(data_cfg, cfg.num_workers, source)
    meta["crop_seconds"] = cfg.crop_seconds if cfg.crops else None
    meta["source_sha256"] = sha256
    with torch.inference_mode():  # the embedding size
        probe = model.eval()(
            torch.zeros(1, datamodule.sample_rate), torch.tensor([datamodule.sample_rate])
        )
    index = [(u.utt_id, u.speaker, u.session) for u in datamodule.manifest]
    _check_outputs(cfg, output, datamodule.manifest.root, source)
    writer = StoreWriter(
        output, index, max(cfg.crops, 1), probe.shape[-1], meta, cfg.shard_size, cfg.overwrite
    )
    if writer.complete is not None:
        log.info("%s is complete, with these settings: nothing to do", output)
    else:
        log.info("Writing %s (rerun the same command to resume it)", output)
    if writer.done and writer.complete is None:
        log.info(
            "Resuming %s: %d of %d shards done", writer.partial, len(writer.done), writer.num_shards
        )
    tally = speech_tally(cfg.get("speech_gate"), datamodule.sample_rate, cfg.crops)
    try:
        embed_corpus(
            model,
            datamodule,
            writer,
            cfg.crops,
            cfg.crop_seconds,
            cfg.batch_size,
            cfg.num_workers,
            _device(cfg.device),
            tally,
        )
    finally:
        if writer.pending():  # interrupted: the finished shards stay for the next run
            writer.lock.release()
    if tally is not None:  # (of the shards embedded by this run)
        tally.warn(log, [u.utt_id for u in datamodule.manifest])
    store = writer.finish()
    log.info(
        "Wrote %s: %d utterances x %d crops x %d", store.root, len(store), store.crops, store.dim
    )
    if cfg.npy_dir:
        store.to_npy_tree(cfg.npy_dir)
    return store


def _check_outputs(cfg: DictConfig, output: Path, corpus_root: Path, source: str) -> None:
    """Before any work: the store and the .npy tree neither hold, nor lie inside, the corpus or
    the model, and the tree is a new or empty folder, or one this command wrote before."""
    inputs = [corpus_root]
    if cfg.ckpt_path is not None:
        inputs.append(Path(cfg.ckpt_path))
    elif cfg.get("pretrained") is not None:
        inputs.append(Path(cfg.pretrained.path))
    refuse_overlap(output, inputs, "output")
    if cfg.npy_dir:
        refuse_overlap(cfg.npy_dir, [*inputs, output], "npy_dir")
        claim_folder(cfg.npy_dir, "npy_dir", lambda folder: (folder / NPY_TREE).is_file())


def _import_npy(cfg: DictConfig) -> EmbeddingStore:
    """A store from the original layout (``<utt_id>.npy`` of (crops, D) per utterance)."""
    if cfg.get("data") is None:
        raise ConfigError("import_npy= needs data=... (the corpus the .npy files belong to)")
    datamodule, meta = _open_corpus(
        cfg.data, cfg.num_workers, f"npy:{Path(cfg.import_npy).resolve()}"
    )
    if not cfg.output:
        raise ConfigError("import_npy= needs output=<the store folder to create>")
    refuse_overlap(cfg.output, [cfg.import_npy, datamodule.manifest.root], "output")
    return EmbeddingStore.from_npy_tree(cfg.import_npy, cfg.output, list(datamodule.manifest), meta)


@hydra_entry("embed")
def main(cfg: DictConfig) -> None:
    quiet_environment()
    torch.set_flush_denormal(True)
    store = embed(cfg)
    print_results(
        "speakerid-embed",
        {
            "store": str(store.root),
            "utterances": len(store),
            "crops": store.crops,
            "dim": store.dim,
        },
    )


if __name__ == "__main__":
    main()
