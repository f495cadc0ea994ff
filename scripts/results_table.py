"""Print docs/results.md's table from the runs of scripts/results.sh (logs/results/)."""

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "logs/results")
times = dict(line.split("\t") for line in (ROOT / "times.tsv").read_text().splitlines() if line)
print("| experiment | epochs | minutes | test EER | minDCF (0.01) | classifier top-1 / top-5 |")
print("| --- | ---: | ---: | ---: | ---: | --- |")
for name, seconds in times.items():
    metrics = json.loads((ROOT / name / "metrics.json").read_text())
    config = OmegaConf.load(ROOT / name / ".hydra" / "config.yaml")
    ident = ""
    report = ROOT / name / "eval.json"
    if report.is_file():
        classifier = json.loads(report.read_text()).get("identification_classifier", {})
        if "top1" in classifier:
            ident = f"{100 * classifier['top1']:.1f} % / {100 * classifier['top5']:.1f} %"
    print(
        f"| `{name}` | {config.trainer.max_epochs} | {int(seconds) / 60:.1f} "
        f"| {100 * metrics['test/eer']:.2f} % | {metrics['test/min_dcf']:.3f} | {ident} |"
    )
