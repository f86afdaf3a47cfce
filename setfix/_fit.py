"""Training a set function from oracle examples: `fit` and `evaluate`."""

import functools
import pathlib
import time
import warnings
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree
from tqdm import tqdm

from ._checkpoint import load_training_state, save_training_state
from ._dataset import as_compute_dtype, SetDataset
from ._expected_jaccard import predict_expected_jaccard
from ._losses import check_neg_num, sample_negatives
from ._method import AbstractMethod
from ._metrics import (
    brier_score,
    calibration_bins,
    expected_calibration_error,
    jaccard,
    predict,
    predict_size,
    predict_threshold,
    size_error,
)
from ._misc import Default
from ._objective import AbstractObjective
from ._pooled_items import PooledItems
from ._set_function import AbstractSetFunction, check_item_shape
from ._sharding import DataParallel


class FitResult(eqx.Module):
    """What [`setfix.fit`][] returns.

    **Attributes:**

    - `model`: the parameters with the best validation Jaccard index.
    - `history`: one record per finished epoch (loss, every figure of
        [`setfix.evaluate`][] on the validation sets as `val_<name>`, mean solver steps,
        fraction of converged solves, seconds).
    - `best_epoch`: the epoch (1-based) of `model`.
    - `best_val_jaccard`: its validation Jaccard index (x100).
    - `resumed_epochs`: how many of the epochs in `history` were restored from the
        checkpoint (trained by an earlier call) rather than trained by this one.
    """

    model: AbstractSetFunction
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_jaccard: float
    resumed_epochs: int = 0


def _unconverged(record: dict[str, Any]) -> str:
    """`converged 19% / 0% (train / val)  ` for an epoch line, or nothing when every
    solve converged."""
    train, val = record["train_converged"], record["val_converged"]
    if train == 1 and val == 1:
        return ""
    return f"converged {percent(train)} / {percent(val)} (train / val)  "


def percent(fraction: float) -> str:
    """A fraction as a percentage with one decimal that never rounds up to 100 %:
    0.9978 is `99.8%`, 0.99996 is `>99.9%`."""
    text = f"{100 * fraction:.1f}%"
    return ">99.9%" if fraction < 1 and text == "100.0%" else text


def seconds_per_epoch(history: Sequence[dict[str, Any]]) -> float:
    """The median training time of the epochs in `history` (seconds).

    The median, not the mean: the first epoch of a process also compiles the step (and
    so does the first after a resume), which on short runs would otherwise dominate.
    """
    return float(np.median([record["train_seconds"] for record in history]))


def device_batches(data, batch_size, parallel, *, rng=None, drop_last=False):
    """`data`'s batches on the devices. When the dataset has a pool with fewer rows than
    a batch has items, the pool goes to the devices once and each batch's items are
    `PooledItems` of it, so per-item encoders run once per pool row per step rather
    than once per (set, item), and no batch of features is gathered on the host."""
    pool = data.pool
    if pool is not None and len(pool) >= min(batch_size, len(data)) * data.items.shape[1]:
        pool = None
    if pool is not None:
        pool = parallel.replicate(as_compute_dtype(pool))
    for items, mask, target in data.batches(batch_size, rng=rng, drop_last=drop_last,
                                            gather=pool is None):
        items, mask, target = parallel.batch(items, mask, target)
        yield (items if pool is None else PooledItems(pool, items)), mask, target


@eqx.filter_jit
def evaluate_batch(model, method, items, mask, target, key):
    sol = method.solve(model, items, mask, key=key)
    psi = sol.psi
    pred = predict(psi, mask, jnp.sum(target & mask, axis=-1))
    per_set = {
        "jaccard": jaccard(pred, target, mask),
        "jaccard_threshold": jaccard(predict_threshold(psi, mask), target, mask),
        "jaccard_size": jaccard(predict_size(psi, mask), target, mask),
        "jaccard_expected": jaccard(predict_expected_jaccard(psi, mask), target, mask),
        "brier": brier_score(psi, target, mask),
        "size_error": size_error(psi, target, mask),
        "max_deviation": jnp.max(jnp.where(mask, jnp.abs(psi - 0.5), 0), axis=-1),
        "converged": sol.converged,
        "nonempty": jnp.any(target & mask, axis=-1),
    }
    return per_set, calibration_bins(psi, target, mask)


