"""A checkpoint cannot run code of its choosing: its stored config is instantiated only when every
``_target_`` in it is named by conf/, and only without interpolations (issue 23)."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tests.conftest import compose_config

from speakerid.errors import ConfigError
from speakerid.inference import load_system
from speakerid.trusted import allowed_targets, check_trusted
from speakerid.verify import verify


def _crafted(tmp_path: Path, edit) -> Path:
    """A checkpoint holding the default train config, changed by ``edit(config)``."""
    config = OmegaConf.to_container(compose_config("train", []), resolve=True)
    edit(config)
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "speakerid": {"config": config}}, path)
    return path


def test_a_checkpoint_naming_a_function_that_writes_files_runs_nothing(
    tiny_corpus, tmp_path: Path
) -> None:
    """The reported case: ``_target_: shutil.copyfile`` overwrote a file during verify."""
    victim, payload = tmp_path / "notes.txt", tmp_path / "payload.txt"
    victim.write_text("the user's notes")
    payload.write_text("overwritten")

    def edit(config: dict) -> None:
        config["system"] = {"_target_": "shutil.copyfile", "src": str(payload), "dst": str(victim)}

    ckpt = _crafted(tmp_path, edit)
    wav = str(tiny_corpus.manifest().audio_path(tiny_corpus.manifest()[0]))
    with pytest.raises(
        ConfigError, match=r"crafted\.ckpt: refused: .*'shutil\.copyfile' \(at system\)"
    ):
        verify([wav, wav, f"ckpt_path={ckpt}"])
    assert victim.read_text() == "the user's notes"


@pytest.mark.parametrize(
    ("where", "target"),
    [
        (("system", "backbone"), "os.system"),  # nested: instantiate recurses into it
        (("data", "corpus"), "speakerid.utils.io.write_json"),  # inside the package, not a plug-in
        (("system", "optimizer"), "builtins.exec"),
    ],
)
def test_any_target_outside_conf_is_refused_wherever_it_is(
    tmp_path: Path, where: tuple[str, str], target: str
) -> None:
    def edit(config: dict) -> None:
        config[where[0]][where[1]] = {"_target_": target, "_args_": ["x"]}

    with pytest.raises(ConfigError, match=rf"{target!r} \(at {'.'.join(where)}\)"):
        load_system(_crafted(tmp_path, edit))


def test_an_interpolation_in_a_stored_config_is_refused(tmp_path: Path) -> None:
    """A resolver can act: ``${sqlite_url:PATH}`` creates PATH's folder."""
    folder = tmp_path / "made_by_a_resolver"

    def edit(config: dict) -> None:
        config["system"]["backbone"]["embed_dim"] = f"${{sqlite_url:{folder}/x.db}}"

    with pytest.raises(ConfigError, match=r"interpolation at system\.backbone\.embed_dim"):
        load_system(_crafted(tmp_path, edit))
    assert not folder.exists()


def test_every_config_in_conf_is_trusted() -> None:
    """The allowlist is conf/ itself: every composed default passes, and it holds the plug-ins."""
    config = OmegaConf.to_container(compose_config("train", []), resolve=True)
    assert check_trusted(config, "train.yaml") is config
    targets = allowed_targets()
    assert "speakerid.backbones.EcapaTdnn" in targets and "torch.optim.Adam" in targets
    assert not any(t.startswith(("os.", "shutil.", "subprocess.", "builtins.")) for t in targets)


@pytest.mark.parametrize(
    "line",
    [
        "x: !new:os.system ['touch {marker}']",
        "x: !apply:shutil.rmtree ['{marker}']",
        "x: !!python/object/apply:os.system ['touch {marker}']",
        "x: !name:speechbrain.utils.data_utils.download_file",
    ],
)
def test_a_speechbrain_folder_that_would_run_code_is_refused_before_speechbrain_reads_it(
    tmp_path: Path, line: str
) -> None:
    from speakerid.pretrained import SpeechBrainEncoder

    marker = tmp_path / "marker"
    folder = tmp_path / "sb"
    folder.mkdir()
    (folder / "hyperparams.yaml").write_text(
        "features: !new:speechbrain.lobes.features.Fbank {n_mels: 24}  # allowed\n"
        + line.format(marker=marker)
        + "\n"
    )
    with pytest.raises(ConfigError, match=r"hyperparams\.yaml:2: refused: it asks to build"):
        SpeechBrainEncoder(folder)
    assert not marker.exists()
