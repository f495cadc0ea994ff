"""``make bench``'s one-thread real-time factors of the full-size backbones under ONNX Runtime.

Each model is exported as ``speakerid-export format=onnx`` does (front end + backbone, samples
dynamic), quantized as ``quantize=int8`` does, and timed on one 5 s utterance with one intra-op
thread — WeSpeaker's way of measuring. Beside ours, the reference package's own module
(``wespeaker-unofficial`` / ``speakerlab``, loaded as ``tests/references.py`` does; the dev extra
installs them) behind the same front end, exported and timed the same way in the same run, and
the published anchors (their processors are not this one: the ratio to the reference measured
here is the figure that carries over).
"""

import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

SECONDS = 5.0  # WeSpeaker's RTF utterance
# figure -> (our backbone YAML, front end, reference module, its constructor's arguments,
# whether it takes (B,F,T), published one-thread RTFs)
MODELS = {
    "ResNet34": (
        "resnet34",
        "fbank",
        ("wespeaker", "models.resnet", "ResNet34"),
        {"feat_dim": 80, "embed_dim": 256},
        False,
        {"WeSpeaker (Xeon 8160, 5 s)": 0.061},
    ),
    "ECAPA-512 (WeSpeaker GLOB_c512)": (
        "ecapa_wespeaker",
        "fbank",
        ("wespeaker", "models.ecapa_tdnn", "ECAPA_TDNN_GLOB_c512"),
        {"feat_dim": 80, "embed_dim": 192},
        False,
        {"WeSpeaker (Xeon 8160, 5 s)": 0.018},
    ),
    "CAM++": (
        "campplus",
        "fbank",
        ("wespeaker", "models.campplus", "CAMPPlus"),
        {"feat_dim": 80, "embed_dim": 512},
        False,
        {"WeSpeaker (Xeon 8160, 5 s)": 0.023, "3D-Speaker (3 s)": 0.049},
    ),
    "ERes2NetV2": (
        "eres2netv2",
        "fbank",
        ("speakerlab", "models.eres2net.ERes2NetV2", "ERes2NetV2"),
        {"feat_dim": 80, "embedding_size": 192},
        False,
        {"3D-Speaker (3 s)": 0.142},
    ),
    "ReDimNet2-B6": (
        "redimnet2_b6",
        "tfmel",
        ("wespeaker", "models.redimnet2", "ReDimNet2B6"),
        {"feat_dim": 72, "embed_dim": 192},
        True,
        {},
    ),
}


class Reference(nn.Module):
    """A reference package's module under the Backbone contract (its embedding; lengths unused:
    one utterance at a time)."""

    def __init__(self, model: nn.Module, channels_first: bool, embed_dim: int) -> None:
        super().__init__()
        self.model, self.channels_first, self.embed_dim = model, channels_first, embed_dim

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        out = self.model(features.transpose(1, 2) if self.channels_first else features)
        return out[-1] if isinstance(out, tuple) else out


def _reference(source: tuple[str, str, str], kwargs: dict, channels_first: bool) -> nn.Module:
    """The reference module, or an ImportError where its package is not installed."""
    try:
        from tests import references
    except ImportError as err:  # run outside the repository: no reference loader
        raise ImportError("tests/references.py is not importable") from err
    package, module, name = source
    try:
        model = getattr(getattr(references, package)(module), name)(**kwargs)
    except BaseException as err:  # pytest.skip (not installed) is a BaseException
        if isinstance(err, KeyboardInterrupt):
            raise
        raise ImportError(f"{package} is not installed") from err
    dim = kwargs.get("embed_dim", kwargs.get("embedding_size"))
    return Reference(model, channels_first, dim)


def _ours(backbone: str, features: str) -> tuple[nn.Module, nn.Module]:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from speakerid.cli import CONFIG_PATH

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("train", [f"model/backbone={backbone}", f"features={features}"])
    torch.manual_seed(0)
    return instantiate(cfg.features), instantiate(cfg.model.backbone)


