"""Every YAML of every plug-in group builds an object that honours its group's contract
(``speakerid.contracts.GROUP_CONTRACTS``), and the optional abilities are declared, not guessed."""

import inspect
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import instantiate
from tests.conftest import CONF, TINY_MODEL, compose_config, tiny_overrides

from speakerid.analysis.sections import EvalContext, Section, run_sections
from speakerid.contracts import (
    GROUP_CONTRACTS,
    Backbone,
    Classifier,
    Corpus,
    MarginHead,
    NeedsTargets,
    OwnOptimizer,
    missing_members,
)

CASES = [
    (group, path.stem)
    for group in GROUP_CONTRACTS
    for path in sorted((CONF / group).glob("*.yaml"))
]


def _build(group: str, choice: str, tmp_path: Path):
    if group == "corpus":
        cfg = compose_config("prepare", [f"corpus={choice}", f"paths.data_dir={tmp_path}"])
        return instantiate(cfg.corpus)
    if group in ("model/enhancer", "enhance_loss"):
        overrides = ["data.store=x", "data.embed_dim=16", "data.num_speakers=5"]
        cfg = compose_config("enhance", [*overrides, f"{group}={choice}"])
        return instantiate(cfg.model.enhancer if group == "model/enhancer" else cfg.loss)
    overrides = [*tiny_overrides(tmp_path, tmp_path), f"{group}={choice}"]
    if group != "model/backbone":
        overrides += [f"{k}={v}" for k, v in TINY_MODEL.items()]
    cfg = compose_config("train", overrides)
    node = {"features": cfg.features, "model/backbone": cfg.model.backbone, "loss": cfg.loss}
    return instantiate(node[group])


def test_every_plugin_group_is_covered() -> None:
    assert len(CASES) > 40  # features, backbones, enhancers, heads, corpora
    plugin_groups = {"features", "model/backbone", "model/enhancer", "loss", "enhance_loss"}
    assert plugin_groups | {"corpus"} == set(GROUP_CONTRACTS)


@pytest.mark.parametrize(("group", "choice"), CASES)
def test_every_yaml_honours_its_group_contract(group: str, choice: str, tmp_path: Path) -> None:
    plugin = _build(group, choice, tmp_path)
    contract = GROUP_CONTRACTS[group]
    missing = missing_members(plugin, contract)
    assert not missing, (
        f"conf/{group}/{choice}.yaml builds {type(plugin).__name__}, which lacks "
        f"{', '.join(missing)} of the {contract.__name__} contract (speakerid/contracts.py)"
    )
    assert isinstance(plugin, contract)


@pytest.mark.parametrize(("group", "choice"), [c for c in CASES if c[0] == "loss"])
def test_encoder_heads_declare_their_abilities(group: str, choice: str, tmp_path: Path) -> None:
    """Encoder heads never need per-speaker targets (those are enhancement heads), and a head
    that classifies returns logits of the configured number of classes."""
    head = _build(group, choice, tmp_path)
    assert not isinstance(head, NeedsTargets), f"{choice}: a target head in the encoder's group"
    if isinstance(head, Classifier):
        assert head.classify(torch.randn(3, 16)).shape == (3, 5)
    if isinstance(head, MarginHead):
        head.set_margin(0.05)
        assert head.margin == 0.05
    if isinstance(head, OwnOptimizer):
        own = {id(p) for p in head.own_parameters()}
        assert own and own <= {id(p) for p in head.parameters()}


def test_a_plugin_missing_a_member_is_named() -> None:
    class NoSize(torch.nn.Module):  # a backbone whose author forgot embed_dim
        def forward(self, features, lengths=None):
            return features.mean(1)

    assert missing_members(NoSize(), Backbone) == ["embed_dim"]
    assert not isinstance(NoSize(), Backbone)

    class HalfCorpus:
        root = Path(".")

        def manifest(self, validate: bool = False): ...

    assert missing_members(HalfCorpus(), Corpus) == ["prepare", "trial_path", "validation_reports"]


def _sections() -> list[tuple[str, str]]:
    """(evaluation, section) of every section a conf/evaluation file turns on (null: left out)."""
    return [
        (path.stem, name)
        for path in sorted((CONF / "evaluation").glob("*.yaml"))
        for name, section in yaml.safe_load(path.read_text())["sections"].items()
        if section is not None
    ]


@pytest.mark.parametrize(("evaluation", "section"), _sections())
def test_every_report_section_builds_a_section(evaluation: str, section: str) -> None:
    cfg = compose_config("eval", ["ckpt_path=x.ckpt", f"evaluation={evaluation}"])
    built = instantiate(cfg.evaluation.sections[section])
    signature = inspect.signature(built.__call__)
    assert list(signature.parameters) == ["table", "evalset", "context"], section


def test_sections_run_in_order_and_read_earlier_parts(tmp_path: Path) -> None:
    class Count:
        def __call__(self, table, evalset, context: EvalContext) -> Section:
            return Section({"rows": len(table)})

    class Twice:
        def __call__(self, table, evalset, context: EvalContext) -> Section:
            image = context.out_dir / "x.png"
            return Section({"double": 2 * context.report["count"]["rows"]}, {"x": image})

    sections = {"count": Count(), "left_out": None, "twice": Twice()}
    report, images = run_sections(sections, torch.zeros(3, 4), None, EvalContext(tmp_path))
    assert report == {"count": {"rows": 3}, "twice": {"double": 6}}
    assert images == {"x": tmp_path / "x.png"}
