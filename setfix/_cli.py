"""The `setfix` command line."""

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optax
import optimistix as optx
from tqdm import tqdm

from . import datasets
from ._losses import mean_field_nll, sample_negatives
from ._mean_field import MeanField, mean_over_converged
from ._metrics import jaccard, predict
from ._monte_carlo import MonteCarlo
from ._scaling import NormScaling
from ._set_function import DeepSet


def demo(args) -> float:
    """Learns a DeepSet on the two-moons sets of EquiVSet with iDiffMF and prints the
    test Jaccard index (x100, top-|S*| prediction from the solved fixed point). Returns
    it."""
    train, _, test = datasets.moons()
    train, test = train[: args.train_sets], test[: args.test_sets]
    key = jax.random.key(args.seed)
    model_key, key = jax.random.split(key)
    f = DeepSet(2, key=model_key)
    mf = MeanField(
        estimator=MonteCarlo(num_samples=5),
        scaling=NormScaling("fro"),
        solver=optx.FixedPointIteration(rtol=1e-5, atol=1e-5),
        adjoint=optx.ImplicitAdjoint(lx.GMRES(rtol=1e-5, atol=1e-5)),
        max_steps=20,
    )
    optim = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(args.lr))
    opt_state = optim.init(eqx.filter(f, eqx.is_array))

    @eqx.filter_jit
    def train_step(f, opt_state, items, mask, target, key):
        solve_key, negative_key = jax.random.split(key)
        negatives = sample_negatives(negative_key, target, mask, neg_num=1)

        def loss_fn(f):
            sol = mf(f, items, mask, key=solve_key)
            nll = mean_field_nll(sol.psi, target, mask, negatives)
            return mean_over_converged(nll, sol.converged), sol

        (loss, sol), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(f)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(f, eqx.is_array))
        return eqx.apply_updates(f, updates), opt_state, loss, sol.num_steps

    @eqx.filter_jit
    def evaluate_batch(f, items, mask, target, key):
        sol = mf(f, items, mask, key=key)
        pred = predict(sol.psi, mask, jnp.sum(target, axis=-1))
        return jaccard(pred, target, mask), sol.converged

    def evaluate(f, key):
        scores, converged = evaluate_batch(
            f, test.items, test.mask, test.target, key
        )
        return 100 * float(jnp.mean(scores)), float(jnp.mean(converged))

    rng = np.random.default_rng(args.seed)
    batches = len(train) // args.batch_size
    start = time.perf_counter()
    for epoch in range(args.epochs):
        bar = tqdm(
            train.batches(args.batch_size, rng=rng, drop_last=True),
            total=batches,
            desc=f"epoch {epoch + 1}/{args.epochs}",
            leave=False,
        )
        for items, mask, target in bar:
            key, step_key = jax.random.split(key)
            f, opt_state, loss, steps = train_step(
                f, opt_state, items, mask, target, step_key
            )
            bar.set_postfix(loss=f"{float(loss):.4f}", steps=f"{float(steps.mean()):.1f}")
        key, eval_key = jax.random.split(key)
        test_jaccard, frac = evaluate(f, eval_key)
        print(
            f"epoch {epoch + 1:3d}  loss {float(loss):.4f}  test Jaccard {test_jaccard:6.2f}"
            f"  converged {100 * frac:5.1f}%  ({time.perf_counter() - start:.0f} s)"
        )
    print(f"final test Jaccard: {test_jaccard:.2f}")
    return test_jaccard


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="setfix",
        description="Learn set functions from an optimal-subset oracle (iDiffMF).",
    )
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser(
        "demo", help="train iDiffMF on synthetic two-moons sets (the default command)"
    )
    for q in (parser, p):
        q.add_argument("--epochs", type=int, default=5)
        q.add_argument("--train-sets", type=int, default=640)
        q.add_argument("--test-sets", type=int, default=256)
        q.add_argument("--batch-size", type=int, default=32)
        q.add_argument("--lr", type=float, default=1e-3)
        q.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("epochs", "train_sets", "test_sets", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    for name in ("train_sets", "test_sets"):
        if getattr(args, name) > 1000:
            parser.error(f"--{name.replace('_', '-')} must be at most 1000 (sets per split)")
    if args.batch_size > args.train_sets:
        parser.error("--batch-size must not exceed --train-sets")
    demo(args)


if __name__ == "__main__":
    main()