def _export(model: nn.Module, path: Path, example: Tensor) -> str:
    """As ``speakerid-export format=onnx``, one utterance at a time (samples dynamic); where the
    exporter cannot keep the length dynamic, at the example's length. -> which of the two."""
    for dynamic in (True, False):
        shapes = ({1: torch.export.Dim("samples", min=1600, max=10**8)},) if dynamic else None
        try:
            with torch.inference_mode(False):
                torch.onnx.export(
                    model,
                    (example,),
                    str(path),
                    dynamo=True,
                    input_names=["wav"],
                    output_names=["embedding"],
                    dynamic_shapes=shapes,
                    external_data=False,
                    verbose=False,
                )
            return "dynamic length" if dynamic else "fixed 5 s (dynamic export failed)"
        except Exception:
            if not dynamic:
                raise
    raise AssertionError("unreachable")


def _rtf(path: Path, wav: np.ndarray, repeats: int) -> float:
    """Median seconds per second of audio, one intra-op and one inter-op thread."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run(None, {"wav": wav})  # warm-up: allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"wav": wav})
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / (wav.shape[1] / 16000)


def _measure(model: nn.Module, folder: Path, name: str, wav: Tensor, repeats: int) -> dict:
    """float32 and int8 RTF and sizes of one embedding model."""
    from speakerid.errors import ConfigError
    from speakerid.export import _quantize_int8

    float_path, int8_path = folder / f"{name}.onnx", folder / f"{name}.int8.onnx"
    try:
        shape = _export(model.eval(), float_path, wav)
    except Exception as err:  # a row that says why, not a lost run
        return {"failed": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    row = {"float32": _rtf(float_path, wav.numpy(), repeats), "mb": float_path.stat().st_size}
    row["export"] = shape
    try:
        _quantize_int8(float_path, int8_path, name)
        row.update(int8=_rtf(int8_path, wav.numpy(), repeats), int8_mb=int8_path.stat().st_size)
    except ConfigError as err:
        row["int8_refused"] = str(err)
    row["mb"] /= 2**20
    if "int8_mb" in row:
        row["int8_mb"] /= 2**20
    return row


def bench_rtf(repeats: int = 3, models: tuple[str, ...] = tuple(MODELS)) -> dict:
    """One-thread ONNX Runtime RTFs of ours (float32, int8) and of the references (same export)."""
    from speakerid.export import EmbeddingModel

    warnings.filterwarnings("ignore")  # exporter chatter
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    wav = 0.1 * torch.randn(1, int(16000 * SECONDS), generator=torch.Generator().manual_seed(0))
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for figure in models:
            backbone, features, source, kwargs, channels_first, anchors = MODELS[figure]
            front_end, ours = _ours(backbone, features)
            params = sum(p.numel() for p in ours.parameters())
            row = {
                "ours": _measure(EmbeddingModel(front_end, ours), Path(tmp), "ours", wav, repeats)
            }
            try:
                theirs = _reference(source, kwargs, channels_first)
                model = EmbeddingModel(front_end, theirs)
                row["reference"] = {
                    "module": ".".join(source),
                    **_measure(model, Path(tmp), "ref", wav, repeats),
                }
            except ImportError as err:
                row["reference"] = {"module": ".".join(source), "missing": str(err)}
            rows[figure] = {**row, "parameters": params, "anchors": anchors}
            logging.getLogger(__name__).warning("%s: %s", figure, rows[figure])  # progress
    ratios = [
        r["ours"]["float32"] / r["reference"]["float32"]
        for r in rows.values()
        if "float32" in r["reference"] and "float32" in r["ours"]
    ]
    return {
        "name": "one-thread ONNX RTF, 5 s, ours / reference (geometric mean)",
        "value": float(np.exp(np.mean(np.log(ratios)))) if ratios else float("nan"),
        "reference": None,
        "rtf_rows": rows,
        "seconds": SECONDS,
    }
