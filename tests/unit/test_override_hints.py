"""An override of a key the config lacks says how to add one (+), and an addition of a key it
has says how to set it: the hints Hydra gives on lines after the first, kept in the one line."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from speakerid.cli import CONFIG_PATH, config_error_line, tool_config
from speakerid.errors import ConfigError


def _error_line(override: str) -> str:
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONFIG_PATH, version_base="1.3"), pytest.raises(Exception) as err:
        compose("train", [override])
    return config_error_line(err.value)


def test_a_missing_key_says_how_to_add_it() -> None:
    line = _error_line("trainer.limit_train_batches=2")
    assert line.startswith("Could not override 'trainer.limit_train_batches'.")
    assert line.endswith("to add a key, prefix it with +: +trainer.limit_train_batches=2")
    assert "\n" not in line


def test_an_added_key_that_exists_says_how_to_set_it() -> None:
    line = _error_line("+trainer.max_epochs=3")
    assert line.endswith("To set it, drop the +: trainer.max_epochs=3 (++ adds or overrides)")


def test_a_tools_missing_key_says_how_to_add_it() -> None:
    with pytest.raises(ConfigError, match=r"prefix it with \+: \+no_such_key=1$"):
        tool_config("verify", ["no_such_key=1"])
