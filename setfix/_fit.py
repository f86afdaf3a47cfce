"""Training a set function from oracle examples: `fit` and `evaluate`."""

import json
import pathlib
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray
from tqdm import tqdm

from ._checkpoint import load_checkpoint, save_checkpoint
from ._dataset import SetDataset
from ._losses import mean_field_nll, sample_negatives
from ._mean_field import MeanField, mean_over_converged
from ._metrics import jaccard, predict
from ._set_function import AbstractSetFunction


class FitResult(eqx.Module):
    """What [`setfix.fit`][] returns.

    **Attributes:**

    - `model`: the parameters with the best validation Jaccard index.
    - `history`: one record per finished epoch (loss, validation Jaccard, mean solver
        steps, fraction of converged solves, seconds).
    - `best_epoch`: the epoch (1-based) of `model`.
    - `best_val_jaccard`: its validation Jaccard index (x100).
    """

    model: AbstractSetFunction
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_jaccard: float


@eqx.filter_jit
def _evaluate_batch(model, method, items, mask, target, key):
    sol = method(model, items, mask, key=key)
    pred = predict(sol.psi, mask, jnp.sum(target & mask, axis=-1))
    return jaccard(pred, target, mask), sol.converged


def evaluate(
    model: AbstractSetFunction,
    method: MeanField,
    data: SetDataset,
    *,
    key: PRNGKeyArray,
    batch_size: int = 256,
) -> dict[str, float]:
    """Solves the fixed point on every set of `data` and predicts the top-|S*| items.
    Returns `{"jaccard": mean Jaccard x100, "converged": fraction of converged solves}`.
    Deterministic for a given `key`."""
    scores, converged = [], []
    for i, (items, mask, target) in enumerate(data.batches(batch_size)):
        s, c = _evaluate_batch(model, method, items, mask, target, jax.random.fold_in(key, i))
        scores.append(np.asarray(s))
        converged.append(np.asarray(c))
    return {"jaccard": 100 * float(np.mean(np.concatenate(scores))),
            "converged": float(np.mean(np.concatenate(converged)))}


def _train_step(model, opt_state, items, mask, target, key, *, method, optimizer, neg_num):
    solve_key, negative_key = jax.random.split(key)
    negatives = sample_negatives(negative_key, target, mask, neg_num)

    def loss_fn(model):
        sol = method(model, items, mask, key=solve_key)
        loss = mean_over_converged(mean_field_nll(sol.psi, target, mask, negatives),
                                   sol.converged)
        return loss, sol

    (loss, sol), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    stats = (loss, jnp.mean(sol.num_steps), jnp.mean(sol.converged))
    return eqx.apply_updates(model, updates), opt_state, stats


def fit(
    model: AbstractSetFunction,
    method: MeanField,
    train: SetDataset,
    val: SetDataset,
    *,
    key: PRNGKeyArray,
    optimizer: optax.GradientTransformation | None = None,
    batch_size: int = 128,
    epochs: int = 100,
    patience: int = 6,
    neg_num: int | None = 1,
    checkpoint: str | pathlib.Path | None = None,
    progress: bool = True,
) -> FitResult:
    """Learns the set function from oracle examples by minimising the mean-field
    negative log-likelihood of $S^*$ at the solved fixed point (over the converged
    sets), with early stopping on the validation Jaccard index.

    **Arguments:**

    - `model`: the initial set function.
    - `method`: the [`setfix.MeanField`][] that solves (and differentiates) each set.
    - `train`, `val`: the training and validation sets.
    - `key`: PRNG key; epoch `e` splits `fold_in(key, e)` into keys for shuffling,
        training and validation, so a resumed run repeats an uninterrupted one.
    - `optimizer`: an Optax transformation (default: clip global norm 10, then Adam
        with learning rate 1e-4, as the reference).
    - `batch_size`: sets per step (the last incomplete batch is dropped in training).
    - `epochs`: the most epochs.
    - `patience`: stop after this many epochs without a better validation Jaccard.
    - `neg_num`: negatives per member of $S^*$ in the loss (`None`: all non-members).
    - `checkpoint`: a file to save the state to after every epoch and to resume from
        if it exists (its history goes beside it as JSON).
    - `progress`: show a progress bar.
    """
    for name, value in (("batch_size", batch_size), ("epochs", epochs),
                        ("patience", patience)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    if optimizer is None:
        optimizer = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-4))
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    state = (model, opt_state, model, jnp.array(0), jnp.array(-1.0), jnp.array(0))
    history: list[dict[str, Any]] = []
    if checkpoint is not None:
        checkpoint = pathlib.Path(checkpoint)
        sidecar = checkpoint.with_name(checkpoint.name + ".json")
        if checkpoint.exists():
            state = load_checkpoint(checkpoint, state)
            if sidecar.exists():
                history = json.loads(sidecar.read_text())["history"]
    model, opt_state, best_model, done, best, bad = state
    done, best, bad = int(done), float(best), int(bad)
    best_epoch = max((r["epoch"] for r in history if r["val_jaccard"] == best), default=0)

    step = eqx.filter_jit(
        lambda m, o, x, k, t, key: _train_step(  # noqa: E731
            m, o, x, k, t, key, method=method, optimizer=optimizer, neg_num=neg_num
        )
    )
    drop_last = len(train) >= batch_size
    for epoch in range(done + 1, epochs + 1):
        if bad >= patience:
            break
        start = time.perf_counter()
        shuffle_key, train_key, val_key = jax.random.split(jax.random.fold_in(key, epoch), 3)
        seed = int(jax.random.randint(shuffle_key, (), 0, 2**31 - 1))
        rng = np.random.default_rng(seed)
        losses, steps, conv = [], [], []
        batches = train.batches(batch_size, rng=rng, drop_last=drop_last)
        bar = tqdm(batches, total=len(train) // batch_size or 1, disable=not progress,
                   desc=f"epoch {epoch}", leave=False)
        for i, (items, mask, target) in enumerate(bar):
            model, opt_state, (loss, num_steps, converged) = step(
                model, opt_state, items, mask, target, jax.random.fold_in(train_key, i)
            )
            losses.append(float(loss))
            steps.append(float(num_steps))
            conv.append(float(converged))
            bar.set_postfix(loss=f"{losses[-1]:.4f}", steps=f"{steps[-1]:.1f}")
        scores = evaluate(model, method, val, key=val_key)
        record = {"epoch": epoch, "loss": float(np.mean(losses)),
                  "val_jaccard": scores["jaccard"], "val_converged": scores["converged"],
                  "train_steps": float(np.mean(steps)),
                  "train_converged": float(np.mean(conv)),
                  "seconds": time.perf_counter() - start}
        history.append(record)
        if progress:
            tqdm.write(
                f"epoch {epoch:3d}  loss {record['loss']:.4f}  val Jaccard "
                f"{record['val_jaccard']:6.2f}  steps {record['train_steps']:.1f}  "
                f"({record['seconds']:.1f} s)"
            )
        if record["val_jaccard"] > best:
            best, best_model, best_epoch, bad = record["val_jaccard"], model, epoch, 0
        else:
            bad += 1
        if checkpoint is not None:
            save_checkpoint(checkpoint, (model, opt_state, best_model, jnp.array(epoch),
                                         jnp.array(best), jnp.array(bad)))
            sidecar.write_text(json.dumps({"history": history}, indent=1))
    return FitResult(best_model, history, best_epoch, best)
