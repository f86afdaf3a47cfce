"""The `setfix` command line: `train` (the default), `evaluate`, `reproduce`,
`crossval`."""

import argparse
import dataclasses
import os
import pathlib
import sys

import numpy as np

from .._fit import DivergenceError, percent
from .._run_directory import write_json
from ..datasets import AMAZON_CATEGORIES
from . import _registry as names
from ._config import Experiment
from ._cross_validation import run_cross_validation
from ._report import format_markdown, format_scores, format_table, summarise
from ._train import evaluate_run, finished, run


# The main job's budget: full-size Moons, stopped after this many epochs.
MAIN_JOB_EPOCHS = 5


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _learning_rates(text):
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        rates = []
    if not rates or any(not rate > 0 for rate in rates):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive learning rates, got {text!r}")
    return rates


def _experiment_options(p, *, epochs, learning_rate=True):
    d = Experiment()
    # Types only: `Experiment` checks the values (once, for every entry point).
    p.add_argument("--scaling", choices=list(names.SCALINGS), default=d.scaling,
                   help="iDiffMF scaling: fro, nuc, c (constant), none, certified or "
                   "certified-interactions (only the interactions scaled; both need a "
                   "smooth --energy) [%(default)s]")
    p.add_argument("--c", type=float, default=d.c,
                   help="constant of --scaling c [%(default)s]")
    p.add_argument("--omega", type=float, default=d.omega,
                   help="certified contraction factor of the certified scalings, in (0, 1) "
                   "[%(default)s]")
    p.add_argument("--over", choices=names.OVER, default=d.over,
                   help="norm per set or over the batch (published) [%(default)s]")
    p.add_argument("--num-samples", type=int, default=d.num_samples,
                   help="Monte Carlo samples [%(default)s]")
    p.add_argument("--max-steps", type=int, default=d.max_steps,
                   help="most solver steps per iDiffMF solve; with --scaling certified at "
                   "least what its certificate needs (132 at omega 0.9) [%(default)s]")
    p.add_argument("--epochs", type=int, default=epochs,
                   help="most epochs [%(default)s]")
    p.add_argument("--patience", type=int, default=d.patience,
                   help="early-stopping patience in epochs [%(default)s]")
    if learning_rate:
        p.add_argument("--lr", type=float, default=d.learning_rate,
                       help="Adam learning rate [%(default)s]")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="L2 weight decay, as torch.optim.Adam's [%(default)s]")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="sets per step [%(default)s]")
    p.add_argument("--drop-last", action="store_true",
                   help="drop each epoch's last incomplete training batch [kept, as the "
                   "published code]")
    for split in ("train", "val", "test"):
        p.add_argument(f"--{split}-sets", type=int, default=None,
                       help=f"use the first N {split} sets [all]")
    p.add_argument("--prediction", choices=list(names.PREDICTIONS), default=d.prediction,
                   help="solve the fixed point, or the reference one step [%(default)s]")
    p.add_argument("--encoder", choices=names.ENCODERS, default=d.encoder,
                   help="item encoder: the references' for the item type (linear for "
                   "vectors), or an MLP for vector items [%(default)s]")
    p.add_argument("--energy", choices=list(names.ENERGIES), default=d.energy,
                   help="the set function: the references' DeepSet, a smooth DeepSet "
                   "with certified interactions, a DeepSet that sees the ground set "
                   "(superset), one whose items attend to it (attention), or a smooth "
                   "(certified) one of those [%(default)s]")
    p.add_argument("--copula", choices=list(names.COPULAS), default=d.copula,
                   help="EquiVSet_copula's noise: as the published code, or standardised "
                   "before Phi [%(default)s]")
    p.add_argument("--draws", choices=list(names.DRAWS), default=d.draws,
                   help="DiffMF's samples: fresh for every item and step as the published "
                   "code, or shared by all [%(default)s]")
    p.add_argument("--features", choices=names.FEATURES, default=d.features,
                   help="Amazon item features: from the item names, or the vectors of "
                   "EquiVSet's <category>.pickle beside <category>.csv [%(default)s]")
    p.add_argument("--root", type=pathlib.Path, default=None,
                   help="data directory (or BindingDB table) for datasets read from files")
    p.add_argument("--quiet", action="store_true", help="no progress output")


