"""``speakerid-export ckpt_path=... format=torchscript|onnx``: a deployable embedding model.

The exported model is the front end plus the backbone, ``wav (B,S) float32 at the training
sample rate -> embeddings (B,D)``, with the utterance length dynamic (all B utterances of one
length; one at a time is the usual use). Before anything is reported done, the export is run on
utterances of several lengths and compared with the eager PyTorch model; the figures go into
``export.json`` next to the model, and a mismatch above ``tolerance`` — relative to the
embedding's norm, as float32 rounding is — is an error.

``quantize=int8`` (with ``format=onnx``) also writes ``<ckpt>.int8.onnx``: ONNX Runtime's dynamic
quantization of the backbone's convolutions and matrix products (int8 weights, activations
quantized per batch at run time); the front end stays float32 (its mel filterbank multiplies
power spectra of a range int8 cannot hold). Its report gives both files' sizes and its own
parity, checked against ``int8_tolerance``.
"""

import json
import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from speakerid.cli import hydra_entry, print_results, quiet_environment
from speakerid.errors import ConfigError
from speakerid.inference import load_system
from speakerid.outputs import refuse_overlap
from speakerid.utils.io import atomic_path, writable_folder, write_json

log = logging.getLogger(__name__)
FORMATS = {"torchscript": "pt", "onnx": "onnx"}
QUANTIZABLE = ("Conv", "MatMul", "Gemm", "LSTM", "GRU", "Attention")  # ONNX Runtime's dynamic ops


class EmbeddingModel(nn.Module):
    """Front end + backbone for whole utterances: ``(B,S) -> (B,D)``."""

    def __init__(self, features: nn.Module, backbone: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.backbone = backbone

    def forward(self, wav: Tensor) -> Tensor:
        lengths = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.long, device=wav.device)
        feats, frames = self.features(wav, lengths)
        return self.backbone(feats, frames)


def _export_torchscript(model: nn.Module, example: Tensor, path: Path):
    traced = torch.jit.trace(model, example, check_trace=False)
    with atomic_path(path) as tmp:
        traced.save(str(tmp))
    loaded = torch.jit.load(str(path), map_location="cpu")
    return lambda wav: loaded(torch.from_numpy(wav)).numpy()


def _export_onnx(model: nn.Module, example: Tensor, path: Path, sample_rate: int):
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "format=onnx needs onnx, onnxscript and onnxruntime: pip install 'speakerid[export]'"
        ) from None
    samples = torch.export.Dim("samples", min=sample_rate // 10, max=sample_rate * 3600)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with atomic_path(path) as tmp:
        torch.onnx.export(
            model,
            (example.expand(2, -1).contiguous(),),  # a batch of 1 would specialize the axis
            str(tmp),
            dynamo=True,
            input_names=["wav"],
            output_names=["embedding"],
            dynamic_shapes=({0: batch, 1: samples},),
            external_data=False,  # the weights inside the one file: it can be copied alone
            verbose=False,
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda wav: session.run(None, {"wav": wav})[0]


def _backbone_nodes(path: Path) -> tuple[list[str], list[str]]:
    """(names of the backbone's quantizable nodes, names of every other node) of an ONNX file
    written by the dynamo exporter (each node's ``name_scopes`` says which module made it)."""
    import onnx

    ours, others = [], []
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key.endswith("name_scopes")), "")
        in_backbone = "'backbone'" in scopes
        (ours if in_backbone and node.op_type in QUANTIZABLE else others).append(node.name)
    return ours, others


@contextmanager
def _quiet_quantizer():
    """ONNX Runtime's quantizer logs advice through the root logger: hold it for the call."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _quantize_int8(source: Path, path: Path, backbone: str):
    """``source`` (float32 ONNX) -> ``path`` with the backbone's weights in int8; a runner."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ours, others = _backbone_nodes(source)
    if not ours:
        raise ConfigError(
            f"quantize=int8: {backbone} has no operator ONNX Runtime quantizes "
            f"({', '.join(QUANTIZABLE)}); export it without quantize="
        )
    with atomic_path(path) as tmp, _quiet_quantizer():
        try:  # unsigned weights: ONNX Runtime's CPU ConvInteger kernel is fast for uint8 only
            quantize_dynamic(
                str(source), str(tmp), weight_type=QuantType.QUInt8, nodes_to_exclude=others
            )
        except Exception as err:  # an operator its quantizer cannot rewrite: say which and why
            raise ConfigError(
                f"quantize=int8: {backbone} could not be quantized: "
                f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
            ) from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda wav: session.run(None, {"wav": wav})[0]


def _check_output(path: Path, ckpt: Path) -> None:
    """The exported file replaces only an earlier export of ours (its ``.json`` report beside
    it), never the checkpoint or a file of the user's."""
    refuse_overlap(path, [ckpt], "the exported file")
    report = path.with_name(f"{path.name}.json")
    for existing in (path, report):
        if existing.exists() and not _is_export_report(report):
            raise ConfigError(
                f"{existing}: exists and is not an export of speakerid (nothing is overwritten): "
                "set output_dir= to another folder"
            )


