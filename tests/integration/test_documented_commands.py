"""Every command the README shows and every Makefile target runs as written, in a copy of the
checkout: tiny settings are only appended (``ARGS=`` or an environment variable), never a path the
command relies on. What cannot run here is listed in ``NOT_RUN`` with the reason, and a command
documented without an entry in one of the two lists fails the first test.

The copy has its own ``src/`` and ``conf/`` (``PYTHONPATH``), and a ``.venv`` of links to this
venv with its own up-to-date install markers: make reuses the venv and never installs into it.
Independent steps run two at a time (CI has two cores), each task's steps one after another
(runs of one task started in the same second would share a folder).
"""

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import TINY_CORPUS, TINY_DATA, TINY_MODEL

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
README_RUN = "logs/train/runs/2026-11-21_04-29-35"  # the README's example run folder
README_CKPT = f"{README_RUN}/checkpoints/last.ckpt"

CORPUS = " ".join(f"corpus.{k}={v}" for k, v in TINY_CORPUS.items())
DATA = " ".join(
    [f"data.{c}" for c in CORPUS.split()]
    + [f"data.{k}={v}" for k, v in TINY_DATA.items() if not isinstance(v, dict)]
    + [f"data.eval.{k}={v}" for k, v in TINY_DATA["eval"].items()]
)
QUIET = "callbacks.rich_progress_bar=null trainer.enable_progress_bar=false"
TRAIN = f"{DATA} {' '.join(f'{k}={v}' for k, v in TINY_MODEL.items())} trainer.max_epochs=1 {QUIET}"
GE2E = f"{DATA} data.sampler.speakers=4 data.sampler.utterances=2 trainer.max_epochs=1 {QUIET}"
ENHANCE = (  # the store: the tiny model's 16-d embeddings, 5 training and 2 validation speakers
    f"data.embed_dim=16 data.num_speakers=5 data.val_speakers=2 trainer.max_epochs=1 "
    f"trainer.check_val_every_n_epoch=1 {QUIET}"
)
# the targets' pytest wiring on one small file (the suite itself is what CI runs)
PYTEST_FILE = (("PYTEST_ADDOPTS", "--noconftest tests/unit/test_trials.py"),)


@dataclass(frozen=True)
class Done:
    """A step's outcome: the command line run, its result, the run folders it made."""

    command: str
    returncode: int
    output: str
    new: tuple[Path, ...]  # folders logs/<task>/<runs|multiruns>/<time> made by the step
    seconds: float = 0.0


@dataclass(frozen=True)
class Step:
    """A documented command (or a helper) with what it takes to run it here.

    Args:
        command: as documented; empty for a helper that only acts.
        args: tiny settings appended to ``ARGS="..."`` (make) or to the command.
        fill: placeholders of the documentation and their values here.
        env: environment variables added.
        needs: steps whose files this one reads.
        act: a helper's work on the copy (files the documentation presumes).
        check: what the step must have left, beyond exit status 0.
        verdict: exit status 1 is an answer (speakerid-verify: different speakers).
    """

    command: str = ""
    args: str = ""
    fill: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    needs: tuple[str, ...] = ("make prepare",)
    act: Callable[[Path, dict[str, Done]], None] | None = None
    check: Callable[[Path, Done], None] | None = None
    verdict: bool = False

    def line(self) -> str:
        """The command line that runs: placeholders filled, tiny settings appended."""
        tokens = shlex.split(self.command)
        for placeholder, value in self.fill:
            tokens = [t.replace(placeholder, value) for t in tokens]
        if self.args and tokens[0] == "make":
            given = [i for i, t in enumerate(tokens) if t.startswith("ARGS=")]
            if given:
                tokens[given[0]] += f" {self.args}"
            else:
                tokens.append(f"ARGS={self.args}")
        elif self.args:
            tokens += shlex.split(self.args)
        return shlex.join(tokens)