DATASET_HELP = names.DATASET_HELP


def _config(args, dataset, method, seed):
    try:
        return _experiment(args, dataset, method, seed)
    except ValueError as error:
        # `Experiment` checks the values and names its fields; name the flags too.
        text = str(error)
        for field in (f.name for f in dataclasses.fields(Experiment)):
            flag = "--lr" if field == "learning_rate" else "--" + field.replace("_", "-")
            text = text.replace(f"`{field}`", f"`{field}` ({flag})")
        raise ValueError(text) from None


def _experiment(args, dataset, method, seed):
    return Experiment(
        dataset=dataset, root=None if args.root is None else str(args.root.resolve()),
        method=method,
        scaling=args.scaling, c=args.c, over=args.over, omega=args.omega,
        num_samples=args.num_samples, max_steps=args.max_steps, seed=seed,
        epochs=args.epochs,
        patience=args.patience, learning_rate=getattr(args, "lr", Experiment().learning_rate),
        weight_decay=args.weight_decay,
        batch_size=args.batch_size, train_sets=args.train_sets, val_sets=args.val_sets,
        test_sets=args.test_sets, prediction=args.prediction, encoder=args.encoder,
        energy=args.energy, copula=args.copula, draws=args.draws,
        features=args.features, drop_last=args.drop_last,
    )


def _parser():
    parser = argparse.ArgumentParser(
        prog="setfix",
        description="Learn set functions from an optimal-subset oracle. Without a "
        "command: `setfix train` (iDiffMF on the two-moons sets).",
    )
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser("train", help="train one model and report its test Jaccard")
    train.add_argument("--dataset", default="moons", help=f"{DATASET_HELP} [%(default)s]")
    train.add_argument("--method", choices=list(names.METHODS), default="idiffmf",
                       help="learning method [%(default)s]")
    train.add_argument("--seed", type=int, default=0,
                       help="seeds the model, the batches and the samples [%(default)s]")
    train.add_argument("--out", type=pathlib.Path, default=None,
                       help="run directory [runs/NAME]")
    _experiment_options(train, epochs=MAIN_JOB_EPOCHS)

    ev = sub.add_parser("evaluate", help="re-evaluate the best model of a run")
    ev.add_argument("run", type=pathlib.Path, help="run directory or its best.eqx")
    ev.add_argument("--split", choices=("train", "val", "test"), default="test",
                    help="the split to score; val uses the best epoch's validation key, "
                    "so it repeats the recorded best validation figure [%(default)s]")

    rep = sub.add_parser("reproduce", help="a grid of runs and a Table-1-style summary")
    rep.add_argument("--datasets", default="gaussian,moons",
                     help=f"comma-separated datasets: {DATASET_HELP}; amazon:all for the "
                     "12 categories [%(default)s]")
    rep.add_argument("--methods", default="idiffmf,diffmf,equivset_copula",
                     help="comma-separated methods [%(default)s]")
    rep.add_argument("--seeds", type=_positive_int, default=5, help="seeds 0..N-1 [5]")
    rep.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs"),
                     help="directory of the runs and of table.json [%(default)s]")
    _experiment_options(rep, epochs=Experiment().epochs)

    cv = sub.add_parser("crossval", help="the papers' protocol: k-fold cross-validation "
                        "of the learning rate on train + validation, then the test split")
    cv.add_argument("--dataset", default="moons", help=f"{DATASET_HELP} [%(default)s]")
    cv.add_argument("--method", choices=list(names.METHODS), default="idiffmf",
                    help="learning method [%(default)s]")
    cv.add_argument("--seed", type=int, default=0, help="keys the folds [%(default)s]")
    cv.add_argument("--lrs", type=_learning_rates, default=[1e-3, 1e-4],
                    help="comma-separated learning-rate grid [1e-3,1e-4]")
    cv.add_argument("--folds", type=int, default=5, help="[%(default)s]")
    cv.add_argument("--out", type=pathlib.Path, default=None,
                    help="directory of the fold runs (resumable; processes with different "
                    "--lrs may share it) [runs/cv-NAME]")
    _experiment_options(cv, epochs=Experiment().epochs, learning_rate=False)
    return parser


