"""The install is what uv.lock says: the lock agrees with pyproject.toml, exact pairs stay exact,
and the post-install check names a mismatched pair in one line."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from speakerid.install_check import TORCH_PAIRED, pairing_problem, release

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _lock() -> dict:
    return tomllib.loads((ROOT / "uv.lock").read_text())


def _uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not installed: it is part of the dev extra (make install)")
    return uv


def test_lock_agrees_with_pyproject() -> None:
    """uv's own check, offline: any requirement added, removed or changed in one but not the
    other (pyproject.toml vs uv.lock) fails here."""
    run = subprocess.run(
        [_uv(), "lock", "--check", "--offline", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    assert run.returncode == 0, (
        "uv.lock does not match pyproject.toml; run `make lock` and commit both:\n" + run.stderr
    )


def test_every_requirement_is_in_the_lock() -> None:
    """Independent of uv: each name that pyproject.toml requires has a locked version."""
    project = _pyproject()["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    locked = {package["name"] for package in _lock()["package"]}
    names = {
        re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower().replace("_", "-") for req in wanted
    }
    assert names - locked == set()


def test_torch_pairs_are_pinned_exactly_and_locked_together() -> None:
    deps = _pyproject()["project"]["dependencies"]
    pins = {}
    for package in ("torch", *TORCH_PAIRED):
        (spec,) = [d for d in deps if re.match(rf"{package}\s*[=<>~!]", d)]
        assert re.fullmatch(rf"{package}==\d+\.\d+\.\d+", spec), f"{spec}: pin it exactly"
        pins[package] = spec.split("==")[1]
    locked = {p["name"]: p["version"] for p in _lock()["package"] if p["name"] in pins}
    assert locked == pins
    assert {release(v) for v in pins.values()} == {pins["torch"]}


def test_makefile_bootstraps_the_locked_uv() -> None:
    makefile = (ROOT / "Makefile").read_text()
    bootstrap = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M).group(1)
    locked = {p["name"]: p["version"] for p in _lock()["package"]}
    assert bootstrap == locked["uv"], "Makefile's UV_VERSION must equal the uv in uv.lock"


def test_installed_pairs_match() -> None:
    assert pairing_problem() is None


def test_a_mismatched_torchaudio_is_named_in_one_line(tmp_path: Path) -> None:
    """A torchaudio of another release ahead on the path: the check stops before any import."""
    from importlib import metadata

    torch_version = metadata.version("torch")
    major, minor, patch = release(torch_version).split(".")
    wrong = f"{major}.{minor}.{int(patch) + 1}"
    dist = tmp_path / f"torchaudio-{wrong}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torchaudio\nVersion: {wrong}\n")
    run = subprocess.run(
        [sys.executable, "-m", "speakerid.install_check"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        timeout=60,
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert f"torchaudio {wrong} does not match torch {torch_version}" in lines[0]
    assert "make sync" in lines[0]