def readme_commands(text: str) -> list[str]:
    """The command lines of the README's ``bash`` blocks, comments left out."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            command = _without_comment(line).strip()
            if command:
                commands.append(command)
    return commands


def _without_comment(line: str) -> str:
    for match in re.finditer(r"(^|\s)#", line):
        before = line[: match.start()]
        if before.count('"') % 2 == 0 and before.count("'") % 2 == 0:
            return before
    return line


def makefile_targets(text: str) -> list[str]:
    """The Makefile's documented targets (those with a ``## `` description, as ``make help``)."""
    return re.findall(r"^([a-z][a-z-]*):.*?## ", text, re.MULTILINE)


def _wrote(*paths: str) -> Callable[[Path, Done], None]:
    def check(root: Path, done: Done) -> None:
        missing = [p for p in paths if not (root / p).exists()]
        assert not missing, f"{done.command} did not write {missing}"

    return check


def _made(kind: str, file: str, rows: int | None = None) -> Callable[[Path, Done], None]:
    """One new folder of ``kind`` (``train/runs``: logs/train/runs/<time>) holding ``file``; for a
    sweep, its table with ``rows`` runs, all ok."""

    def check(root: Path, done: Done) -> None:
        (folder,) = [f for f in done.new if "/".join(f.parts[-3:-1]) == kind]
        assert (folder / file).exists(), f"{done.command}: no {file} in {folder}"
        if rows is not None:
            table = list(csv.DictReader((folder / "sweep.csv").open()))
            assert [r["run"] for r in table] == [str(n) for n in range(rows)]
            assert {r["status"] for r in table} == {"ok"}
            assert [r["best"] for r in table].count("best") == 1
            assert all(float(r["test/eer"]) >= 0 for r in table)
            assert (folder / "sweep.md").read_text().count("| ok |") == rows

    return check


def _reported(path: str, value: str) -> Callable[[Path, Done], None]:
    def check(root: Path, done: Done) -> None:
        assert value in (root / path).read_text(), f"{done.command}: {value} not in {path}"

    return check


def _printed(*words: str) -> Callable[[Path, Done], None]:
    def check(root: Path, done: Done) -> None:
        assert all(w in done.output for w in words), f"{done.command}: {words} not in its output"

    return check


def _cleaned(gone: str, kept: str) -> Callable[[Path, Done], None]:
    def check(root: Path, done: Done) -> None:
        assert not (root / gone).exists() and (root / kept).exists()

    return check


def _readme_files(root: Path, done: dict[str, "Done"]) -> None:
    """What the README's commands presume: its example run folder (the run ``make train`` made),
    two recordings of one speaker (a.wav, b.wav), a folder of speakers with a trial list."""
    (run,) = [f for f in done["make train"].new if "/".join(f.parts[-3:-1]) == "train/runs"]
    run.rename(root / README_RUN)
    speakers = sorted((root / "data/synthetic/wav").iterdir())[-TINY_CORPUS["test_speakers"] :]
    for speaker in speakers:  # <root>/<speaker>/<n>.wav; the third speaker is the cohort
        (root / "recordings" / speaker.name).mkdir(parents=True)
        for n, wav in enumerate(sorted(speaker.rglob("*.wav"))[:3]):
            shutil.copy(wav, root / "recordings" / speaker.name / f"{n}.wav")
    a, b = (s.name for s in speakers[:2])
    trials = f"1 {a}/0.wav {a}/1.wav\n0 {a}/0.wav {b}/0.wav\n1 {b}/0.wav {b}/2.wav\n"
    (root / "recordings/trials.txt").write_text(trials)
    shutil.copy(root / f"recordings/{a}/0.wav", root / "a.wav")
    shutil.copy(root / f"recordings/{a}/1.wav", root / "b.wav")


