"""The jaxeq dispatcher: unknown arguments, one-line user errors, --debug, Ctrl-C."""
import sys
import types

import pytest

from jaxeq import cli


def test_run_takes_config_overrides_and_names_an_unknown_token(capsys):
    args, _ = cli.parse_args(["run", "red_green:quick", "--workdir", "w", "--config.seeds=(0,)"])
    assert args.config_overrides == ["--config.seeds=(0,)"]
    with pytest.raises(SystemExit) as err:
        cli.parse_args(["run", "red_green:quick", "--workdir", "w", "--bogus"])
    assert err.value.code == 2 and "unrecognized argument '--bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a subcommand without extra arguments refuses them all
        cli.parse_args(["reproduce", "--quick", "--config.seeds=(0,)"])
    assert "unrecognized argument '--config.seeds=(0,)'" in capsys.readouterr().err


def test_old_config_path_spelling_names_the_packaged_experiment():
    from jaxeq.experiments import load_config

    with pytest.raises(ValueError, match=r"use the name 'red_green' \(e\.g\. jaxeq run red_green:quick\)"):
        load_config("experiments/red_green.py:quick")


@pytest.fixture
def fake_subcommand(monkeypatch):
    """A subcommand ``fake`` whose main raises what the test puts in ``raise_this``."""
    mod = types.ModuleType("jaxeq_fake_subcommand")
    mod.raise_this = None
    mod.add_arguments = lambda parser: None

    def main(args):
        raise mod.raise_this

    mod.main = main
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(cli.SUBCOMMANDS, "fake", (mod.__name__, "test"))
    monkeypatch.delenv("JAXEQ_DEBUG", raising=False)
    return mod


@pytest.mark.parametrize("error", [ValueError("bad value\n  second line"), TypeError("bad type"),
                                   FileNotFoundError("no such file")])
def test_user_errors_print_one_line_and_exit_1(fake_subcommand, error, capsys):
    fake_subcommand.raise_this = error
    assert cli.main(["fake"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_debug_flag_or_env_shows_the_traceback(fake_subcommand, monkeypatch):
    fake_subcommand.raise_this = ValueError("bad value")
    with pytest.raises(ValueError, match="bad value"):
        cli.main(["--debug", "fake"])
    monkeypatch.setenv("JAXEQ_DEBUG", "1")
    with pytest.raises(ValueError, match="bad value"):
        cli.main(["fake"])


def test_keyboard_interrupt_says_how_to_resume_and_exits_130(fake_subcommand, capsys):
    fake_subcommand.raise_this = KeyboardInterrupt()
    assert cli.main(["fake"]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_other_errors_are_not_hidden(fake_subcommand):
    fake_subcommand.raise_this = RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["fake"])
