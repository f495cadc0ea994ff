"""``make gpu-check``'s dry run: every figure of the GPU table, on the CPU, and a falling loss."""

import json
from pathlib import Path

import pytest

from speakerid.gpu_check import run, table


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    report = run(dry=True, out=out, extra=[f"paths.data_dir={tmp_path}"])
    assert json.loads(out.read_text()) == report
    assert report["dry"] and report["passed"]
    assert set(report["models"]) == {"ecapa_tdnn_512", "resnet34"}
    for figures in report["models"].values():
        assert set(figures) == {"fp32", "bf16-mixed"}  # 16-mixed and compile need CUDA
        for f in figures.values():
            assert f["samples_per_s"] > 0 and 0 <= f["data_wait_fraction"] <= 1
            assert f["loss_fell"] and f["loss_last"] < f["loss_first"]
            assert f["extraction_x_realtime"] > 0
    printed = table(report)
    assert "| resnet34 | bf16-mixed |" in printed and "falls" in printed
