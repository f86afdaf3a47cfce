"""The papers' cross-validation protocol for one plain configuration (what
`setfix crossval` runs): a run directory whose configuration is the protocol, holding
one fold run directory per learning rate and fold."""

import pathlib
import time
from collections.abc import Sequence
from typing import Any

import jax

from .._cross_validation import check_folds, cross_validate
from .._dataset import concatenate
from .._run_directory import RunDirectory
from ._build import build, load_splits
from ._config import differences, Experiment


def protocol(config: Experiment, folds: int) -> dict[str, Any]:
    """What a cross-validation directory is for: the configuration without its learning
    rate (the grid replaces it), and the number of folds."""
    values = config.to_json()
    del values["learning_rate"]
    return {"config": values, "folds": folds}


def _protocol_differences(saved: Any, config: Experiment, folds: int) -> list[str]:
    """How a saved protocol differs from this configuration and fold count (see
    `differences`)."""
    differ = differences({**saved["config"], "learning_rate": config.learning_rate},
                         config)
    if saved["folds"] != folds:
        differ.append(f"folds: {saved['folds']!r} there, {folds!r} here")
    return differ


def run_cross_validation(
    config: Experiment,
    learning_rates: Sequence[float],
    *,
    folds: int = 5,
    out: str | pathlib.Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """[`setfix.cross_validate`][] on the configuration's train + validation splits,
    tested on its test split, with its model, method, epochs, patience, batch size,
    weight decay and last-batch rule; `config.learning_rate` is ignored and
    `config.seed` keys the folds. With `out`, the protocol is a
    [`setfix.experiments.RunDirectory`][] (its configuration the protocol; a directory
    of another protocol is refused) whose folds are run directories inside it, resumed
    where they stopped (see `cross_validate`), and whose results are the chosen rate and
    the folds' figures."""
    start = time.perf_counter()
    train, val, test = load_splits(config)
    data = concatenate(train, val)
    check_folds(folds, len(data))  # before `out` is written to
    directory = None
    if out is not None:
        directory = RunDirectory(out).open(
            protocol(config, folds), lambda saved: _protocol_differences(saved, config, folds))
    make_model, method, inference = build(config, data)
    result = cross_validate(
        make_model, method, data, test, key=jax.random.key(config.seed),
        learning_rates=tuple(learning_rates), folds=folds, out=out,
        epochs=config.epochs, patience=config.patience,
        weight_decay=config.weight_decay, drop_last=config.drop_last,
        batch_size=min(config.batch_size, len(data) - -(-len(data) // folds)),
        inference=inference, progress=progress,
    )
    results = {**protocol(config, folds), "learning_rates": list(learning_rates), **result,
               "total_seconds": time.perf_counter() - start}
    if directory is not None:
        directory.save_results(results)
    return results
