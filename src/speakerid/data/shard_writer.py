"""Writing WebDataset tar shards: a corpus as a few large sequential files, for fast streaming.

``write_shards`` packs every utterance of a manifest, in a seeded random order, into
``shard-000000.tar``, ... (audio as FLAC or raw int16, plus a JSON record of speaker, session and
metadata) and writes ``shards.json`` (the shard files with their utterance counts per speaker);
:class:`~speakerid.data.shards.ShardDataset` reads them.
"""

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
import webdataset as wds

from speakerid.data.audio import read_audio
from speakerid.data.manifest import Manifest
from speakerid.data.shards import INDEX
from speakerid.errors import ConfigError
from speakerid.utils.io import atomic_path, write_json


def write_shards(
    manifest: Manifest,
    out_dir: str | Path,
    shard_size: int = 1000,
    audio: str = "flac",
    seed: int = 0,
) -> dict:
    """Pack ``manifest`` (shuffled by ``seed``, so that every shard mixes speakers) into tar
    shards of ``shard_size`` utterances; return the shard index."""
    if audio not in ("flac", "int16"):
        raise ConfigError(f"audio must be 'flac' or 'int16', got {audio!r}")
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = list(manifest)
    rows = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]
    shards = []
    for number, start in enumerate(range(0, len(rows), shard_size)):
        name = f"shard-{number:06d}.tar"
        chunk = rows[start : start + shard_size]
        with atomic_path(out_dir / name) as tmp, wds.TarWriter(str(tmp)) as sink:
            for row in chunk:
                wav = read_audio(manifest.audio_path(row), row.sample_rate, convert=True)
                sink.write(
                    {
                        "__key__": row.utt_id.replace("/", "__").replace(".", "_"),
                        audio: _encode(wav, row.sample_rate, audio),
                        "json": json.dumps(row._asdict()).encode(),
                    }
                )
        speakers = dict(Counter(r.speaker for r in chunk))
        shards.append({"file": name, "utterances": len(chunk), "speakers": speakers})
    index = {
        "shards": shards,
        "utterances": len(rows),
        "speakers": manifest.speakers,
        "audio": audio,
        "seed": seed,
        "corpus_root": str(manifest.root),
    }
    write_json(out_dir / INDEX, index)
    return index


def _encode(wav: np.ndarray, rate: int, audio: str) -> bytes:
    if audio == "int16":
        return (np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes()
    buffer = io.BytesIO()
    sf.write(buffer, wav, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()
