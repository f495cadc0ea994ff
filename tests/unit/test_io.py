"""Atomic writes: all or nothing, with the usual file mode."""

import os
from pathlib import Path

import pytest

from speakerid.utils.io import atomic_open, write_json


def test_write_replaces_only_on_success(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "report.json"
    write_json(path, {"eer": 0.05})
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write("half a file")
        raise RuntimeError("interrupted")
    assert path.read_text() == '{\n  "eer": 0.05\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temp file left


def test_files_get_the_usual_mode(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask
