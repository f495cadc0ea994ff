"""Post-install check: does the installed stack load and run, before anything long starts?

``make install`` runs ``python -m speakerid.install_check`` after every sync. It reads the
installed versions from package metadata (no import), checks the pairs that must match exactly,
then runs each step in a child process, so that a compiled extension which crashes the
interpreter (a segmentation fault while loading) is still reported: one line naming the step,
the package and the versions, and exit status 1.

Steps: import torch; import torchaudio and compute one Kaldi fbank (its compiled extension);
import lightning; import speechbrain; one forward pass of the default model composed from
``conf/train.yaml``.
"""

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata

# Packages whose compiled code links against torch: their release must equal torch's.
TORCH_PAIRED = ("torchaudio",)
# What each step needs, in the order they run; a failure names the last step started.
STEP_PACKAGES = {
    "torch": ("torch",),
    "torchaudio": ("torchaudio", "torch"),
    "lightning": ("lightning", "torch"),
    "speechbrain": ("speechbrain", "torch"),
    "default model": ("speakerid", "hydra-core", "torch"),
}
STEP_MARK = "install-check step: "


def release(version: str) -> str:
    """'2.11.0+cu128' -> '2.11.0': the local build tag does not change the ABI pairing."""
    return version.split("+", 1)[0]


def installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def versions(packages: tuple[str, ...]) -> str:
    return ", ".join(f"{name} {installed(name) or '(not installed)'}" for name in packages)


def pairing_problem() -> str | None:
    """The first missing package or mismatched pair, from metadata alone."""
    for package in ("torch", *TORCH_PAIRED, "lightning", "speechbrain"):
        if installed(package) is None:
            return f"{package} is not installed"
    torch_version = installed("torch")
    for package in TORCH_PAIRED:
        version = installed(package)
        if release(version) != release(torch_version):
            return (
                f"{package} {version} does not match torch {torch_version}: they must be the same "
                "release (pinned together in pyproject.toml and uv.lock)"
            )
    return None


def _torch() -> str:
    import torch

    return f"torch {torch.__version__}"


def _torchaudio() -> str:
    import torch
    import torchaudio

    feats = torchaudio.compliance.kaldi.fbank(torch.randn(1, 16000), num_mel_bins=80)
    return f"torchaudio {torchaudio.__version__} fbank {tuple(feats.shape)}"


def _lightning() -> str:
    import lightning

    return f"lightning {lightning.__version__}"


def _speechbrain() -> str:
    import speechbrain

    return f"speechbrain {speechbrain.__version__}"


def _default_model() -> str:
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from speakerid.cli import CONFIG_PATH

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("train")
    features, backbone = instantiate(cfg.features), instantiate(cfg.model.backbone)
    with torch.inference_mode():
        wav = torch.randn(2, 16000)
        embeddings = backbone(*features(wav, torch.tensor([16000, 12000])))
    if not torch.isfinite(embeddings).all():
        raise RuntimeError("the default model's embeddings are not finite")
    return f"default model {type(backbone).__name__} -> {tuple(embeddings.shape)}"


STEPS: dict[str, Callable[[], str]] = {
    "torch": _torch,
    "torchaudio": _torchaudio,
    "lightning": _lightning,
    "speechbrain": _speechbrain,
    "default model": _default_model,
}


def run_steps() -> None:
    """Child process: run every step, announcing each before it starts."""
    for name, step in STEPS.items():
        print(STEP_MARK + name, flush=True)
        print(step(), flush=True)


def check(python: str = sys.executable, timeout: float = 300.0) -> tuple[bool, str]:
    """Run the check; returns (passed, the one line to print)."""
    problem = pairing_problem()
    if problem:
        return False, f"install check failed: {problem}"
    start = time.perf_counter()
    try:
        child = subprocess.run(
            [python, "-m", "speakerid.install_check", "--steps"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False, f"install check failed: the steps took over {timeout:.0f} s"
    marks = [line for line in child.stdout.splitlines() if line.startswith(STEP_MARK)]
    if child.returncode != 0:
        step = marks[-1][len(STEP_MARK) :] if marks else "start"
        lines = [line for line in child.stderr.strip().splitlines() if line.strip()]
        cause = lines[-1].strip() if lines else f"exit status {child.returncode}"
        if child.returncode < 0:
            cause = f"the interpreter crashed (signal {-child.returncode}); {cause}"
        return False, (
            f"install check failed at '{step}' ({versions(STEP_PACKAGES.get(step, ()))}): {cause}"
        )
    results = [line for line in child.stdout.splitlines() if line and line not in marks]
    seconds = time.perf_counter() - start
    return True, f"install check passed in {seconds:.1f} s: " + "; ".join(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", action="store_true", help="run the steps in this process")
    args = parser.parse_args()
    if args.steps:
        run_steps()
        return
    passed, line = check()
    if not passed:
        line += " (`make sync` restores the versions in uv.lock)"
    print(line, file=sys.stdout if passed else sys.stderr, flush=True)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
