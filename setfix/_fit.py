"""Training a set function from oracle examples: `fit` and `evaluate`."""

import functools
import json
import pathlib
import time
import warnings
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray
from tqdm import tqdm

from ._checkpoint import load_checkpoint, save_checkpoint
from ._dataset import as_compute_dtype, SetDataset
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
from ._pooled_items import PooledItems
from ._set_function import AbstractSetFunction
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
    return f"converged {train:.0%} / {val:.0%} (train / val)  "


def seconds_per_epoch(history: Sequence[dict[str, Any]]) -> float:
    """The median training time of the epochs in `history` (seconds).

    The median, not the mean: the first epoch of a process also compiles the step (and
    so does the first after a resume), which on short runs would otherwise dominate.
    """
    return float(np.median([record["train_seconds"] for record in history]))


def _device_batches(data, batch_size, parallel, *, rng=None, drop_last=False):
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
def _evaluate_batch(model, method, items, mask, target, key):
    sol = method.solve(model, items, mask, key=key)
    psi = sol.psi
    pred = predict(psi, mask, jnp.sum(target & mask, axis=-1))
    per_set = {
        "jaccard": jaccard(pred, target, mask),
        "jaccard_threshold": jaccard(predict_threshold(psi, mask), target, mask),
        "jaccard_size": jaccard(predict_size(psi, mask), target, mask),
        "brier": brier_score(psi, target, mask),
        "size_error": size_error(psi, target, mask),
        "max_deviation": jnp.max(jnp.where(mask, jnp.abs(psi - 0.5), 0), axis=-1),
        "converged": sol.converged,
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
    - `brier`, `ece`: the Brier score and the expected calibration error (15 bins) of
        $\\psi$ as inclusion probabilities;
    - `size_error`: the mean of $|\\sum_j \\psi_j - |S^*||$;
    - `max_deviation`: the largest $|\\psi_j - 1/2|$ seen (how far the mean field moved
        from the uniform distribution);
    - `converged`: the fraction of sets whose solve converged.

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
    for i, batch in enumerate(_device_batches(data, batch_size, parallel)):
        values, batch_bins = _evaluate_batch(model, method, *batch,
                                             jax.random.fold_in(key, i))
        for name, value in values.items():
            per_set.setdefault(name, []).append(np.asarray(value))
        bins = bins + np.asarray(batch_bins, np.float64)
    values = {name: np.concatenate(parts) for name, parts in per_set.items()}
    out = {name: 100 * float(np.mean(values[name]))
           for name in ("jaccard", "jaccard_threshold", "jaccard_size")}
    out.update(brier=float(np.mean(values["brier"])),
               ece=float(expected_calibration_error(bins)),
               size_error=float(np.mean(values["size_error"])),
               max_deviation=float(np.max(values["max_deviation"])),
               converged=float(np.mean(values["converged"])))
    return out


@eqx.filter_jit
def _train_step(model, opt_state, items, mask, target, key, method, optimizer, neg_num):
    """One optimiser step. Jitted once per (method, optimiser, neg_num, shapes): later
    calls of `fit` with the same values, e.g. the folds of `cross_validate`, reuse it."""
    solve_key, negative_key = jax.random.split(key)
    negatives = sample_negatives(negative_key, target, mask, neg_num)
    return method.update(model, opt_state, items, mask, target, negatives, key=solve_key,
                         optimizer=optimizer)


def fit(
    model: AbstractSetFunction,
    method: AbstractMethod,
    train: SetDataset,
    val: SetDataset,
    *,
    key: PRNGKeyArray,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 1e-4,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    epochs: int = 100,
    patience: int = 6,
    neg_num: int | None | Default = Default("method.neg_num"),
    inference: AbstractMethod | None = None,
    checkpoint: str | pathlib.Path | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = True,
) -> FitResult:
    """Learns the set function from oracle examples with `method` (for a
    [`setfix.MeanField`][]: minimises the mean-field negative log-likelihood of $S^*$
    at the solved fixed point, over the converged sets), one jitted step per batch,
    with early stopping on the validation Jaccard index.

    Solves that did not converge are reported: each epoch's record holds the converged
    fractions of training and validation, its progress line shows them when they are
    below 1, and a `RuntimeWarning` (once per call) says when fewer than half of an
    epoch's training solves converged.

    **Arguments:**

    - `model`: the initial set function.
    - `method`: how to train and infer, e.g. `setfix.idiffmf()` or `setfix.diffmf()`.
    - `train`, `val`: the training and validation sets.
    - `key`: PRNG key; epoch `e` splits `fold_in(key, e)` into keys for shuffling,
        training and validation, so a resumed run repeats an uninterrupted one.
    - `optimizer`: an Optax transformation. Default: clip the global norm to 10, then
        Adam with `learning_rate` (AdamW when `weight_decay > 0`), as the references.
    - `learning_rate`, `weight_decay`: of the default optimiser.
    - `batch_size`: sets per step (the last incomplete batch is dropped in training).
    - `epochs`: the most epochs.
    - `patience`: stop after this many epochs without a better validation Jaccard.
    - `neg_num`: negatives per member of $S^*$ in the loss (`None`: all non-members;
        default: the method's `neg_num`, 1 for the published methods, all with
        [`setfix.CertifiedScaling`][] in [`setfix.idiffmf`][]).
    - `inference`: how $\\psi$ is inferred for validation (default: `method`), e.g.
        [`setfix.reference_prediction`][]`(method)`.
    - `checkpoint`: a file to save the state to after every epoch and to resume from
        if it exists (its history goes beside it as JSON).
    - `devices`: the devices each batch is split over (default: all of `jax.devices()`;
        parameters are replicated).
    - `progress`: show a progress bar and a line per epoch.
    """
    _check_method(method)
    inference = method if inference is None else inference
    _check_method(inference, "inference")
    for name, value in (("train", train), ("val", val)):
        if not isinstance(value, SetDataset):
            raise TypeError(f"`{name}` must be a setfix.SetDataset, got {type(value).__name__}.")
    for name, value in (("batch_size", batch_size), ("epochs", epochs),
                        ("patience", patience)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    if isinstance(neg_num, Default):
        neg_num = method.neg_num
    check_neg_num(neg_num)
    if optimizer is None:
        optimizer = default_optimizer(learning_rate, weight_decay)
    parallel = DataParallel(devices)
    opt_state = method.init_optimizer(optimizer, model)
    # (model, optimiser state, best model, epochs done, best val Jaccard, bad epochs,
    # best epoch)
    state = (model, opt_state, model, jnp.array(0), jnp.array(-1.0), jnp.array(0),
             jnp.array(0))
    history: list[dict[str, Any]] = []
    if checkpoint is not None:
        checkpoint = pathlib.Path(checkpoint)
        sidecar = checkpoint.with_name(checkpoint.name + ".json")
        if checkpoint.exists():
            state = load_checkpoint(checkpoint, state)
            if sidecar.exists():
                history = json.loads(sidecar.read_text())["history"]
    model, opt_state, best_model, done, best, bad, best_epoch = state
    warned = False
    done, best, bad, best_epoch = int(done), float(best), int(bad), int(best_epoch)
    resumed = done
    if best_epoch and len(history) >= best_epoch:
        best = history[best_epoch - 1]["val_jaccard"]  # full precision (JSON)
    model, opt_state = parallel.replicate((model, opt_state))

    drop_last = len(train) >= batch_size
    for epoch in range(done + 1, epochs + 1):
        if bad >= patience:
            break
        start = time.perf_counter()
        shuffle_key, train_key, val_key = jax.random.split(jax.random.fold_in(key, epoch), 3)
        seed = int(jax.random.randint(shuffle_key, (), 0, 2**31 - 1))
        batches = _device_batches(train, batch_size, parallel,
                                  rng=np.random.default_rng(seed), drop_last=drop_last)
        bar = tqdm(batches, total=len(train) // batch_size or 1, disable=not progress,
                   desc=f"epoch {epoch}", leave=False)
        totals: dict[str, list[float]] = {}
        for i, batch in enumerate(bar):
            model, opt_state, stats = _train_step(
                model, opt_state, *batch, jax.random.fold_in(train_key, i),
                method, optimizer, neg_num)
            for name, value in stats.items():
                totals.setdefault(name, []).append(float(value))
            bar.set_postfix(loss=f"{totals['loss'][-1]:.4f}",
                            steps=f"{totals['num_steps'][-1]:.1f}")
        train_seconds = time.perf_counter() - start
        scores = evaluate(model, inference, val, key=val_key, devices=devices)
        means = {name: float(np.mean(values)) for name, values in totals.items()}
        record = {"epoch": epoch, "loss": means.pop("loss"),
                  **{f"val_{name}": value for name, value in scores.items()},
                  "train_steps": means.pop("num_steps"),
                  "train_converged": means.pop("converged"), **means,
                  "train_seconds": train_seconds,
                  "seconds": time.perf_counter() - start}
        history.append(record)
        unconverged = _unconverged(record)
        if progress:
            tqdm.write(
                f"epoch {epoch:3d}  loss {record['loss']:.4f}  val Jaccard "
                f"{record['val_jaccard']:6.2f}  steps {record['train_steps']:.1f}  "
                f"{unconverged}({record['seconds']:.1f} s)"
            )
        if record["train_converged"] < 0.5 and not warned:
            warnings.warn(
                f"epoch {epoch}: only {record['train_converged']:.0%} of the training "
                "solves converged; the loss (and its gradient) is taken over the "
                "converged sets only. A contracting map needs a smaller scaling (e.g. a "
                "smaller `ConstantScaling(c)`, or `NormScaling`), or more `max_steps`.",
                RuntimeWarning, stacklevel=2)
            warned = True
        if record["val_jaccard"] > best:
            best, best_model, best_epoch, bad = record["val_jaccard"], model, epoch, 0
        else:
            bad += 1
        if checkpoint is not None:
            save_checkpoint(checkpoint, (model, opt_state, best_model, jnp.array(epoch),
                                         jnp.array(best), jnp.array(bad),
                                         jnp.array(best_epoch)))
            sidecar.write_text(json.dumps({"history": history}, indent=1))
    return FitResult(best_model, history, best_epoch, best, resumed)


def default_optimizer(
    learning_rate: float = 1e-4, weight_decay: float = 0.0, clip: float = 10.0
) -> optax.GradientTransformation:
    """The references' optimiser: clip the global gradient norm to `clip`, then Adam
    with `learning_rate` (AdamW with decoupled `weight_decay` when it is positive)."""
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
    adam = (optax.adamw(learning_rate, weight_decay=weight_decay) if weight_decay > 0
            else optax.adam(learning_rate))
    return optax.chain(optax.clip_by_global_norm(clip), adam)


FitResult.__init__.__doc__ = """**Arguments:** the attributes, in order (made by
[`setfix.fit`][], not usually by hand)."""
