"""``jaxeq run NAME[:variant] --workdir DIR [--force] [--config.key=value ...]``.

NAME is a packaged experiment (``jaxeq.experiments.configs``: rook, red_green, quadrant,
shift_robustness, data_efficiency, patch_matching, action_recognition) or the path of your own
``.py`` config file.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

OVERRIDE_PREFIX = "--config."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="NAME[:variant] of a packaged experiment (e.g. red_green:quick; "
                                       "default variant: the full protocol) or my/exp.py[:variant]")
    parser.add_argument("--workdir", required=True, help="output folder (re-run the same command to resume)")
    parser.add_argument("--force", action="store_true",
                        help="retrain (deleting their old results) the cells of --workdir whose "
                             "recorded config differs from this run's; without it such a run is refused")
    from jaxeq.experiments import configs
    parser.epilog = (
        "Override any config field with --config.key=value (Python literal),\n"
        "e.g. --config.seeds='(0,1)'.\n\n"
        f"packaged experiments: {', '.join(configs.names())}\n"
        f"  (their files, to copy and edit: {configs.path(configs.names()[0]).parent})")


def take_extra_args(args: argparse.Namespace, tokens: list[str]) -> list[str]:
    """Keep the ``--config.key=value`` (or ``--config.key value``) tokens argparse left over as
    ``args.config_overrides``; returns the tokens that are not overrides."""
    overrides, rest, i = [], [], 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith(OVERRIDE_PREFIX) and "=" not in tok and i + 1 < len(tokens) \
                and not tokens[i + 1].startswith("--"):
            overrides.append(f"{tok}={tokens[i + 1]}")
            i += 1
        elif tok.startswith(OVERRIDE_PREFIX) and "=" in tok:
            overrides.append(tok)
        else:
            rest.append(tok)
        i += 1
    args.config_overrides = overrides
    return rest


def _check_config_file(spec: str) -> None:
    """A ``.py`` config that does not exist: say so, and where the packaged ones are."""
    from jaxeq.experiments import configs

    path = spec.partition(":")[0]
    if path.endswith(".py") and not os.path.isfile(path) and Path(path).stem not in configs.names():
        raise FileNotFoundError(
            f"no experiment file {path!r}; the packaged experiments are "
            f"{', '.join(configs.names())} (run them by name; their files, to copy and edit, "
            f"are in {configs.path(configs.names()[0]).parent})")


def main(args: argparse.Namespace) -> int:
    from jaxeq.cli import xla_env
    from jaxeq.experiments import load_config, prepare, run

    _check_config_file(args.config)
    config = load_config(args.config, getattr(args, "config_overrides", []))
    force = bool(getattr(args, "force", False))
    prepare(config, args.workdir, force=force)  # every check before the cache folder is made
    xla_env.enable_compilation_cache(Path(args.workdir) / ".xla_cache")
    out = run(config, args.workdir, force=force)
    print()
    print(out["markdown"])
    print(f"results: {out['results']}")
    for p in out["plots"]:
        print(f"plot: {p}")
    return 0
