"""An override of a key the config lacks says how to add one (+), and an addition of a key it
has says how to set it: the hints Hydra gives on lines after the first, kept in the one line."""

import errno

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


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            OSError(errno.EROFS, "Read-only file system", "/mnt/ro/run"),
            "error: /mnt/ro/run: Read-only file system",
        ),
        (
            ValueError("Config group override must be a string or a list. Got NoneType"),
            "Got NoneType; to choose no config of a group, remove it or give none: ~logger",
        ),
    ],
)
def test_hydra_failing_before_the_task_is_one_line_exit_2(error, line, capsys) -> None:
    """A run folder Hydra cannot make or write, and ``logger=null``, ended in tracebacks."""
    from speakerid.cli import _one_line_errors

    def fail():
        raise error

    with pytest.raises(SystemExit) as stop:
        _one_line_errors(lambda func: func(), fail)
    assert stop.value.code == 2 and line in capsys.readouterr().err


def test_other_os_and_value_errors_stay_bugs() -> None:
    from speakerid.cli import _one_line_errors

    for error in (OSError(errno.EIO, "I/O error"), ValueError("a bug")):

        def fail(error=error):
            raise error

        with pytest.raises(type(error)):
            _one_line_errors(lambda func: func(), fail)