def _train(args):
    config = _config(args, args.dataset, args.method, args.seed)
    out = args.out or pathlib.Path("runs") / config.name
    print(f"{config.name}: training (results in {out})", flush=True)
    results = run(config, out, progress=not args.quiet)
    print(
        f"best epoch {results['best_epoch']} (val Jaccard "
        f"{results['best_val_jaccard']:.2f}), {results['seconds_per_epoch']:.1f} s per "
        f"epoch (median training time); test solves converged: "
        f"{percent(results['test_converged'])}"
    )
    print(format_scores(results["test_scores"]))
    print(f"final test Jaccard: {results['test_jaccard']:.2f}")
    return results


def _crossval(args):
    config = _config(args, args.dataset, args.method, args.seed)
    out = args.out or pathlib.Path("runs") / f"cv-{config.name}"
    print(f"{config.name}: {args.folds}-fold cross-validation of the learning rate over "
          f"{', '.join(f'{lr:g}' for lr in args.lrs)} (runs in {out})", flush=True)
    r = run_cross_validation(config, args.lrs, folds=args.folds, out=out,
                             progress=not args.quiet)
    for lr, folds in r["folds_by_rate"].items():
        vals = np.array([f["val"] for f in folds])
        tests = np.array([f["test"] for f in folds])
        seconds = np.mean([f["seconds_per_epoch"] for f in folds])
        print(f"lr {float(lr):g}: val {vals.mean():.2f} ± {vals.std():.2f}, test "
              f"{tests.mean():.2f} ± {tests.std():.2f}, {seconds:.1f} s per epoch")
    print(f"chosen lr {r['learning_rate']:g}: test Jaccard {r['test_mean']:.2f} ± "
          f"{r['test_std']:.2f} over {args.folds} folds")
    return r


def _split_names(text, options, what):
    names = [x.strip() for x in text.split(",") if x.strip()]
    if what == "datasets":
        names = [name for x in names for name in (
            [f"amazon:{c}" for c in AMAZON_CATEGORIES] if x == "amazon:all" else [x])]
    unknown = [x for x in names if x.partition(":")[0] not in options]
    if not names or unknown:
        raise SystemExit(
            f"setfix reproduce: unknown {what} {unknown or text!r}; expected some of "
            f"{', '.join(options)}"
        )
    return names


def _reproduce(args):
    dsets = _split_names(args.datasets, names.DATASETS, "datasets")
    methods = _split_names(args.methods, tuple(names.METHODS), "methods")
    # All configurations first, so that a bad one fails before hours of training.
    configs = [_config(args, dataset, method, seed) for dataset in dsets
               for method in methods for seed in range(args.seeds)]
    results = []
    for config in configs:
        out = args.out / config.name
        r = finished(config, out)
        if r is not None:
            print(f"{config.name}: done before, test Jaccard {r['test_jaccard']:.2f}")
        else:
            print(f"{config.name}: training", flush=True)
            r = run(config, out, progress=not args.quiet)
            print(f"{config.name}: test Jaccard {r['test_jaccard']:.2f} "
                  f"(best epoch {r['best_epoch']})", flush=True)
        results.append(r)
    table = summarise(results)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "table.json", table)
    (args.out / "table.md").write_text(format_markdown(table))
    print("\nTest Jaccard x100, mean ± std over seeds (seconds per training epoch)")
    print(format_table(table))
    return table


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["train"] + argv
    args = _parser().parse_args(argv)
    if os.environ.get("SETFIX_DISTRIBUTED"):
        import jax

        jax.distributed.initialize()  # coordinator etc. from the environment
    try:
        if args.command == "train":
            _train(args)
        elif args.command == "evaluate":
            scores = evaluate_run(args.run, args.split)
            print(f"{args.split} Jaccard: {scores['jaccard']:.2f} "
                  f"(converged: {percent(scores['converged'])})")
            print(format_scores(scores))
        elif args.command == "crossval":
            _crossval(args)
        else:
            _reproduce(args)
    except (ValueError, OSError, DivergenceError) as error:
        raise SystemExit(f"setfix {args.command}: error: {error}") from None


if __name__ == "__main__":
    main()