HELPERS = {
    "readme files": Step(needs=("make train",), act=_readme_files),
    # `make pretrained`'s two steps, the second on the tiny corpus: conversion, thresholds
    "resemblyzer": Step(".venv/bin/speakerid-prepare pretrained=resemblyzer", needs=()),
    "resemblyzer thresholds": Step(
        ".venv/bin/speakerid-eval ckpt_path=data/pretrained/resemblyzer.ckpt "
        "evaluation.sections.plots=null data=synthetic",
        DATA,
        needs=("make prepare", "resemblyzer"),
    ),
}
CKPT = (("...", README_CKPT),)
README_FILES = ("make prepare", "readme files")
RESEMBLYZER = ("resemblyzer thresholds", "readme files")
STEPS = {  # documented command -> how it runs here, in the order the tests report them
    step.command: step
    for step in (
        Step("make help", needs=(), check=_printed(*makefile_targets(MAKEFILE))),
        Step("make prepare", CORPUS, needs=(), check=_wrote("data/synthetic")),
        Step("make train", TRAIN, check=_made("train/runs", "metrics.json")),
        Step(
            'make train ARGS="trainer.max_epochs=20 loss.margin=0.3"',
            TRAIN,
            check=_made("train/runs", "metrics.json"),
        ),
        Step(
            f'make eval ARGS="ckpt_path={README_CKPT}"',
            needs=README_FILES,
            check=_wrote(f"{README_RUN}/eval.json"),
        ),
        Step(
            'make eval ARGS="ckpt_path=... logger=tensorboard crops=10"',
            fill=CKPT,
            needs=README_FILES,
            check=_made("eval/runs", "tensorboard"),
        ),
        Step(
            'make embed ARGS="ckpt_path=... output=data/embeddings/ecapa"',
            fill=CKPT,
            needs=README_FILES,
            check=_wrote("data/embeddings/ecapa"),
        ),
        Step(
            'make enhance ARGS="data.store=data/embeddings/ecapa enhance_loss=mse_cosine"',
            ENHANCE,
            needs=('make embed ARGS="ckpt_path=... output=data/embeddings/ecapa"',),
            check=_made("enhance/runs", "enhance.json"),
        ),
        Step("make export", f"ckpt_path={README_CKPT}", needs=README_FILES),
        Step("make baseline", DATA, check=_printed("no-training baseline")),
        Step("make sweep", TRAIN, check=_made("train/multiruns", "sweep.csv", rows=6)),
        Step(
            "make search",
            f"hydra.sweeper.n_trials=2 {TRAIN}",
            check=_made("train/multiruns", "sweep.csv", rows=2),
        ),
        Step("make test", env=PYTEST_FILE, needs=(), check=_printed("passed")),
        Step(
            'make test ARGS="-k fbank -x"',
            env=(("PYTEST_ADDOPTS", "--noconftest tests/unit/test_fbank.py"),),
            needs=(),
            check=_printed("passed"),
        ),
        Step("make test-fast", env=PYTEST_FILE, needs=(), check=_printed("passed")),
        Step("make test-all", env=PYTEST_FILE, needs=(), check=_printed("passed")),
        Step("make lint", needs=()),
        Step("make docs", needs=(), check=_wrote("docs/configuration.md")),
        Step(
            "speakerid-verify a.wav b.wav ckpt_path=data/pretrained/resemblyzer.ckpt",
            needs=RESEMBLYZER,
            check=_printed("score"),
            verdict=True,
        ),
        Step(
            "speakerid-eval ckpt_path=data/pretrained/resemblyzer.ckpt data=folder "
            "data.corpus.root=DIR trials=LIST",
            fill=(("DIR", "recordings"), ("LIST", "trials.txt")),
            needs=RESEMBLYZER,
            check=_reported("data/pretrained/eval.json", "recordings/trials.txt"),
        ),
        Step(
            'make train ARGS="experiment=ge2e_resemblyzer '
            'init_from=data/pretrained/resemblyzer.ckpt"',
            GE2E,
            needs=("make prepare", "resemblyzer"),
            check=_made("train/runs", "metrics.json"),
        ),
        # LAST: after every other step, as they change or remove what the others read
        Step("make format", needs=()),
        Step("make clean", needs=(), check=_cleaned("logs", "data")),
        Step("make clean-data", needs=(), check=_cleaned("data", ".venv")),
    )
}
LAST = ("make format", "make clean", "make clean-data")