def _check_method(method, name="method"):
    if not isinstance(method, AbstractMethod):
        raise TypeError(
            f"`{name}` must be a setfix method such as `setfix.idiffmf()` or a "
            f"`setfix.MeanField`, got {type(method).__name__}."
        )


def evaluate(
    model: AbstractSetFunction,
    method: AbstractMethod,
    data: SetDataset,
    *,
    key: PRNGKeyArray,
    batch_size: int = 256,
    devices: Sequence[jax.Device] | None = None,
) -> dict[str, float]:
    """Infers $\\psi$ on every set of `data` with `method` (for a
    [`setfix.MeanField`][]: solves the fixed point) and scores it.

    Returns a dict of figures over all sets:

    - `jaccard`: mean Jaccard index x100 of the top-$|S^*|$ prediction (the papers'
        rule, which is told the oracle's subset size);
    - `jaccard_threshold`: the same for the size-free rule $\\psi > 1/2$
        ([`setfix.predict_threshold`][]);
    - `jaccard_size`: the same for the top-$\\operatorname{round}(\\sum\\psi)$ rule
        ([`setfix.predict_size`][]);
    - `jaccard_expected`: the same for the top-$k$ rule with $k$ chosen to maximise
        the expected Jaccard index under the mean field, given a nonempty oracle set
        ([`setfix.predict_expected_jaccard`][]);
    - `brier`, `ece`: the Brier score and the expected calibration error (15 bins) of
        $\\psi$ as inclusion probabilities;
    - `size_error`: the mean of $|\\sum_j \\psi_j - |S^*||$;
    - `max_deviation`: the largest $|\\psi_j - 1/2|$ seen (how far the mean field moved
        from the uniform distribution);
    - `converged`: the fraction of sets whose solve converged;
    - `empty_targets`: how many sets have an empty $S^*$. The four Jaccard figures
        leave them out (on them the top-$|S^*|$ rule predicts nothing and would score
        100 whatever the model); the other figures include them.

    Sets whose solve did not converge count with their prediction (so the figures are
    honest about them) and are reported in `converged`. Deterministic for a given
    `key`.

    **Arguments:**

    - `model`: the set function.
    - `method`: how $\\psi$ is inferred, e.g. the training method or
        [`setfix.reference_prediction`][].
    - `data`: the sets to evaluate on.
    - `key`: PRNG key of the estimator's samples.
    - `batch_size`: sets per solve.
    - `devices`: the devices to split each batch over (default: all).
    """
    _check_method(method)
    if not isinstance(data, SetDataset):
        raise TypeError(f"`data` must be a setfix.SetDataset, got {type(data).__name__}.")
    parallel = DataParallel(devices)
    model = parallel.replicate(model)
    per_set: dict[str, list[np.ndarray]] = {}
    bins = 0
    for i, batch in enumerate(device_batches(data, batch_size, parallel)):
        values, batch_bins = evaluate_batch(model, method, *batch,
                                             jax.random.fold_in(key, i))
        for name, value in values.items():
            per_set.setdefault(name, []).append(np.asarray(value))
        bins = bins + np.asarray(batch_bins, np.float64)
    values = {name: np.concatenate(parts) for name, parts in per_set.items()}
    nonempty = values["nonempty"]  # a SetDataset has at least one
    out = {name: 100 * float(np.mean(values[name][nonempty]))
           for name in ("jaccard", "jaccard_threshold", "jaccard_size",
                        "jaccard_expected")}
    out.update(brier=float(np.mean(values["brier"])),
               ece=float(expected_calibration_error(bins)),
               size_error=float(np.mean(values["size_error"])),
               max_deviation=float(np.max(values["max_deviation"])),
               converged=float(np.mean(values["converged"])),
               empty_targets=int(np.sum(~nonempty)))
    return out


class DivergenceError(RuntimeError):
    """Training diverged: a step of [`setfix.fit`][] produced a non-finite loss or
    non-finite parameters. `fit` raises it before that step's model can be evaluated,
    kept as the best or checkpointed."""

    def __init__(self, message: str):
        """**Arguments:**

        - `message`: where training diverged (epoch, batch), the cause, and what to try.
        """
        super().__init__(message)


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


