"""The post-install check end to end: it passes on this install, and a compiled extension that
crashes the interpreter is reported as one line naming the step and the versions."""

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _check(env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "speakerid.install_check"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_the_check_passes_on_this_install() -> None:
    run = _check()
    assert run.returncode == 0, run.stderr
    assert "install check passed" in run.stdout
    assert "fbank (98, 80)" in run.stdout  # torchaudio's compiled extension ran
    assert "-> (2, 128)" in run.stdout  # the default model's forward pass


def test_a_crash_while_loading_is_one_line(tmp_path: Path) -> None:
    """A torchaudio of the right version whose import kills the interpreter (as an ABI mismatch
    does with a segmentation fault)."""
    fake = tmp_path / "torchaudio"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os\nos.abort()\n")
    run = _check({"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 1
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("install check failed at 'torchaudio' (torchaudio ")
    assert f"torch {metadata.version('torch')}" in line
    assert "the interpreter crashed (signal 6)" in line
