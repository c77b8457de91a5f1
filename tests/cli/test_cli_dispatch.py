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
                                   FileNotFoundError("no such file"),
                                   ValueError("bad value" + cli.JAX_NOTE + " its frames ...")])
def test_user_errors_print_one_line_and_exit_1(fake_subcommand, error, capsys):
    fake_subcommand.raise_this = error
    assert cli.main(["fake"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "JAX" not in err


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


def test_terminated_exits_143_with_the_message_it_carries(fake_subcommand, capsys):
    fake_subcommand.raise_this = cli.Terminated("interrupted at step 3; saved: somewhere")
    assert cli.main(["fake"]) == 143
    assert capsys.readouterr().err.strip() == "interrupted at step 3; saved: somewhere"


def test_sigterm_handler_is_installed_only_while_a_command_runs(fake_subcommand):
    import signal
    before = signal.getsignal(signal.SIGTERM)
    seen = []
    fake_subcommand.main = lambda args: seen.append(signal.getsignal(signal.SIGTERM)) or 0
    assert cli.main(["fake"]) == 0
    assert seen == [cli._raise_terminated] and signal.getsignal(signal.SIGTERM) == before


def test_help_has_a_whole_description_examples_and_version(capsys):
    with pytest.raises(SystemExit) as err:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert err.value.code == 0
    description = " ".join(out.split("\n\n")[1].split())
    assert description.startswith("Measure and train") and description.endswith("behind them.")
    assert "examples:\n  jaxeq reproduce --quick" in out and "jaxeq COMMAND --help" in out
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("jaxeq ")


@pytest.mark.parametrize("argv, shown", [
    (["probe", "--help"], "(default: 16)"),            # --chunk
    (["bench", "--help"], "(default: cpu)"),           # --device
    (["reproduce", "--help"], "(default: runs/reproduce_quick)"),
    (["data", "throughput", "--help"], "at least 1 (default: 256)"),
    (["data", "info", "--help"], "seed of generated data sets (default: 0)"),
])
def test_subcommand_help_shows_defaults(argv, shown, capsys):
    with pytest.raises(SystemExit):
        cli.main(argv)
    out = " ".join(capsys.readouterr().out.split())
    assert " ".join(shown.split()) in out


def test_data_options_all_have_help():
    import argparse

    from jaxeq.cli import data
    parser = argparse.ArgumentParser()
    data.add_arguments(parser)
    actions = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("info", "throughput"):
        for action in actions.choices[name]._actions:
            assert action.help, (name, action.dest)


def test_missing_experiment_file_says_where_the_packaged_ones_are(capsys):
    assert cli.main(["run", "my/exp.py:quick", "--workdir", "w"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no experiment file 'my/exp.py'; the packaged experiments are "
                          "rook, red_green") and "jaxeq/experiments/configs" in err


@pytest.mark.parametrize("argv, message", [
    (["probe", "--batch", "0"], "error: --batch must be an int >= 1, got 0"),
    (["probe", "--step", "0"], "error: --step must be an int >= 1, got 0"),
    (["data", "throughput", "--num-images", "0"],
     "error: num_images (--num-images) must be an int >= 1, got 0"),
])
def test_bad_numbers_are_one_line_errors(argv, message, capsys):
    assert cli.main(argv) == 1
    assert capsys.readouterr().err.strip() == message


def test_reproduce_only_needs_at_least_one_part(capsys):
    with pytest.raises(SystemExit) as err:
        cli.main(["reproduce", "--quick", "--only"])
    assert err.value.code == 2
    assert "argument --only: expected at least one argument" in capsys.readouterr().err
    from jaxeq.experiments.reproduce import run_quick
    with pytest.raises(ValueError, match=r"only \(--only\) must name at least one of rook, "
                                         r"red_green, quadrant, shift_robustness, "
                                         r"data_efficiency, layerwise, patch_matching, "
                                         r"action_recognition; got none"):
        run_quick("unused", [])