@eqx.filter_jit
def train_step(model, opt_state, items, mask, target, key, method, objective, optimizer,
               neg_num):
    """One optimiser step of `objective` with `method`'s inference. Jitted once per
    (method, objective, optimiser, neg_num, shapes): later calls of `fit` with the same
    values, e.g. the folds of `cross_validate`, reuse it. Its statistics hold `finite`:
    whether the loss and the new parameters are finite."""
    solve_key, negative_key = jax.random.split(key)
    negatives = sample_negatives(negative_key, target, mask, neg_num)
    model, opt_state, stats = objective.update(model, opt_state, method, items, mask,
                                               target, negatives, key=solve_key,
                                               optimizer=optimizer)
    stats = dict(stats, finite=_all_finite((stats["loss"], model)))
    return model, opt_state, stats


def _diverged(epoch: int, batch: int, cause: str, learning_rate) -> DivergenceError:
    advice = (f"a lower learning rate than {learning_rate:g}" if learning_rate is not None
              else "a lower learning rate")
    return DivergenceError(
        f"training diverged at epoch {epoch}, batch {batch + 1}: {cause}. Nothing from "
        f"this epoch was kept (the best model and any checkpoint are from earlier "
        f"epochs); try {advice}."
    )


def _runtime_message(error: Exception) -> str:
    """The message of an `eqx.error_if` check that failed inside a jitted function, on
    one line, without Equinox's stack and debugging advice."""
    text = str(error)
    marker = "EquinoxRuntimeError: "
    if marker in text:
        text = text[text.rindex(marker) + len(marker):]
    text = text.split("\n\n")[0]
    return " ".join(text.split()).rstrip(".")


def _nonfinite_failure(error: Exception) -> bool:
    """Whether a runtime error raised inside a training step is a check that met
    non-finite values (Lineax's solve, setfix's psi checks): the sign of divergence."""
    text = _runtime_message(error)
    return "non-finite" in text or "NaN" in text


# Lineax's reasons for an iterative linear solve to fail on finite input: inside a
# training step (whose forward solves report failure per set instead of raising), only
# the implicit adjoint's linear solve raises them.
_LINEAR_FAILURES = tuple(
    " ".join(lx.RESULTS[getattr(lx.RESULTS, name)].split())
    for name in ("max_steps_reached", "breakdown", "stagnation", "conlim")
)


def _linear_solve_failure(error: Exception) -> bool:
    """Whether a runtime error raised inside a training step is the adjoint's linear
    solve failing on finite input."""
    text = _runtime_message(error)
    return any(reason.rstrip(".") in text for reason in _LINEAR_FAILURES)


def _adjoint_failed(epoch: int, batch: int, cause: str) -> RuntimeError:
    return RuntimeError(
        f"the implicit adjoint's linear solve failed at epoch {epoch}, batch {batch + 1} "
        f"({cause}). Nothing from this epoch was kept (the best model and any "
        "checkpoint are from earlier epochs). A direct solve cannot break down: "
        "`setfix.idiffmf(..., linear_solver=lineax.LU())` (it forms the n x n Jacobian, "
        "n Hessian products per set)."
    )


def _epoch_keys(key, epoch):
    return jax.random.split(jax.random.fold_in(key, epoch), 3)


def validation_key(key: PRNGKeyArray, epoch: int) -> PRNGKeyArray:
    """The key `fit(..., key=key)` validates epoch `epoch` (1-based) with."""
    return _epoch_keys(key, epoch)[2]


