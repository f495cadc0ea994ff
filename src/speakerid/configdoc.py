"""``python -m speakerid.configdoc``: write ``docs/configuration.md`` from ``conf/``.

Every entry config and every choice of every config group is listed with the first comment of its
YAML file, so the reference cannot go stale: a test regenerates it and compares.
"""

import argparse
from pathlib import Path

from speakerid.cli import CONFIG_PATH

HEADER = """# Configuration reference

Generated from `conf/` by `python -m speakerid.configdoc` (`make docs`); do not edit by hand — edit
the first comment of the YAML file instead. Choose a group's file with `group=choice` on the
command line (`model/backbone=ecapa_tdnn`), override any value with `key=value`.
"""


def describe(path: Path) -> str:
    """The first comment block of a YAML file, as one line (``# @package`` lines skipped)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text.startswith("@package"):
            lines.append(text)
    return " ".join(lines).replace("|", "\\|") or "—"


def render(conf: Path) -> str:
    """The reference as Markdown."""
    out = [HEADER, "## Entry points\n", "| config | command and purpose |", "| --- | --- |"]
    out += [f"| `{p.stem}.yaml` | {describe(p)} |" for p in sorted(conf.glob("*.yaml"))]
    groups = sorted(
        {p.parent.relative_to(conf).as_posix() for p in conf.rglob("*.yaml") if p.parent != conf}
    )
    out.append("\n## Config groups\n")
    for group in groups:
        out += [f"### `{group}`\n", "| choice | what it is |", "| --- | --- |"]
        out += [f"| `{p.stem}` | {describe(p)} |" for p in sorted((conf / group).glob("*.yaml"))]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(Path(CONFIG_PATH).parent / "docs/configuration.md"))
    args = parser.parse_args()
    Path(args.output).write_text(render(Path(CONFIG_PATH)))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