NOT_RUN = {  # documented command -> why it does not run in CI
    "make install": "builds .venv from uv.lock (network, a minute): .ci/run runs it first on a "
    "fresh clone; here every target runs it as an up-to-date prerequisite",
    "make sync": "rewrites the venv to uv.lock (network when a wheel is not cached)",
    "make lock": "re-resolves uv.lock against the package index (network)",
    "make pretrained": "its second step scores Resemblyzer on the full built-in corpus (200 "
    "speakers: minutes on two cores); both steps run here, the second on the tiny corpus (the "
    "'resemblyzer' helpers)",
    "make gpu-check": "needs CUDA; its CPU dry run (a minute) is test_gpu_check.py's test",
    "make bench": "timing by design: 2-3 min of throughput figures, ~10 exporting full-size models",
    'make train ARGS="model/backbone=ecapa_tdnn trainer=gpu"': "needs CUDA (trainer=gpu)",
    'make train ARGS="experiment=ecapa_aam"': "needs CUDA (the experiment sets trainer=gpu)",
    'make train ARGS="experiment=wespeaker_resnet34 data=voxceleb2"': "needs VoxCeleb2",
}
LANES = {  # steps that write folders of one task: one after another (see the module docstring)
    "helper": "train",  # the README's run folder is moved into logs/train/runs
    "sweep": "train",
    "search": "train",
    "baseline": "train",
    "speakerid-eval": "eval",
    "speakerid-prepare": "prepare",
    "test-fast": "test",
    "test-all": "test",
}


def _step(key: str) -> Step:
    return STEPS.get(key) or HELPERS[key]


class Workspace:
    """The copy of the checkout, and the steps run in it: each once, at most two at a time."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.slots = threading.Semaphore(2)
        self.lock = threading.RLock()
        self.lanes: dict[str, threading.Lock] = {}
        self.threads: dict[str, threading.Thread] = {}
        self.done: dict[str, Done] = {}

    def start(self, key: str) -> None:
        """Start ``key`` (and what it needs) in the background, unless started already."""
        with self.lock:
            if key in self.threads:
                return
            for need in _step(key).needs:
                self.start(need)
            self.threads[key] = threading.Thread(target=self._run, args=(key,), daemon=True)
            self.threads[key].start()

    def result(self, key: str) -> Done:
        self.start(key)
        self.threads[key].join()
        return self.done[key]

    def _run(self, key: str) -> None:
        step = _step(key)
        try:
            if key in LAST:  # after every other step started, and the LAST ones before it
                later = LAST[LAST.index(key) :]
                for other in [k for k in list(self.threads) if k not in later]:
                    self.threads[other].join()
            failed = [n for n in step.needs if self.result(n).returncode != 0]
            if failed:
                why = f"needs {failed[0]}, which failed:\n{self.done[failed[0]].output[-2000:]}"
                self.done[key] = Done(step.command, -1, why, ())
                return
            lane = LANES.get(_lane(step), _lane(step))
            with self.lock:
                lock = self.lanes.setdefault(lane, threading.Lock())
            with lock, self.slots:
                self.done[key] = self._execute(key, step)
        except Exception as err:  # a helper's error, a timeout: reported by the tests
            self.done[key] = Done(step.command or key, -1, f"{type(err).__name__}: {err}", ())

    def _execute(self, key: str, step: Step) -> Done:
        before, started = set(self.root.glob("logs/*/*/*")), time.monotonic()
        if step.act:
            step.act(self.root, self.done)
            return Done(key, 0, "", (), time.monotonic() - started)
        line = step.line()
        run = subprocess.run(
            ["bash", "-c", line],
            cwd=self.root,
            env={**self.env, **dict(step.env)},
            capture_output=True,
            text=True,
            timeout=900,
        )
        new = tuple(sorted(set(self.root.glob("logs/*/*/*")) - before))
        return Done(line, run.returncode, run.stdout + run.stderr, new, time.monotonic() - started)


def _lane(step: Step) -> str:
    tokens = shlex.split(step.command) or ["helper"]
    return tokens[1] if tokens[0] == "make" else Path(tokens[0]).name


def _copy_checkout(root: Path) -> None:
    """Tracked and untracked (not ignored) files of the checkout, and a ``.venv`` of links to
    this venv with install markers newer than pyproject.toml and uv.lock: make installs nothing."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True
    )
    if listed.returncode != 0 or not (Path(sys.prefix) / "bin").is_dir():
        pytest.skip("needs a git checkout and its venv")
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / name).is_file():  # a tracked file deleted in the working tree is left out
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name, follow_symlinks=False)
    (root / ".venv").mkdir()
    for entry in Path(sys.prefix).iterdir():
        if entry.name not in (".installed", ".checked", ".lock"):
            (root / ".venv" / entry.name).symlink_to(entry)
    for marker in (".installed", ".checked"):
        (root / ".venv" / marker).touch()


