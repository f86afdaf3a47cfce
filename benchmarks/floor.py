"""The floor: one iteration of setfix's default solve against the readouts a sum-pooled
DeepSet cannot avoid.

For each shape of `throughput.py` (batch 16, m = 5):

- **floor**: the 2·m·n readouts ρ(s ± φ_i) per set of one mean-field iteration (the
  design's essential work), timed alone on precomputed pooled sums;
- **own readouts**: the m·(n + 1) readouts setfix's estimator needs (F(S_k) once per
  sample, F(S_k ⊕ i) once per sample and item, since one of F(S_k ∪ i), F(S_k \\ i) is
  F(S_k));
- **iteration**: one application of the mean-field map exactly as the solver calls it
  (the `MeanFieldProblem` that `MeanField` solves, under `vmap` over the batch, on the
  folded DeepSet's embeddings), as the marginal time of K = 12 over K = 2 applications in a loop.

With `--energies`, the iteration alone for each energy at the same width and encoder
(`DeepSet`, `SupersetDeepSet`, `AttentionSet`, defaults otherwise), and its ratio to
the DeepSet's: what seeing the ground set costs inside the solve (the ground-set work,
summary or attention, runs once per solve, before the loop, and is not in it).

    python -m benchmarks floor [--quick] [--energies]
"""

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp

import setfix as sf

from ._common import save, timed
from .throughput import _data, _model, BATCH, CONFIGS, NUM_SAMPLES, QUICK


@eqx.filter_jit
def _iterate(problem, psi, steps):
    apply = eqx.filter_vmap(lambda q, p: q.fixed_point(p), in_axes=(problem.in_axes(), 0))

    def body(_, p):
        return apply(problem, p)

    return jax.lax.fori_loop(0, steps, body, psi)


@eqx.filter_jit
def _readouts(rho, pooled):
    return jax.vmap(rho)(pooled)


def iteration_time(model, items, repeats=5):
    """Seconds per application of the default method's map on a batch of `items`."""
    batch, n = items.shape[:2]
    mask = jnp.ones((batch, n), bool)
    method = sf.idiffmf(tolerance=1e-6, max_steps=20)
    problem = sf.MeanFieldProblem(model, items, mask, estimator=method.estimator,
                                  scaling=method.scaling, key=jax.random.key(2))
    psi = jnp.full((batch, n), 0.5)

    def loop_time(steps):
        return timed(_iterate, problem, psi, steps, repeats=repeats)[1]

    low, high = 2, 12
    return (loop_time(high) - loop_time(low)) / (high - low)


ENERGIES = {"deepset": sf.DeepSet, "superset": sf.SupersetDeepSet,
            "attention": sf.AttentionSet}


def measure_energies(n, shape, encoder, batch):
    items, _ = _data(n, shape, encoder, batch, jax.random.key(1))
    seconds = {energy: iteration_time(_model(encoder, shape, jax.random.key(0), cls), items)
               for energy, cls in ENERGIES.items()}
    return {"seconds_per_iteration": seconds,
            "over_deepset": {e: seconds[e] / seconds["deepset"] for e in ENERGIES}}


def measure(n, shape, encoder, batch, repeats=5):
    model = _model(encoder, shape, jax.random.key(0))
    items, _ = _data(n, shape, encoder, batch, jax.random.key(1))
    iteration = iteration_time(model, items, repeats)
    h = model.rho.in_size

    def readout_time(count):
        pooled = jax.random.normal(jax.random.key(3), (count, h))
        return timed(_readouts, model.rho, pooled, repeats=repeats)[1]

    floor = readout_time(batch * 2 * NUM_SAMPLES * n)
    own = readout_time(batch * NUM_SAMPLES * (n + 1))
    return {"seconds_per_iteration": iteration, "floor_seconds": floor,
            "own_readouts_seconds": own, "iteration_over_floor": iteration / floor,
            "iteration_over_own_readouts": iteration / own}


def main_energies(quick):
    configs = QUICK if quick else CONFIGS
    batch = 4 if quick else BATCH
    rows = []
    print(f"{'config':12s} {'n':>4s} " + " ".join(f"{e + ' s':>12s}" for e in ENERGIES)
          + "  ratios to deepset")
    for name, (n, shape, encoder) in configs.items():
        row = {"config": name, "n": n, "item_shape": list(shape), "encoder": encoder,
               "batch": batch, **measure_energies(n, shape, encoder, batch)}
        rows.append(row)
        seconds, ratio = row["seconds_per_iteration"], row["over_deepset"]
        print(f"{name:12s} {n:4d} " + " ".join(f"{seconds[e]:12.5f}" for e in ENERGIES)
              + "  " + " ".join(f"{ratio[e]:.2f}x" for e in ENERGIES), flush=True)
    save("floor_energies_quick" if quick else "floor_energies",
         {"batch": batch, "num_samples": NUM_SAMPLES, "method": "idiffmf(tolerance=1e-6)",
          "iteration": "marginal time of 12 over 2 map applications"}, rows)


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks floor")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--energies", action="store_true",
                        help="the iteration of each energy against the DeepSet's")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.energies:
        return main_energies(quick)
    configs = QUICK if quick else CONFIGS
    batch = 4 if quick else BATCH
    rows = []
    print(f"{'config':12s} {'n':>4s} {'iteration s':>12s} {'floor s':>9s} {'ratio':>6s} "
          f"{'own readouts s':>15s} {'ratio':>6s}")
    for name, (n, shape, encoder) in configs.items():
        row = {"config": name, "n": n, "item_shape": list(shape), "encoder": encoder,
               "batch": batch, **measure(n, shape, encoder, batch)}
        rows.append(row)
        print(f"{name:12s} {n:4d} {row['seconds_per_iteration']:12.4f} "
              f"{row['floor_seconds']:9.4f} {row['iteration_over_floor']:5.2f}x "
              f"{row['own_readouts_seconds']:15.4f} {row['iteration_over_own_readouts']:5.2f}x",
              flush=True)
    save("floor_quick" if quick else "floor",
         {"batch": batch, "num_samples": NUM_SAMPLES, "method": "idiffmf(tolerance=1e-6)",
          "iteration": "marginal time of 12 over 2 map applications"}, rows)
