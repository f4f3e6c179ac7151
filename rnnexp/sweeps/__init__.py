"""Table sweeps: one file per table of the report (rnnexp/configs/sweeps/tables/), run as Hydra
multiruns of rnnexp-train and read back into the table.

    schema.py   the file's keys and types (structured configs in the ConfigStore)
    load.py     reading and checking a file: SweepError names the file and the key
    sweep.py    the parsed sweep: its settings, the commands that run them, the table's layout
    compose.py  a setting composed with rnnexp-train's config, as its runs get it
    grammar.py  values and keys in Hydra's override grammar
"""
from rnnexp.sweeps.compose import expected_configs, flat_config, setting_config
from rnnexp.sweeps.grammar import canonical, flatten, hydra_value, override, quoted, sweep_override
from rnnexp.sweeps.load import load_sweep, load_sweeps, sweep_paths
from rnnexp.sweeps.sweep import (EPOCH, GROUPS, METRIC, METRICS, Axis, Layout, Published, Reading,
                                 Setting, Sweep, SweepError)

__all__ = ["EPOCH", "GROUPS", "METRIC", "METRICS", "Axis", "Layout", "Published", "Reading",
           "Setting", "Sweep", "SweepError", "canonical", "expected_configs", "flat_config",
           "flatten", "hydra_value", "load_sweep", "load_sweeps", "override", "quoted",
           "setting_config", "sweep_override", "sweep_paths"]