def fit(
    model: AbstractSetFunction,
    method: AbstractMethod,
    train: SetDataset,
    val: SetDataset,
    *,
    key: PRNGKeyArray,
    objective: AbstractObjective | None = None,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 1e-4,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    epochs: int = 100,
    patience: int = 6,
    drop_last: bool = True,
    neg_num: int | None | Default = Default("method.neg_num"),
    inference: AbstractMethod | None = None,
    checkpoint: str | pathlib.Path | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = True,
) -> FitResult:
    """Learns the set function from oracle examples: minimises `objective` (by default
    `method.objective`; for the mean-field methods [`setfix.MeanFieldNLL`][], the
    mean-field negative log-likelihood of $S^*$ at the inferred $\\psi$ over the
    converged sets) with `method`'s inference, one jitted step per batch, with early
    stopping on the validation Jaccard index.

    A step whose loss or updated parameters are not finite stops training with a
    [`setfix.DivergenceError`][] naming the epoch (that epoch's model is neither kept
    nor checkpointed). Solves that did not converge are reported: each epoch's record
    holds the converged
    fractions of training and validation, its progress line shows them when they are
    below 1, and a `RuntimeWarning` (once per call) says when fewer than half of an
    epoch's training solves converged.

    **Arguments:**

    - `model`: the initial set function.
    - `method`: how $\\psi$ is inferred, e.g. `setfix.idiffmf()` or `setfix.diffmf()`.
    - `objective`: what is minimised, an [`setfix.AbstractObjective`][] (default:
        `method.objective`, the objective the method is published with).
    - `train`, `val`: the training and validation sets.
    - `key`: PRNG key; epoch `e` splits `fold_in(key, e)` into keys for shuffling,
        training and validation, so a resumed run repeats an uninterrupted one.
    - `optimizer`: an Optax transformation. Default: clip the global norm to 10, then
        Adam with `learning_rate` and the L2 penalty `weight_decay`, as the references
        (see [`setfix.default_optimizer`][]).
    - `learning_rate`, `weight_decay`: of the default optimiser.
    - `batch_size`: sets per step.
    - `drop_last`: drop the last incomplete training batch of each epoch (when there
        is a complete one); `False` trains on it too, as the published code.
    - `epochs`: the most epochs.
    - `patience`: stop after this many epochs without a better validation Jaccard.
    - `neg_num`: negatives per member of $S^*$ in the loss (`None`: all non-members;
        default: the method's `neg_num`, 1 for the published methods, all with
        [`setfix.CertifiedScaling`][] in [`setfix.idiffmf`][]).
    - `inference`: how $\\psi$ is inferred for validation (default: `method`), e.g.
        [`setfix.reference_prediction`][]`(method)`.
    - `checkpoint`: a file to save the state to after every epoch and to resume from
        if it exists. Its manifest `<checkpoint>.json` (the history and the
        checkpoint's SHA-256) is written after it; resuming from a checkpoint that its
        manifest does not vouch for is an error naming both files.
    - `devices`: the devices each batch is split over (default: all of `jax.devices()`;
        parameters are replicated).
    - `progress`: show a progress bar and a line per epoch.
    """
    _check_method(method)
    inference = method if inference is None else inference
    _check_method(inference, "inference")
    objective = method.objective if objective is None else objective
    if not isinstance(objective, AbstractObjective):
        raise TypeError("`objective` must be a setfix objective such as "
                        f"`setfix.MeanFieldNLL()`, got {type(objective).__name__}.")
    _check_fit_arguments(model, train, val, batch_size, epochs, patience, drop_last)
    if isinstance(neg_num, Default):
        neg_num = method.neg_num
    check_neg_num(neg_num)
    rate = None  # the learning rate, when `fit` builds the optimiser
    if optimizer is None:
        optimizer, rate = default_optimizer(learning_rate, weight_decay), learning_rate
    parallel = DataParallel(devices)
    state = TrainingState.start(model, objective.init(optimizer, model))
    history: list[dict[str, Any]] = []
    if checkpoint is not None:
        checkpoint = pathlib.Path(checkpoint)
        state, history = TrainingState.resume(checkpoint, state)
    resumed = len(history)
    state = eqx.tree_at(lambda s: (s.model, s.opt_state), state,
                        parallel.replicate((state.model, state.opt_state)))
    step = functools.partial(train_step, method=method, objective=objective,
                             optimizer=optimizer, neg_num=neg_num)
    drop_last = drop_last and len(train) >= batch_size
    warned = False
    for epoch in range(len(history) + 1, epochs + 1):
        if int(state.bad_epochs) >= patience:
            break
        start = time.perf_counter()
        shuffle_key, train_key, val_key = _epoch_keys(key, epoch)
        batches = _epoch_batches(train, batch_size, parallel, shuffle_key, drop_last)
        model, opt_state, totals = _train_epoch(state, batches, step, train_key, epoch,
                                                rate, progress)
        train_seconds = time.perf_counter() - start
        scores = evaluate(model, inference, val, key=val_key, devices=devices)
        record = _epoch_record(epoch, totals, scores, train_seconds,
                               time.perf_counter() - start)
        history.append(record)
        if progress:
            tqdm.write(_epoch_line(record))
        if record["train_converged"] < 0.5 and not warned:
            warnings.warn(_UNCONVERGED.format(epoch=epoch, rate=record["train_converged"]),
                          RuntimeWarning, stacklevel=2)
            warned = True
        state = state.after_epoch(model, opt_state, history)
        if checkpoint is not None:
            save_training_state(checkpoint, state, history)
    return FitResult(state.best_model, history, int(state.best_epoch), state.best(history),
                     resumed)


