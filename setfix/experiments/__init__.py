"""Experiments from plain configurations: what the `setfix` command runs. A run is an
[`setfix.experiments.Experiment`][] (plain values, checked once against the registry of
names) trained in a [`setfix.experiments.RunDirectory`][] that resumes; a
cross-validation is a run directory of fold run directories."""

from .._run_directory import RunDirectory as RunDirectory
from ._build import (
    build as build,
    build_inference as build_inference,
    build_method as build_method,
    build_model as build_model,
    build_scaling as build_scaling,
    load_splits as load_splits,
)
from ._cli import main as main
from ._config import differences as differences, Experiment as Experiment
from ._cross_validation import run_cross_validation as run_cross_validation
from ._registry import load_dataset as load_dataset
from ._report import (
    format_markdown as format_markdown,
    format_table as format_table,
    summarise as summarise,
)
from ._train import (
    evaluate_run as evaluate_run,
    finished as finished,
    load_run as load_run,
    run as run,
)
