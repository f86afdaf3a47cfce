"""k-fold cross-validation with a learning-rate grid (the papers' protocol)."""

import functools
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from ._dataset import SetDataset
from ._fit import evaluate, fit, seconds_per_epoch
from ._method import AbstractMethod
from ._run_directory import RunDirectory
from ._set_function import AbstractSetFunction


def check_folds(folds: int, num_sets: int) -> None:
    """`folds` must be an integer in [2, `num_sets`]."""
    if not isinstance(folds, int) or folds < 2 or folds > num_sets:
        raise ValueError(f"`folds` must be an integer in [2, {num_sets}], got {folds!r}.")


def cross_validate(
    make_model: Callable[[PRNGKeyArray], AbstractSetFunction],
    method: AbstractMethod,
    data: SetDataset,
    test: SetDataset,
    *,
    key: PRNGKeyArray,
    learning_rates: Sequence[float] = (1e-3, 1e-4),
    folds: int = 5,
    out: str | pathlib.Path | None = None,
    **fit_options: Any,
) -> dict[str, Any]:
    r"""The papers' protocol: `data` (train and validation sets together) is shuffled
    and split into `folds` folds; for every learning rate, one model per fold is
    trained on the other folds with early stopping on that fold. The learning rate
    with the best mean validation Jaccard is chosen, and the test Jaccard of its
    `folds` models is reported as mean ± std (`test` is never used for a choice).

    **Arguments:**

    - `make_model`: returns a fresh initial model for a PRNG key.
    - `method`: the method to train with (and predict by).
    - `data`: the sets to cross-validate on, e.g. `concatenate(train, val)`.
    - `test`: the held-out sets.
    - `key`: PRNG key (the split, initialisations, training and evaluation).
    - `learning_rates`: the grid.
    - `folds`: the number of folds, at least 2.
    - `out`: an optional directory that makes the protocol resumable: every fold is a
        run directory `out/lr<rate>-fold<k>/` (see `setfix.experiments.RunDirectory`)
        that keeps its checkpoint and, once trained, its scores in `results.json`; a
        finished fold is read back, not trained again. Processes
        given different `learning_rates` can share one `out`; a last call with the
        whole grid then only chooses. Use one directory per protocol: the files do
        not record the model, method or data.
    - `fit_options`: passed to [`setfix.fit`][] (e.g. `epochs`, `batch_size`).

    **Returns:** a dict with `learning_rate` (chosen), `test_mean`, `test_std`,
    `test` (the chosen rate's per-fold test Jaccard), `val` / `test_by_rate`
    (per-fold figures of every rate, keyed by the rate as a string) and `folds_by_rate`
    (per fold: `val`, `test`, `best_epoch`, `epochs_run`, `seconds_per_epoch`).
    """
    check_folds(folds, len(data))
    if not learning_rates or any(not lr > 0 for lr in learning_rates):
        raise ValueError(f"`learning_rates` must be positive numbers, got {learning_rates!r}.")
    for name, why in (("optimizer", "the grid"), ("learning_rate", "the grid"),
                      ("checkpoint", "`out`")):
        if name in fit_options:
            raise ValueError(f"`{name}` is set by {why}; do not pass it.")
    split_key, run_key = jax.random.split(key)
    order = np.asarray(jax.random.permutation(split_key, len(data)))
    parts = np.array_split(order, folds)
    records: dict[str, list[dict[str, Any]]] = {}
    for lr in learning_rates:
        records[str(lr)] = []
        for k, held_out in enumerate(parts):
            directory = None
            if out is not None:
                fold = {"learning_rate": lr, "fold": k, "folds": folds}
                directory = RunDirectory(out).child(f"lr{lr:g}-fold{k}").open(
                    fold, functools.partial(_differences, fold=fold))
                done = directory.results()
                if done is not None:
                    records[str(lr)].append(_checked_fold(done, directory))
                    continue
            rest = np.concatenate([p for i, p in enumerate(parts) if i != k])
            model_key, fit_key, test_key = jax.random.split(jax.random.fold_in(run_key, k), 3)
            result = fit(make_model(model_key), method, data[rest], data[held_out],
                         key=fit_key, learning_rate=lr,
                         checkpoint=None if directory is None else directory.checkpoint,
                         **fit_options)
            record = {
                "val": result.best_val_jaccard,
                "test": evaluate(result.model, fit_options.get("inference") or method,
                                 test, key=test_key)["jaccard"],
                "best_epoch": result.best_epoch,
                "epochs_run": len(result.history),
                "seconds_per_epoch": seconds_per_epoch(result.history),
            }
            if directory is not None:
                directory.save_results(record)
            records[str(lr)].append(record)
    val = {lr: [r["val"] for r in rs] for lr, rs in records.items()}
    test_scores = {lr: [r["test"] for r in rs] for lr, rs in records.items()}
    best = max(learning_rates, key=lambda lr: float(np.mean(val[str(lr)])))
    chosen = np.array(test_scores[str(best)])
    return {"learning_rate": best, "test_mean": float(chosen.mean()),
            "test_std": float(chosen.std()), "test": chosen.tolist(), "val": val,
            "test_by_rate": test_scores, "folds_by_rate": records}


def _differences(saved: dict[str, Any], fold: dict[str, Any]) -> list[str]:
    return [f"{k}: {saved.get(k)!r} there, {v!r} here" for k, v in fold.items()
            if saved.get(k) != v]


def _checked_fold(record: dict[str, Any], directory: RunDirectory) -> dict[str, Any]:
    try:
        float(record["val"]), float(record["test"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"`{directory.path}` holds no fold record of `cross_validate` in its results "
            f"({type(error).__name__}: {error}); delete it to train that fold again."
        ) from error
    return record