class TrainingState(eqx.Module):
    """What `fit` carries from epoch to epoch and checkpoints: the model and optimiser
    state, the best model so far, and the early-stopping counters (as arrays, so the
    whole state is one checkpoint)."""

    model: AbstractSetFunction
    opt_state: PyTree
    best_model: AbstractSetFunction
    epochs_done: Int[Array, ""]
    best_val_jaccard: Float[Array, ""]
    bad_epochs: Int[Array, ""]
    best_epoch: Int[Array, ""]

    @classmethod
    def start(cls, model: AbstractSetFunction, opt_state: PyTree) -> "TrainingState":
        """The state before the first epoch."""
        return cls(model, opt_state, model, jnp.array(0), jnp.array(-1.0), jnp.array(0),
                   jnp.array(0))

    @staticmethod
    def resume(checkpoint: pathlib.Path, like: "TrainingState"):
        """`(state, history)` from `checkpoint` if it exists, else `(like, [])`."""
        if not checkpoint.exists():
            return like, []
        state, history = load_training_state(checkpoint, like)
        if len(history) != int(state.epochs_done):
            raise ValueError(
                f"checkpoint `{checkpoint}` holds {int(state.epochs_done)} epochs but its "
                f"manifest `{checkpoint}.json` records {len(history)}; delete both "
                "files to start afresh."
            )
        return state, history

    def best(self, history: list[dict[str, Any]]) -> float:
        """The best validation Jaccard so far, in full precision: from the `history`
        record of the best epoch (the state keeps an array copy, float32 by default)."""
        if self.best_epoch:
            return history[int(self.best_epoch) - 1]["val_jaccard"]
        return float(self.best_val_jaccard)

    def after_epoch(self, model, opt_state, history: list[dict[str, Any]]) -> "TrainingState":
        """The state after an epoch that ended with `model`, whose record is the last of
        `history`."""
        epoch = int(self.epochs_done) + 1
        val_jaccard, best = history[-1]["val_jaccard"], self.best(history)
        if val_jaccard > best:
            best_model, best, best_epoch, bad = model, val_jaccard, epoch, 0
        else:
            best_model, best_epoch, bad = self.best_model, int(self.best_epoch), \
                int(self.bad_epochs) + 1
        return TrainingState(model, opt_state, best_model, jnp.array(epoch), jnp.array(best),
                             jnp.array(bad), jnp.array(best_epoch))


