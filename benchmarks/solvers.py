"""Solver comparison: steps, map evaluations and wall time to reach tol 1e-6 for
fixed-point iteration, damped iteration, Anderson acceleration and Newton-GMRES, on a
DeepSet whose constant scaling is calibrated so that the contraction factor at the
fixed point is omega in {0.5, 0.9, 0.99}.

Map evaluations count calls of the mean-field map's gradient estimate (for Newton this
includes one linearisation per step; the JVPs inside GMRES are not counted but are in
the wall time). Exact estimator (n = 12), float64.

    python -m benchmarks solvers [--quick]
"""


import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx

import setfix as sf

from ._common import as_float64, pyplot, quick_flag, save, save_figure, timed


class _Counting(sf.AbstractEstimator):
    """Wraps an estimator and counts, on the host, how often its gradient runs."""

    inner: sf.AbstractEstimator

    def noise(self, key, num_items):
        return self.inner.noise(key, num_items)

    def value(self, readout, embedding, psi, mask, noise):
        return self.inner.value(readout, embedding, psi, mask, noise)

    def gradient(self, readout, embedding, psi, mask, noise):
        jax.debug.callback(_tick, ordered=False)
        return self.inner.gradient(readout, embedding, psi, mask, noise)


_COUNT = [0]


def _tick():
    _COUNT[0] += 1


def _omega_at_solution(f, items, c):
    mf = sf.MeanField(sf.Exact(), sf.ConstantScaling(c),
                      optx.FixedPointIteration(rtol=1e-10, atol=1e-10),
                      max_steps=20_000, diagnostics=(sf.ContractionEstimate(),))
    return _solve(mf, f, items)


@eqx.filter_jit
def _solve(mf, f, items):
    return mf(f, items, key=jax.random.key(0))


def calibrate(f, items, target):
    """A constant c with omega(psi*) close to `target`: from large c (omega ~ 0)
    downwards to the first crossing, then bisection on log c."""
    hi = jnp.asarray(1e3)
    while float(_omega_at_solution(f, items, hi).omega) > target:
        hi = hi * 10
    lo = hi
    while float(_omega_at_solution(f, items, lo).omega) < target:
        hi = lo
        lo = lo / 2
        if float(lo) < 1e-8:
            raise RuntimeError(f"omega = {target} not reached")
    for _ in range(30):
        mid = jnp.sqrt(lo * hi)
        if float(_omega_at_solution(f, items, mid).omega) > target:
            lo = mid
        else:
            hi = mid
    c = jnp.sqrt(lo * hi)
    return c, float(_omega_at_solution(f, items, c).omega)


SOLVERS = {
    "fixed_point": lambda tol: optx.FixedPointIteration(rtol=tol, atol=tol),
    "damped_0.5": lambda tol: optx.FixedPointIteration(rtol=tol, atol=tol, damp=0.5),
    "anderson_5": lambda tol: sf.AndersonAcceleration(rtol=tol, atol=tol),
    "newton_gmres": lambda tol: optx.Newton(
        rtol=tol, atol=tol, linear_solver=lx.GMRES(rtol=tol * 1e-2, atol=tol * 1e-2)
    ),
}


def main(argv=None):
    quick = quick_flag(argv)
    jax.config.update("jax_enable_x64", True)
    n = 8 if quick else 12
    tol = 1e-6
    omegas = [0.5, 0.9] if quick else [0.5, 0.9, 0.99]
    key = jax.random.key(0)
    f = sf.DeepSet(2, key=key)
    f = as_float64(f)
    items = jax.random.normal(jax.random.key(1), (n, 2), jnp.float64)
    results = []
    for target in omegas:
        c, omega = calibrate(f, items, target)
        for name, make in SOLVERS.items():
            mf = sf.MeanField(_Counting(sf.Exact()), sf.ConstantScaling(c), make(tol),
                              max_steps=20_000)
            sol, seconds = timed(_solve, mf, f, items)
            _COUNT[0] = 0
            jax.block_until_ready(_solve(mf, f, items))
            jax.effects_barrier()
            row = {"target_omega": target, "omega": omega, "c": float(c),
                   "solver": name, "num_steps": int(sol.num_steps),
                   "map_evaluations": _COUNT[0], "seconds": seconds,
                   "residual": float(sol.residual), "converged": bool(sol.converged)}
            print(row)
            results.append(row)
    config = {"n": n, "tol": tol, "estimator": "Exact", "dtype": "float64",
              "model": "DeepSet(2, hidden=256, width=500, depth=2)",
              "scaling": "ConstantScaling(c), c calibrated per omega",
              "iteration_bounds": {str(w): sf.iteration_bound(w, tol, n) for w in omegas}}
    name = "solvers" + ("_quick" if quick else "")
    save(name, config, results)
    plot(results, name)


def plot(results, name):
    plt = pyplot()
    omegas = sorted({r["target_omega"] for r in results})
    solvers = list(dict.fromkeys(r["solver"] for r in results))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(solvers)
    for j, s in enumerate(solvers):
        vals = [next(r["map_evaluations"] for r in results
                     if r["solver"] == s and r["target_omega"] == w) for w in omegas]
        ax.bar(np.arange(len(omegas)) + j * width, vals, width, label=s)
    ax.set_xticks(np.arange(len(omegas)) + 0.4 - width / 2)
    ax.set_xticklabels([f"omega = {w}" for w in omegas])
    ax.set_yscale("log")
    ax.set_ylabel("map evaluations to tol 1e-6")
    ax.legend(fontsize=8)
    save_figure(fig, name)


if __name__ == "__main__":
    main()