def _environment(root: Path) -> dict[str, str]:
    """This environment without make's, pytest's and speakerid's own variables; the copy's code
    and venv first, W&B offline."""
    own = ("MAKE", "MFLAGS", "PYTEST_", "SPEAKERID_", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env["PATH"] = f"{root / '.venv/bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(PYTHONPATH=str(root / "src"), WANDB_MODE="offline", HF_HUB_OFFLINE="1")
    env["OMP_NUM_THREADS"] = "1"  # two steps at a time on two cores: one thread each
    return env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, request) -> Iterator[Workspace]:
    """The copy, checked to reinstall nothing and to run its own code; the selected steps of
    this module started at once (they wait for what they need)."""
    root = tmp_path_factory.mktemp("checkout") / "speakerid"
    _copy_checkout(root)
    env = _environment(root)
    up_to_date = subprocess.run(["make", "-q", ".venv/.checked"], cwd=root, env=env)
    assert up_to_date.returncode == 0, "make would install into the venv: run `make install`"
    where = [".venv/bin/python", "-c", "import speakerid.cli as c; print(c.CONFIG_PATH)"]
    config = subprocess.run(where, cwd=root, env=env, capture_output=True, text=True)
    assert config.stdout.strip() == str(root / "conf"), config.stderr
    workspace = Workspace(root, env)
    for item in request.session.items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        if getattr(item, "module", None) is request.module and "command" in params:
            workspace.start(params["command"])
    yield workspace
    for thread in workspace.threads.values():  # nothing left running in the removed copy
        thread.join()
    for key, done in workspace.done.items():  # shown with -s: where the time goes
        print(f"{done.seconds:6.1f} s  exit {done.returncode}  {key}")


def test_every_documented_command_runs_or_says_why_not() -> None:
    readme, targets = readme_commands(README), makefile_targets(MAKEFILE)
    assert len(readme) > 15 and "sweep" in targets  # the parsers found the documentation
    listed = {*STEPS, *NOT_RUN}
    assert not set(STEPS) & set(NOT_RUN)
    missing = [c for c in readme if c not in listed]
    missing += [
        f"make {t}" for t in targets if not any(re.match(f"make {t}( |$)", c) for c in listed)
    ]
    assert not missing, f"documented, but neither run nor in NOT_RUN (with the reason): {missing}"
    documented = {*readme, *(f"make {t}" for t in targets)}
    stale = [c for c in listed if c not in documented]
    assert not stale, f"no longer documented: {stale}"


@pytest.mark.slow
@pytest.mark.parametrize("command", list(STEPS), ids=list(STEPS))
def test_documented_command_runs_as_written(workspace: Workspace, command: str) -> None:
    done = workspace.result(command)
    allowed = (0, 1) if STEPS[command].verdict else (0,)
    assert done.returncode in allowed, (
        f"{done.command}: exit {done.returncode}\n{done.output[-3000:]}"
    )
    if STEPS[command].check:
        STEPS[command].check(workspace.root, done)
