"""The VoxCeleb runs refuse to start with MUSAN or RIRS_NOISES left unset (one line naming the
keys), start with the folders or with generated stand-ins chosen explicitly, and the built-in
corpus runs the same recipes without either."""

import re

import numpy as np
import pytest
from tests.conftest import compose_config

from speakerid.data.augment import AdditiveNoise, Reverb
from speakerid.errors import ConfigError
from speakerid.train import check_augmentation_sources

SB = "system.wave_augment.augmentations"


@pytest.mark.parametrize(
    ("overrides", "keys"),
    [
        (["data=voxceleb"], "data.augment.steps.1.root (RIRS_NOISES), data.augment.steps.2.root"),
        (
            ["experiment=wespeaker_resnet34", "data=voxceleb2"],
            "set data.augment.steps.0.root (RIRS_NOISES), data.augment.steps.1.root (MUSAN) to",
        ),
        (["experiment=wespeaker_ecapa512_lm", "data=voxceleb12"], "data.augment.steps.0.root"),
        (
            ["experiment=speechbrain_ecapa", "data=voxceleb12"],
            f"{SB}.0.augment.root (MUSAN), {SB}.1.augment.root (RIRS_NOISES)",
        ),
        (
            ["experiment=wespeaker_resnet34", "data=voxceleb2", "data.augment.steps.0.root=/r"],
            "set data.augment.steps.1.root (MUSAN) to",
        ),
    ],
)
def test_voxceleb_runs_refuse_unset_sources(overrides: list[str], keys: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(keys)) as refused:
        check_augmentation_sources(compose_config("train", overrides))
    assert "\n" not in str(refused.value)
    assert "'generated'" in str(refused.value)


def test_refusal_comes_before_any_work(tmp_path) -> None:
    """speakerid-train refuses before it reads the corpus (which does not exist here)."""
    from speakerid.train import train

    cfg = compose_config(
        "train",
        [
            "experiment=wespeaker_resnet34",
            "data=voxceleb2",
            f"paths.data_dir={tmp_path}/nowhere",
            f"paths.output_dir={tmp_path}/run",
        ],
    )
    with pytest.raises(ConfigError, match="a VoxCeleb run trains with MUSAN and RIRS_NOISES"):
        train(cfg)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("experiment", ["wespeaker_resnet34", "wespeaker_ecapa512"])
def test_voxceleb_runs_start_with_folders_or_generated_sources(experiment: str, caplog) -> None:
    folders = ["data.augment.steps.0.root=/rirs", "data.augment.steps.1.root=/musan"]
    generated = ["data.augment.steps.0.root=generated", "data.augment.steps.1.root=generated"]
    with caplog.at_level("WARNING"):
        check_augmentation_sources(
            compose_config("train", [f"experiment={experiment}", "data=voxceleb2", *folders])
        )
        check_augmentation_sources(compose_config("train", [f"experiment={experiment}"]))
        assert not caplog.records  # real sources, or the built-in corpus: nothing to say
        check_augmentation_sources(
            compose_config("train", [f"experiment={experiment}", "data=voxceleb2", *generated])
        )
    assert "generated noise/rooms only" in caplog.text


def test_speechbrain_recipe_starts_with_generated_sources() -> None:
    generated = [f"{SB}.0.augment.root=generated", f"{SB}.1.augment.root=generated"]
    cfg = compose_config("train", ["experiment=speechbrain_ecapa", "data=voxceleb2", *generated])
    check_augmentation_sources(cfg)


def test_generated_root_draws_the_generated_source() -> None:
    """``root: generated`` gives what an unset root gives: generated noise, simulated rooms."""
    wav = np.sin(np.arange(4000, dtype=np.float32) / 7)
    for cls in (AdditiveNoise, Reverb):
        chosen = cls(root="generated", probability=1.0)(wav, np.random.default_rng(3))
        unset = cls(root=None, probability=1.0)(wav, np.random.default_rng(3))
        assert chosen.shape == wav.shape and np.array_equal(chosen, unset)
        assert not np.allclose(chosen, wav)