def _check_fit_arguments(model, train, val, batch_size, epochs, patience, drop_last):
    for name, value in (("train", train), ("val", val)):
        if not isinstance(value, SetDataset):
            raise TypeError(f"`{name}` must be a setfix.SetDataset, got {type(value).__name__}.")
    for name, value in (("batch_size", batch_size), ("epochs", epochs),
                        ("patience", patience)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    if not isinstance(drop_last, bool):
        raise TypeError(f"`drop_last` must be True or False, got {drop_last!r}.")
    if train.feature_shape != val.feature_shape:
        raise ValueError(
            f"`train` items have feature shape {train.feature_shape} but `val` items "
            f"{val.feature_shape}; both splits must describe items the same way."
        )
    if not isinstance(model, AbstractSetFunction):
        raise TypeError(f"`model` must be a setfix set function, got {type(model).__name__}.")
    check_item_shape(model, train.feature_shape, np.float32)
    for name, value in (("train", train), ("val", val)):
        if value.num_empty_targets:
            warnings.warn(
                f"{value.num_empty_targets} of the {len(value)} sets of `{name}` have an "
                "empty oracle subset S*: they add no positive term to the loss and the "
                "Jaccard figures leave them out.", RuntimeWarning, stacklevel=3)


def _epoch_batches(train, batch_size, parallel, shuffle_key, drop_last):
    """The epoch's shuffled training batches on the devices, and how many there are."""
    seed = int(jax.random.randint(shuffle_key, (), 0, 2**31 - 1))
    batches = device_batches(train, batch_size, parallel, rng=np.random.default_rng(seed),
                             drop_last=drop_last)
    count = len(train) // batch_size if drop_last else -(-len(train) // batch_size)
    return batches, count


def _train_epoch(state, batches, step, key, epoch, rate, progress):
    """One pass over the training batches: `(model, opt_state, statistics per batch)`.
    Raises `DivergenceError` at the first step that is not finite."""
    batches, count = batches
    model, opt_state = state.model, state.opt_state
    bar = tqdm(batches, total=count, disable=not progress, desc=f"epoch {epoch}",
               leave=False)
    totals: dict[str, list[float]] = {}
    for i, batch in enumerate(bar):
        try:
            model, opt_state, stats = step(model, opt_state, *batch,
                                           jax.random.fold_in(key, i))
            stats = {name: float(value) for name, value in stats.items()}
        except eqx.EquinoxRuntimeError as error:
            cause = _runtime_message(error)
            if _linear_solve_failure(error):
                raise _adjoint_failed(epoch, i, cause) from error
            if not _nonfinite_failure(error):
                raise
            raise _diverged(epoch, i, f"a check inside the step failed ({cause})",
                            rate) from error
        if not stats.pop("finite"):
            raise _diverged(epoch, i, "the loss or the updated parameters are not "
                            "finite", rate)
        for name, value in stats.items():
            totals.setdefault(name, []).append(value)
        bar.set_postfix(loss=f"{totals['loss'][-1]:.4f}",
                        steps=f"{totals['num_steps'][-1]:.1f}")
    return model, opt_state, totals


def _epoch_record(epoch, totals, scores, train_seconds, seconds) -> dict[str, Any]:
    """The history record of an epoch: training means and validation figures."""
    means = {name: float(np.mean(values)) for name, values in totals.items()}
    return {"epoch": epoch, "loss": means.pop("loss"),
            **{f"val_{name}": value for name, value in scores.items()},
            "train_steps": means.pop("num_steps"),
            "train_converged": means.pop("converged"), **means,
            "train_seconds": train_seconds, "seconds": seconds}


def _epoch_line(record) -> str:
    return (f"epoch {record['epoch']:3d}  loss {record['loss']:.4f}  val Jaccard "
            f"{record['val_jaccard']:6.2f}  steps {record['train_steps']:.1f}  "
            f"{_unconverged(record)}({record['seconds']:.1f} s)")


_UNCONVERGED = (
    "epoch {epoch}: only {rate:.0%} of the training solves converged; the loss (and its "
    "gradient) is taken over the converged sets only. A contracting map needs a smaller "
    "scale of the gradient: a larger `c` in `ConstantScaling(c)` (it divides by c), "
    "`NormScaling`, or `CertifiedScaling` with `DeepSet(smooth=True)`, whose contraction "
    "is certified; or more `max_steps`."
)


def default_optimizer(
    learning_rate: float = 1e-4, weight_decay: float = 0.0, clip: float = 10.0
) -> optax.GradientTransformation:
    r"""The references' optimiser: clip the global gradient norm to `clip`, then Adam
    with `learning_rate` and an L2 penalty `weight_decay` added to the gradient before
    Adam's scaling, as `torch.optim.Adam(weight_decay=...)` in the published code
    (not AdamW's decoupled decay).

    The published training loops mean to clip every step, but theirs clips only the
    first (the parameter generator they pass is spent after one use); setfix clips
    every step. `clip=float("inf")` turns clipping off."""
    for name, value in (("learning_rate", learning_rate), ("clip", clip)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"`{name}` must be a positive number, got {value!r}.")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ValueError(f"`weight_decay` must be a non-negative number, got {weight_decay!r}.")
    return _optimizer(float(learning_rate), float(weight_decay), float(clip))


@functools.lru_cache(maxsize=64)
def _optimizer(learning_rate, weight_decay, clip):
    # One object per setting: jitted training steps are cached on the optimiser's
    # identity, so equal settings share their compiled step.
    steps = [optax.clip_by_global_norm(clip)] if clip < float("inf") else []
    if weight_decay > 0:
        steps.append(optax.add_decayed_weights(weight_decay))
    return optax.chain(*steps, optax.adam(learning_rate))


FitResult.__init__.__doc__ = """**Arguments:** the attributes, in order (made by
[`setfix.fit`][], not usually by hand)."""
