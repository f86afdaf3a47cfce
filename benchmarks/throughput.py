"""Throughput: seconds per training gradient step of the default iDiffMF composition
(DeepSet 256/500/500, m = 5 samples, tol 1e-6, at most 20 steps, implicit adjoint,
float32) against the published code's cost structure (`_reference.py`: m×n×n masks,
float64, batch-wide Frobenius scaling, one-step gradient), on the same shapes and data,
in two variants:

- `published`: as LearnSetsImplicit runs, one fixed key for every map
  (`PRNGKey(1)`, the first seed of its `run_implicit.sh`), stop at a step norm of 1e-7
  or 10 maps (its defaults), the encoder left to XLA (which hoists it out of the loop);
- `fresh`: fresh draws every map and the encoder run in every call of F, as eager
  PyTorch with unseeded `torch.bernoulli` does, at tol 1e-6 and 20 maps (which it
  always runs). This was the only reference before 2026-12-06.

(`floor.py` times one iteration against the readouts it cannot avoid.)

Every measurement runs in a fresh child process (x64 only in the references'), and
the children alternate (setfix, published, fresh, setfix, ...) over `--rounds` rounds,
so all see the same machine state; a figure is the median over rounds of each child's
best of `--repeats` steps after a warm-up step.

    python -m benchmarks throughput [--quick] [--rounds R] [--repeats K] [--only NAMES]
                                    [--impls setfix,published,fresh]
"""

import argparse
import json
import statistics
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _reference
from ._common import pyplot, save, save_figure, timed


BATCH = 16
NUM_SAMPLES = 5
# name: (n, item shape, encoder); "scaling" rows are the Moons setting at other n.
CONFIGS = {
    "moons": (100, (2,), "linear"),
    "amazon": (30, (768,), "linear"),
    "compounds": (300, (2048,), "fingerprint"),
    "celeba": (8, (3, 64, 64), "cnn"),
    "scaling-25": (25, (2,), "linear"),
    "scaling-50": (50, (2,), "linear"),
    "scaling-200": (200, (2,), "linear"),
}
QUICK = {
    "moons": (20, (2,), "linear"),
    "celeba": (4, (3, 16, 16), "cnn"),
}


# ----------------------------------------------------------------------------- children


def _model(encoder, shape, key, energy=None):
    """The shape's model: `energy` (a set function class with DeepSet's constructor,
    `setfix.DeepSet` by default) with the encoder for its item type."""
    import setfix as sf

    energy = sf.DeepSet if energy is None else energy
    phi_key, model_key = jax.random.split(key)
    if encoder == "linear":
        return energy(shape[0], key=model_key)
    if encoder == "fingerprint":
        return energy(encoder=sf.MLPEncoder(shape[0], 256, key=phi_key), key=model_key)
    return energy(encoder=sf.CNNEncoder(shape[0], 256, key=phi_key), key=model_key)


