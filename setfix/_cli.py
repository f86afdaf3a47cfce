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

from ._demo_data import moon_sets
from ._mean_field import MeanField
from ._monte_carlo import MonteCarlo
from ._scaling import NormScaling
from ._set_function import DeepSet


def _balanced_nll(psi, target, mask):
    """Mean of the negative log-likelihood over the oracle's items plus that over the
    other real items, per set."""
    psi = jnp.clip(psi, 1e-6, 1 - 1e-6)
    pos = target & mask
    neg = ~target & mask
    nll_pos = -jnp.sum(jnp.where(pos, jnp.log(psi), 0), -1) / jnp.maximum(pos.sum(-1), 1)
    nll_neg = -jnp.sum(jnp.where(neg, jnp.log1p(-psi), 0), -1) / jnp.maximum(
        neg.sum(-1), 1
    )
    return nll_pos + nll_neg


def _topk_jaccard(psi, target):
    """Jaccard index (x100) of the top-|S*| items of psi with S*, per set."""
    k = target.sum(-1)
    order = np.argsort(-np.asarray(psi), axis=-1, kind="stable")
    ranks = np.argsort(order, axis=-1)
    pred = ranks < k[:, None]
    inter = (pred & target).sum(-1)
    union = (pred | target).sum(-1)
    return 100 * inter / np.maximum(union, 1)


def demo(args) -> float:
    """Learns a DeepSet on synthetic two-moons sets with iDiffMF and prints the test
    Jaccard index. Returns it."""
    train_items, train_target = moon_sets(args.train_sets, seed=args.seed)
    test_items, test_target = moon_sets(args.test_sets, seed=args.seed + 1)
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
    def train_step(f, opt_state, items, target, key):
        def loss_fn(f):
            sol = mf(f, items, key=key)
            loss = _balanced_nll(sol.psi, target, jnp.ones_like(target))
            return jnp.mean(jnp.where(sol.converged, loss, 0)), sol

        (loss, sol), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(f)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(f, eqx.is_array))
        return eqx.apply_updates(f, updates), opt_state, loss, sol.num_steps

    @eqx.filter_jit
    def solve(f, items, key):
        sol = mf(f, items, key=key)
        return sol.psi, sol.converged

    def evaluate(f, key):
        psi, converged = solve(f, jnp.asarray(test_items), key)
        return float(np.mean(_topk_jaccard(psi, test_target))), float(
            np.mean(np.asarray(converged))
        )

    rng = np.random.default_rng(args.seed)
    batches = args.train_sets // args.batch_size
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = rng.permutation(args.train_sets)
        bar = tqdm(range(batches), desc=f"epoch {epoch + 1}/{args.epochs}", leave=False)
        for b in bar:
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            key, step_key = jax.random.split(key)
            f, opt_state, loss, steps = train_step(
                f, opt_state, train_items[idx], train_target[idx], step_key
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
        q.add_argument("--epochs", type=int, default=8)
        q.add_argument("--train-sets", type=int, default=640)
        q.add_argument("--test-sets", type=int, default=256)
        q.add_argument("--batch-size", type=int, default=32)
        q.add_argument("--lr", type=float, default=1e-3)
        q.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("epochs", "train_sets", "test_sets", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.batch_size > args.train_sets:
        parser.error("--batch-size must not exceed --train-sets")
    demo(args)


if __name__ == "__main__":
    main()
