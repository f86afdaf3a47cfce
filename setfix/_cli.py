"""The `setfix` command line."""

import argparse

import jax
import lineax as lx
import optax
import optimistix as optx

from . import datasets
from ._fit import evaluate, fit
from ._mean_field import MeanField
from ._monte_carlo import MonteCarlo
from ._scaling import NormScaling
from ._set_function import DeepSet


def demo(args) -> float:
    """Learns a DeepSet on the two-moons sets of EquiVSet with iDiffMF and prints the
    test Jaccard index (x100, top-|S*| prediction from the solved fixed point). Returns
    it."""
    train, val, test = datasets.moons()
    train, val, test = train[: args.train_sets], val[: args.test_sets], test[: args.test_sets]
    model_key, fit_key, test_key = jax.random.split(jax.random.key(args.seed), 3)
    method = MeanField(
        estimator=MonteCarlo(num_samples=5),
        scaling=NormScaling("fro"),
        solver=optx.FixedPointIteration(rtol=1e-5, atol=1e-5),
        adjoint=optx.ImplicitAdjoint(lx.GMRES(rtol=1e-5, atol=1e-5)),
        max_steps=20,
    )
    optimizer = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(args.lr))
    result = fit(
        DeepSet(2, key=model_key), method, train, val, key=fit_key, optimizer=optimizer,
        batch_size=args.batch_size, epochs=args.epochs, patience=args.epochs,
    )
    scores = evaluate(result.model, method, test, key=test_key)
    print(
        f"best epoch {result.best_epoch} (val Jaccard {result.best_val_jaccard:.2f}); "
        f"solves converged on {100 * scores['converged']:.1f}% of test sets"
    )
    print(f"final test Jaccard: {scores['jaccard']:.2f}")
    return scores["jaccard"]


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
        q.add_argument("--test-sets", type=int, default=256,
                       help="validation and test sets (each)")
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