def _is_export_report(report: Path) -> bool:
    try:
        return {"format", "checkpoint", "parity_ok"} <= set(json.loads(report.read_text()))
    except (OSError, ValueError, TypeError):
        return False


def parity_gap(exported: np.ndarray, eager: np.ndarray) -> tuple[float, float]:
    """The largest absolute difference of two (B,D) embedding batches, and the largest relative
    to the eager embedding's norm, ``||exported - eager|| / ||eager||`` per utterance: rounding
    grows with the embedding's scale (1e-4 absolute is 4e-6 of a norm of 25), a wrong export
    does not."""
    gap = exported.astype(np.float64) - eager
    norm = np.maximum(np.linalg.norm(eager, axis=1), np.finfo(np.float32).tiny)
    return float(np.abs(gap).max()), float((np.linalg.norm(gap, axis=1) / norm).max())


@torch.inference_mode()
def export(cfg: DictConfig) -> dict:
    """Export, check parity, write ``export.json``; return the report."""
    if cfg.format not in FORMATS:
        raise ConfigError(f"format must be one of {sorted(FORMATS)}, got {cfg.format!r}")
    if cfg.quantize not in (None, "int8") or (cfg.quantize and cfg.format != "onnx"):
        raise ConfigError(
            f"quantize={cfg.quantize}: null, or int8 with format=onnx (got format={cfg.format})"
        )
    system, run_cfg, _ = load_system(cfg.ckpt_path)
    model = EmbeddingModel(system.features, system.backbone).eval()
    rate = int(run_cfg.data.sample_rate)
    out_dir = writable_folder(
        cfg.output_dir if cfg.output_dir else Path(cfg.ckpt_path).resolve().parent, "export"
    )
    path = out_dir / f"{Path(cfg.ckpt_path).stem}.{FORMATS[cfg.format]}"
    _check_output(path, Path(cfg.ckpt_path))
    generator = torch.Generator().manual_seed(0)
    example = 0.1 * torch.randn(1, int(2.0 * rate), generator=generator)
    try:
        if cfg.format == "torchscript":
            run = _export_torchscript(model, example, path)
        else:
            with torch.inference_mode(False):
                run = _export_onnx(model, example, path, rate)
    except ConfigError:
        raise
    except Exception as err:  # tracing/export failures of a backbone: say which and why
        raise ConfigError(
            f"{type(system.backbone).__name__} could not be exported to {cfg.format}: "
            f"{type(err).__name__}: {str(err)[:300]}"
        ) from None
    report = _checked(run, model, cfg, path, rate, cfg.tolerance, generator)
    report.update(backbone=type(system.backbone).__name__, bytes=path.stat().st_size)
    _settle(report)
    if cfg.quantize:
        quantized = path.with_name(f"{path.stem}.int8.onnx")
        _check_output(quantized, Path(cfg.ckpt_path))
        with torch.inference_mode(False):
            run = _quantize_int8(path, quantized, report["backbone"])
        report = {
            **_checked(run, model, cfg, quantized, rate, cfg.int8_tolerance, generator),
            "backbone": report["backbone"],
            "quantize": "int8 (ONNX Runtime dynamic: backbone weights uint8, front end float32)",
            "bytes": quantized.stat().st_size,
            "float32": {k: report[k] for k in ("file", "bytes", "parity_max_rel_diff")},
        }
        _settle(report)
    return report


def _settle(report: dict) -> None:
    """Write the report beside its file; a parity above the tolerance is an error."""
    write_json(Path(f"{report['file']}.json"), report)
    if not report["parity_ok"]:
        raise ConfigError(
            f"{report['file']}: exported model differs from PyTorch by "
            f"{max(report['parity_max_rel_diff'].values()):.2e} of the embedding's norm > "
            f"tolerance={report['tolerance']:g} (see {Path(report['file']).name}.json)"
        )
    log.info("Exported %s", report["file"])


def _checked(run, model, cfg, path: Path, rate: int, tolerance: float, generator) -> dict:
    """The export's report: its parity with eager PyTorch on ``cfg.parity_seconds`` utterances
    in batches of 1 and 3 (the batch axis is dynamic too)."""
    parity, relative = {}, {}
    for seconds in cfg.parity_seconds:
        for batch in (1, 3):
            wav = 0.1 * torch.randn(batch, int(seconds * rate), generator=generator)
            key = f"{seconds:g} s x {batch}"
            parity[key], relative[key] = parity_gap(run(wav.numpy()), model(wav).numpy())
    return {
        "format": cfg.format,
        "file": str(path),
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "input": f"wav (batch, samples) float32 at {rate} Hz, both axes dynamic",
        "output": f"embedding (batch, {model(wav[:1]).shape[1]})",
        "parity_max_abs_diff": parity,
        "parity_max_rel_diff": relative,  # ||exported - eager|| / ||eager||, the checked one
        "tolerance": tolerance,
        "parity_ok": max(relative.values()) <= tolerance,
    }


@hydra_entry("export")
def main(cfg: DictConfig) -> None:
    quiet_environment()
    report = export(cfg)
    rows = {"file": report["file"], **report["parity_max_abs_diff"]}
    print_results(f"speakerid-export ({report['format']})", rows)


if __name__ == "__main__":
    main()
