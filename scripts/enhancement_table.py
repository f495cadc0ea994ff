"""Print an enhancement table of docs/enhancement.md from the runs of a protocol script
(``python scripts/enhancement_table.py logs/protocol_b``): original vs each loss's enhanced
embeddings on the same test trials, with each run's minutes."""

import json
import sys
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "logs/protocol_b")
times = dict(line.split("\t") for line in (ROOT / "times.tsv").read_text().splitlines() if line)
rows = [(name, json.loads((ROOT / name / "enhance.json").read_text())) for name in times
        if (ROOT / name / "enhance.json").is_file()]  # fmt: skip
print("| enhancement loss | EER | minDCF 0.01 | minDCF 0.05 | minutes |")
print("| --- | ---: | ---: | ---: | ---: |")
if rows:
    original = rows[0][1]["original"]
    print(
        f"| original embeddings | {100 * original['eer']:.2f} % | {original['min_dcf']:.3f} "
        f"| {original['min_dcf_p05']:.3f} | |"
    )
for name, report in rows:
    figures = report["enhanced"]
    print(
        f"| `{name}` | {100 * figures['eer']:.2f} % | {figures['min_dcf']:.3f} "
        f"| {figures['min_dcf_p05']:.3f} | {int(times[name]) / 60:.1f} |"
    )