def _data(n, shape, encoder, batch, key):
    """Items, and targets of about n/10 items per set (2 of 8 for images)."""
    item_key, order_key = jax.random.split(key)
    if encoder == "fingerprint":
        items = jax.random.bernoulli(item_key, 0.05, (batch, n) + shape).astype(jnp.float32)
    else:
        items = jax.random.normal(item_key, (batch, n) + shape)
    k = max(2, n // 10)
    ranks = jnp.argsort(jax.random.uniform(order_key, (batch, n)), axis=1)
    target = ranks < k
    return items, target


def setfix_step(n, shape, encoder, batch):
    """The timed training step of setfix's default iDiffMF on these shapes:
    (step, model, optimiser state, items), `step(model, opt_state, key)` jitted on
    `items` (b, n, ...) with every item real."""
    import setfix as sf

    model = _model(encoder, shape, jax.random.key(0))
    items, target = _data(n, shape, encoder, batch, jax.random.key(1))
    mask = jnp.ones((batch, n), bool)
    method = sf.idiffmf(tolerance=1e-6, max_steps=20)
    optimizer = sf.default_optimizer(1e-4)
    opt_state = method.objective.init(optimizer, model)

    @eqx.filter_jit
    def step(model, opt_state, key):
        solve_key, negative_key = jax.random.split(key)
        negatives = sf.sample_negatives(negative_key, target, mask, 1)
        return method.objective.update(model, opt_state, method, items, mask, target,
                                       negatives, key=solve_key, optimizer=optimizer)

    return step, model, opt_state, items


def _child_setfix(n, shape, encoder, batch, repeats):
    step, model, opt_state, _ = setfix_step(n, shape, encoder, batch)
    keys = iter(jax.random.split(jax.random.key(2), repeats + 1))
    (_, _, stats), seconds = timed(lambda: step(model, opt_state, next(keys)),
                                   repeats=repeats)

    return {
        "seconds_per_step": seconds,
        "iterations": float(stats["num_steps"]),
        "converged": float(stats["converged"]),
    }


# The reference variants: keyword arguments of `_reference.train_step`.
REFERENCES = {
    "published": {"fixed_key": True, "rerun_encoder": False,
                  "tol": _reference.PUBLISHED_TOL, "max_steps": _reference.PUBLISHED_MAX_STEPS},
    "fresh": {"fixed_key": False, "rerun_encoder": True, "tol": 1e-6, "max_steps": 20},
}
IMPLS = ("setfix", *REFERENCES)


def _child_reference(n, shape, encoder, batch, repeats, variant):
    jax.config.update("jax_enable_x64", True)
    import setfix as sf

    from ._common import as_float64

    model = as_float64(_model(encoder, shape, jax.random.key(0)))
    items, target = _data(n, shape, encoder, batch, jax.random.key(1))
    items = items.astype(jnp.float64)
    mask = jnp.ones((batch, n), bool)
    optimizer = _reference.optimizer()
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    keys = iter(jax.random.split(jax.random.key(2), repeats + 1))
    settings = REFERENCES[variant]
    # The published code's key: PRNGKey(seed), the same in every map and step.
    fixed = jax.random.PRNGKey(_reference.PUBLISHED_SEED)

    def step():
        key = next(keys)
        negatives = sf.sample_negatives(key, target, mask, 1)
        map_key = fixed if settings["fixed_key"] else jax.random.fold_in(key, 1)
        return _reference.train_step(model, opt_state, items, target, negatives,
                                     map_key, optimizer, **settings)

    (_, _, steps), seconds = timed(step, repeats=repeats)
    return {"seconds_per_step": seconds, "iterations": float(steps)}


def child(spec: dict) -> dict:
    n, shape, encoder = spec["n"], tuple(spec["shape"]), spec["encoder"]
    if spec["impl"] == "setfix":
        return _child_setfix(n, shape, encoder, spec["batch"], spec["repeats"])
    return _child_reference(n, shape, encoder, spec["batch"], spec["repeats"], spec["impl"])


# ----------------------------------------------------------------------------- parent


def _spawn(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", "--child", json.dumps(spec)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks throughput")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--only", default=None, help="comma-separated config names")
    parser.add_argument("--impls", default=",".join(IMPLS),
                        help="comma-separated, of " + ", ".join(IMPLS))
    return parser.parse_args(argv)


def main(argv):
    args = _parse(argv)
    configs = QUICK if args.quick else CONFIGS
    if args.only:
        configs = {k: configs[k] for k in args.only.split(",")}
    batch = 4 if args.quick else args.batch
    impls = args.impls.split(",")
    if impls[0] != "setfix" or not set(impls) <= set(IMPLS):
        raise SystemExit(f"--impls: setfix first, then any of {IMPLS[1:]}; got {args.impls}")
    runs: dict[tuple[str, str], list[dict]] = {}
    for r in range(1 if args.quick else args.rounds):
        for name, (n, shape, encoder) in configs.items():
            for impl in impls:
                spec = {"impl": impl, "n": n, "shape": shape, "encoder": encoder,
                        "batch": batch, "repeats": 1 if args.quick else args.repeats}
                result = _spawn(spec)
                runs.setdefault((name, impl), []).append(result)
                print(f"round {r}: {name:12s} {impl:9s} "
                      f"{result['seconds_per_step']:8.3f} s/step, "
                      f"{result['iterations']:.1f} iterations", flush=True)
    median = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    rows = []
    for name, (n, shape, encoder) in configs.items():
        row = {"config": name, "n": n, "item_shape": list(shape), "encoder": encoder,
               "batch": batch, "runs": {impl: runs[(name, impl)] for impl in impls}}
        for impl in impls:
            row[f"{impl}_seconds_per_step"] = median(runs[(name, impl)], "seconds_per_step")
            row[f"{impl}_iterations"] = median(runs[(name, impl)], "iterations")
        for impl in impls[1:]:
            row[f"{impl}_speedup"] = (row[f"{impl}_seconds_per_step"]
                                      / row["setfix_seconds_per_step"])
        rows.append(row)
    _report(rows)
    name = "throughput_quick" if args.quick else "throughput"
    save(name, {"batch": batch, "num_samples": NUM_SAMPLES, "rounds": args.rounds,
                "repeats": args.repeats, "setfix": "idiffmf(tolerance=1e-6, max_steps=20)",
                "references": {k: {**REFERENCES[k], "seed": _reference.PUBLISHED_SEED}
                               for k in impls[1:]},
                "reference_code": "benchmarks/_reference.py, float64"}, rows)
    _plot(rows, name)


def _report(rows):
    impls = [k[: -len("_seconds_per_step")] for k in rows[0] if k.endswith("_seconds_per_step")]
    print(f"{'config':12s} {'n':>4s} " + " ".join(f"{i + ' s':>12s}" for i in impls)
          + " " + " ".join(f"{i + ' its':>14s}" for i in impls))
    for r in rows:
        times = " ".join(f"{r[f'{i}_seconds_per_step']:12.3f}" for i in impls)
        its = " ".join(f"{r[f'{i}_iterations']:14.1f}" for i in impls)
        ups = " ".join(f"{r[f'{i}_speedup']:5.1f}x" for i in impls[1:])
        print(f"{r['config']:12s} {r['n']:4d} {times} {its} {ups}")


def _plot(rows, name):
    plt = pyplot()
    linear = sorted((r for r in rows if r["encoder"] == "linear" and r["item_shape"] == [2]),
                    key=lambda r: r["n"])
    fig, ax = plt.subplots(figsize=(5.5, 4))
    labels = {"published": "published code (fixed key, float64)",
              "fresh": "fresh draws, encoder in every call (float64)",
              "setfix": "setfix iDiffMF (float32)"}
    if linear:
        ns = np.array([r["n"] for r in linear])
        for impl, marker in (("fresh", "^:"), ("published", "o-"), ("setfix", "s-")):
            if f"{impl}_seconds_per_step" in linear[0]:
                ax.loglog(ns, [r[f"{impl}_seconds_per_step"] for r in linear], marker,
                          label=labels[impl])
    ax.set_xlabel("ground-set size n (2-d items)")
    ax.set_ylabel(f"seconds per training step (batch {rows[0]['batch']})")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    save_figure(fig, name)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        main(sys.argv[1:])
