"""Fewer iterations: solver steps per solve with fixed-point iteration and Anderson
acceleration, from a cold start (ψ = 0.5) and warm-started from the previous epoch's
solution, on Moons with a DeepSet trained by iDiffMF.

Setting: the model after epoch 1 and after epoch 2 of `fit` (1000 train sets, batch
128, lr 1e-3). "Cold" solves the epoch-2 model from ψ = 0.5; "warm" solves it from the
epoch-1 model's solution on the same sets, with fresh samples (as a training step would
see them across epochs). The default scaling (`NormScaling`, per set) is a fast
contraction; `ConstantScaling(c)` with smaller c is slower, so the sweep shows where
warm starts and Anderson pay. The contraction factor ω is estimated at the solution
(power iteration, median over sets).

    python -m benchmarks iterations [--quick]
"""

import equinox as eqx
import jax
import numpy as np
import optimistix as optx

import setfix as sf

from ._common import pyplot, quick_flag, save, save_figure, timed


TOL = 1e-6


@eqx.filter_jit
def _solve(mf, model, items, mask, key, psi0):
    return mf(model, items, mask, key=key, psi0=psi0)


def _train(quick):
    train, val, _ = sf.datasets.moons(num_sets=128 if quick else 1000)
    model = sf.DeepSet(2, key=jax.random.key(0))
    method = sf.idiffmf(tolerance=TOL, max_steps=20)
    models = []
    for epoch in range(2):
        model = sf.fit(model, method, train, val, key=jax.random.key(epoch), epochs=1,
                       learning_rate=1e-3, batch_size=32 if quick else 128,
                       progress=False).model
        models.append(model)
    return models, val


def main(argv):
    quick = quick_flag(argv)
    (before, after), val = _train(quick)
    count = 16 if quick else 64
    items, mask, _ = next(val.batches(count))
    scalings = {"NormScaling (default)": sf.NormScaling()}
    for c in ((0.05,) if quick else (0.5, 0.1, 0.05, 0.02)):
        scalings[f"ConstantScaling({c})"] = sf.ConstantScaling(c)
    solvers = {
        "fixed-point iteration": optx.FixedPointIteration(rtol=TOL, atol=TOL),
        "Anderson (m=5)": sf.AndersonAcceleration(rtol=TOL, atol=TOL),
    }
    max_steps = 50 if quick else 200
    rows = []
    for scaling_name, scaling in scalings.items():
        omega = None
        for solver_name, solver in solvers.items():
            mf = sf.MeanField(sf.MonteCarlo(5), scaling, solver, max_steps=max_steps,
                              diagnostics=(sf.ContractionEstimate(),) if omega is None else ())
            previous = _solve(mf, before, items, mask, jax.random.key(1), None)
            cold, cold_seconds = timed(_solve, mf, after, items, mask, jax.random.key(2), None)
            warm, warm_seconds = timed(_solve, mf, after, items, mask, jax.random.key(2),
                                       previous.psi)
            if omega is None:
                omega = float(np.median(np.asarray(cold.omega)))
            row = {
                "scaling": scaling_name, "solver": solver_name, "omega": omega,
                "cold_steps": float(cold.num_steps.mean()),
                "cold_converged": float(cold.converged.mean()),
                "cold_seconds": cold_seconds,
                "warm_steps": float(warm.num_steps.mean()),
                "warm_converged": float(warm.converged.mean()),
                "warm_seconds": warm_seconds,
            }
            rows.append(row)
            print(f"{scaling_name:22s} omega {omega:5.3f} {solver_name:22s} "
                  f"cold {row['cold_steps']:6.1f} steps ({row['cold_converged']:.0%}) "
                  f"warm {row['warm_steps']:6.1f} steps ({row['warm_converged']:.0%})",
                  flush=True)
    name = "iterations_quick" if quick else "iterations"
    save(name, {"sets": count, "n": int(mask.shape[1]), "tol": TOL, "max_steps": max_steps,
                "num_samples": 5, "training": "idiffmf, lr 1e-3, epochs 1 and 2"}, rows)
    _plot(rows, name)


def _plot(rows, name):
    plt = pyplot()
    labels = list(dict.fromkeys(r["scaling"] for r in rows))
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 4))
    bars = [(s, start) for s in dict.fromkeys(r["solver"] for r in rows)
            for start in ("cold", "warm")]
    width = 0.8 / len(bars)
    for i, (solver, start) in enumerate(bars):
        values = [next(r[f"{start}_steps"] for r in rows
                       if r["scaling"] == label and r["solver"] == solver) for label in labels]
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, values, width, label=f"{solver}, {start}")
    omegas = [next(r["omega"] for r in rows if r["scaling"] == label) for label in labels]
    ax.set_xticks(x, [f"{label}\nω={w:.2f}" for label, w in zip(labels, omegas)], fontsize=7)
    ax.set_ylabel("solver steps per solve (mean)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    save_figure(fig, name)
