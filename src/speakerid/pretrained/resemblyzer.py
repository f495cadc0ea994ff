"""Resemblyzer's GE2E encoder (Wan et al. 2018; Resemblyzer 0.1.4), converted to a speakerid
checkpoint: the weights come from the installed package, or from its wheel on the package
registry, never from a model hub."""

from pathlib import Path

import torch

from speakerid.errors import ConfigError

RESEMBLYZER = "resemblyzer==0.1.4"
RESEMBLYZER_OVERRIDES = [
    "experiment=ge2e_resemblyzer",
    "data.num_speakers=null",  # nothing trained on: no classes
]


def resemblyzer_weights(download_dir: str | Path) -> Path:
    """Resemblyzer's ``pretrained.pt``: the installed package's when there is one, else taken
    from its wheel, which ``pip download`` fetches from the package registry into
    ``download_dir`` once (nothing else is downloaded, ever)."""
    import importlib.util
    import subprocess
    import sys
    import zipfile

    spec = importlib.util.find_spec("resemblyzer")  # located, not imported (librosa is slow)
    if spec is not None and spec.origin:
        installed = Path(spec.origin).parent / "pretrained.pt"
        if installed.is_file():
            return installed
    download_dir = Path(download_dir)
    weights = download_dir / "resemblyzer-0.1.4-pretrained.pt"
    if weights.is_file():
        return weights
    download_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(download_dir.glob("[Rr]esemblyzer-0.1.4-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
        done = subprocess.run(
            [*command, RESEMBLYZER, "-d", str(download_dir)], capture_output=True, text=True
        )
        wheels = sorted(download_dir.glob("[Rr]esemblyzer-0.1.4-*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConfigError(
                f"pip download {RESEMBLYZER} failed ({last[:200]}): the package registry must "
                "be reachable once, or install it (pip install resemblyzer==0.1.4)"
            )
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open("resemblyzer/pretrained.pt") as src:
        partial = weights.with_suffix(".part")
        partial.write_bytes(src.read())
        partial.replace(weights)
    return weights


def convert_resemblyzer(weights: str | Path, output: str | Path) -> dict:
    """Write Resemblyzer's GE2E encoder as a speakerid checkpoint (resolved config of
    ``experiment=ge2e_resemblyzer`` + state dict; loads with ``weights_only=True``) that every
    tool takes like a trained one. Returns what was written."""
    from speakerid.checkpoints import compose_run_config, write_converted
    from speakerid.utils.io import file_sha256

    weights, output = Path(weights), Path(output)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)["model_state"]
    except Exception as err:  # a damaged or foreign file
        raise ConfigError(f"{weights}: not Resemblyzer's weights ({err})") from None
    config = compose_run_config(RESEMBLYZER_OVERRIDES, output.parent.resolve())
    # the encoder's tensors, and the GE2E similarity's w and b (a scalar each) for the head
    head = {"similarity_weight": "loss.w", "similarity_bias": "loss.b"}
    mapped = {
        head.get(k, f"backbone.{k}"): v.reshape(()) if k in head else v for k, v in state.items()
    }
    source = {"package": RESEMBLYZER, "file": "pretrained.pt", "sha256": file_sha256(weights)}
    return write_converted(output, config, mapped, source, [weights])


class ResemblyzerConverter:
    """``speakerid-prepare pretrained=resemblyzer``: :func:`resemblyzer_weights`, then
    :func:`convert_resemblyzer`.

    Args:
        download_dir: where the package's wheel is kept when the package is not installed.
    """

    name = "resemblyzer"

    def __init__(self, download_dir: str) -> None:
        self.download_dir = Path(download_dir)

    def convert(self, output: Path) -> dict:
        weights = resemblyzer_weights(self.download_dir)
        return {**convert_resemblyzer(weights, output), "weights": str(weights)}
