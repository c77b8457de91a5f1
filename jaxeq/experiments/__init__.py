"""The paper's experiments as data, and the generic runner that turns a config into tables.

- :mod:`.configs`: one config per experiment, shipped with the package (``jaxeq run NAME``);
- :mod:`.overrides`: loading a config by name or file, ``--config.key=value`` overrides;
- :mod:`.grid`: the cells of a config's table, their folders and records;
- :mod:`.validation`: every cell's settings checked before anything trains; cache identity;
- :mod:`.runner`: train every cell (resuming), write results.json / results.md / plots;
- :mod:`.evaluators`: evaluations after training, registered by name (``config.eval.kind``);
- :mod:`.sources`: a cell's data sources (per-split kwargs, data wiring registered by name);
- :mod:`.reports`: one table-and-plot module per experiment; the paper's numbers;
- :mod:`.reproduce`: ``jaxeq reproduce --quick``.
"""
from jaxeq.experiments.grid import (CELL_FILE, cell_dir, cell_name, cell_run_settings,
                                    cell_settings, cell_train_config, cells)
from jaxeq.experiments.configs.recipes import experiment_config
from jaxeq.experiments.evaluators import load_trained, load_trained_cell, metric_target
from jaxeq.experiments.overrides import apply_overrides, load_config, overrides_note
from jaxeq.experiments.runner import run, run_cell, write_outputs
from jaxeq.experiments.validation import config_diff, prepare, validate_cells

__all__ = ["CELL_FILE", "apply_overrides", "cell_dir", "cell_name", "cell_run_settings",
           "cell_settings", "cell_train_config", "cells", "config_diff", "experiment_config",
           "load_config", "load_trained", "load_trained_cell", "metric_target", "overrides_note",
           "prepare", "run", "run_cell", "validate_cells", "write_outputs"]
