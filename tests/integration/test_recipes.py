"""The published recipes: each composes to the values its parity table in docs/recipes.md
states, and each runs its whole pipeline at reduced width on the tiny corpus (train -> average
-> large-margin stage -> evaluation with AS-norm and calibration)."""

import re
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from tests.conftest import compose_config, tiny_overrides

from speakerid.evaluate import evaluate
from speakerid.inference import load_checkpoint
from speakerid.train import train

DOC = Path(__file__).parents[2] / "docs" / "recipes.md"


def _tables() -> dict[str, tuple[list[str], list[tuple[str, str, str]]]]:
    """Recipe -> (its composing overrides, [(key, value, same?)] of rows naming a key)."""
    recipes: dict = {}
    name = None
    for line in DOC.read_text().splitlines():
        if heading := re.fullmatch(r"## `(\w+)`", line):
            name = heading[1]
            recipes[name] = ([], [])
        elif name and (composed := re.fullmatch(r"Composed: `(.+)`", line)):
            recipes[name][0].extend(composed[1].split())
        elif name and line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) == 5 and cells[2].startswith("`"):
                recipes[name][1].append((cells[2].strip("`"), cells[3].strip("`"), cells[4]))
    return recipes


TABLES = _tables()


def test_every_recipe_has_a_table() -> None:
    recipes = {p.stem for p in (DOC.parents[1] / "conf" / "experiment").glob("*.yaml")}
    published = {r for r in recipes if r.startswith(("wespeaker_", "speechbrain_"))}
    assert published <= set(TABLES), published - set(TABLES)
    for name, (_, rows) in TABLES.items():
        assert len(rows) >= 8, name


@pytest.mark.parametrize("recipe", sorted(TABLES))
def test_recipe_composes_to_its_table(recipe: str) -> None:
    overrides, rows = TABLES[recipe]
    cfg = compose_config("train", overrides)
    for key, value, same in rows:
        expected = yaml.safe_load(value)
        found = OmegaConf.select(cfg, key)
        found = OmegaConf.to_container(found) if OmegaConf.is_config(found) else found
        assert found == expected, f"{recipe}: {key} is {found!r}, the table says {expected!r}"
        assert same.startswith("same"), f"{recipe}: {key}: a keyed row must be the same: {same}"


def test_different_rows_give_a_reason() -> None:
    text = DOC.read_text()
    for line in text.splitlines():
        if line.startswith("| ") and "| different" in line:
            assert re.search(r"\| different: \S.{10,}", line), line


REDUCED = {
    "wespeaker_ecapa512": ["model.backbone.channels=16", "model.backbone.embed_dim=16",
                           "model.backbone.attention_channels=8", "model.backbone.se_channels=8"],
    "wespeaker_resnet34": ["model.backbone.width=4", "model.backbone.embed_dim=16"],
    "speechbrain_ecapa": ["model.backbone.channels=16", "model.backbone.embed_dim=16",
                          "model.backbone.attention_channels=8", "model.backbone.se_channels=8"],
}  # fmt: skip
CPU = ["trainer=cpu", "trainer.devices=1", "data.num_speakers=null", "data.num_workers=0",
       "callbacks.rich_progress_bar=null", "trainer.enable_progress_bar=false"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(REDUCED))
def test_recipe_pipeline_end_to_end(recipe: str, tiny_data_dir: Path, tmp_path: Path) -> None:
    """Train (its schedules, margin schedule, augmentation, speed classes, averaging), the
    large-margin stage from the averaged weights where the recipe has one, then evaluate
    with AS-norm over speaker-mean cohorts and calibration."""
    first = tmp_path / "first"
    base = [*tiny_overrides(tiny_data_dir, first), *CPU, *REDUCED[recipe]]
    metrics = train(
        compose_config("train", [f"experiment={recipe}", *base, "trainer.max_epochs=2"])
    )
    assert 0.0 <= metrics["test/eer"] <= 1.0
    tested = (
        first / "checkpoints" / ("averaged.ckpt" if recipe.startswith("wespeaker") else "last.ckpt")
    )
    assert tested.is_file()
    if recipe.startswith("wespeaker"):  # the averaged weights are the mean of the epochs' ends
        last = load_checkpoint(first / "checkpoints" / "last.ckpt")
        state = next(v for k, v in last["callbacks"].items() if "AverageLastEpochs" in k)
        assert state["epochs"] == [0, 1]
        averaged = load_checkpoint(tested)["state_dict"]
        for key, total in state["total"].items():
            torch.testing.assert_close(averaged[key].float(), total / 2)
        assert "thresholds" in load_checkpoint(tested)["speakerid"]  # tested and stored there
        second = tmp_path / "lm"
        lm = [*tiny_overrides(tiny_data_dir, second), *CPU, *REDUCED[recipe], f"init_from={tested}"]
        metrics = train(compose_config("train", [f"experiment={recipe}_lm", *lm]))
        assert 0.0 <= metrics["test/eer"] <= 1.0
        tested = second / "checkpoints" / "last.ckpt"
    out = tmp_path / "eval"
    report = evaluate(
        compose_config(
            "eval",
            [
                f"ckpt_path={tested}",
                f"output_dir={out}",
                f"paths.output_dir={out}",
                "num_workers=0",
                "evaluation.sections.identification=null",
                "evaluation.sections.clustering=null",
                "evaluation.sections.plots=null",
                "evaluation.sections.verification.cohort=speaker_means",
            ],
        )
    )
    assert set(report["verification"]) == {"cosine", "mean_subtraction", "as_norm"}
    assert {"cosine", "as_norm"} <= set(report["calibration"])


def test_augmentation_default_follows_the_corpus(caplog) -> None:
    """The built-in corpus keeps its channel; real corpora default to MUSAN + RIRS, and a real
    corpus other than VoxCeleb augmented with generated noise only says so before anything else
    (VoxCeleb refuses: tests/integration/test_augmentation_sources.py)."""
    from speakerid.train import check_augmentation_sources

    synthetic = compose_config("train", [])
    assert synthetic.data.augment._target_.endswith("ChannelAugment")
    for data in ("voxceleb", "voxceleb2", "voxceleb12", "commonvoice", "voxforge"):
        real = compose_config("train", [f"data={data}"])
        steps = [s._target_.rsplit(".", 1)[-1] for s in real.data.augment.steps]
        assert steps == ["SpeedPerturb", "Reverb", "AdditiveNoise"], data
    with caplog.at_level("WARNING"):
        check_augmentation_sources(synthetic)
        assert not caplog.records
        check_augmentation_sources(real)  # voxforge
    assert (
        "generated noise/rooms only (Reverb (data.augment.steps.1.root), AdditiveNoise "
        "(data.augment.steps.2.root))" in caplog.text
    )
    caplog.clear()
    with_roots = compose_config(
        "train",
        ["data=voxforge", "data.augment.steps.1.root=/rirs", "data.augment.steps.2.root=/musan"],
    )
    with caplog.at_level("WARNING"):
        check_augmentation_sources(with_roots)
    assert not caplog.records
