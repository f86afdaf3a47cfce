"""The papers' cross-validation protocol for one plain configuration (what
`setfix crossval` runs): a directory holds one fold run per learning rate and fold and
a results JSON."""

import json
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import jax

from ._cross_validation import check_folds, cross_validate
from ._dataset import concatenate
from ._experiment import build, differences, Experiment, load_splits


def protocol(config: Experiment, folds: int) -> dict[str, Any]:
    """What a cross-validation directory is for: the configuration without its learning
    rate (the grid replaces it), and the number of folds."""
    values = config.to_json()
    del values["learning_rate"]
    return {"config": values, "folds": folds}


def _protocol_differences(saved: Any, config: Experiment, folds: int) -> list[str]:
    """How a saved `protocol.json` differs from this configuration and fold count (see
    `differences`); a record that cannot be read differs as a whole."""
    try:
        differ = differences({**saved["config"], "learning_rate": config.learning_rate},
                             config)
        if saved["folds"] != folds:
            differ.append(f"folds: {saved['folds']!r} there, {folds!r} here")
        return differ
    except (KeyError, TypeError, ValueError):
        return ["`protocol.json` cannot be read as a configuration and fold count"]


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
    `config.seed` keys the folds. With `out`, the folds are resumable (see
    `cross_validate`), `out/protocol.json` records the configuration (a directory of
    another configuration is refused) and `out/results.json` the results."""
    start = time.perf_counter()
    train, val, test = load_splits(config)
    data = concatenate(train, val)
    check_folds(folds, len(data))  # before `out` is written to
    if out is not None:
        out = pathlib.Path(out)
        out.mkdir(parents=True, exist_ok=True)
        record = out / "protocol.json"
        differ = (_protocol_differences(json.loads(record.read_text()), config, folds)
                  if record.exists() else [])
        if differ:
            raise ValueError(
                f"`{out}` holds a cross-validation of another configuration or number "
                f"of folds ({'; '.join(differ)}); choose another output directory (or "
                "delete it)."
            )
        record.write_text(json.dumps(protocol(config, folds), indent=1))
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
    if out is not None:
        (out / "results.json").write_text(json.dumps(results, indent=1))
    return results
