"""Implicit gradients against central finite differences, per solver x linear solver:
the relative error of the directional derivative of a loss of psi* w.r.t. the values of
a set-function table (n = 5, n max|F| = 0.9, Exact estimator, float64, solver tolerance
1e-10, FD step 1e-6), and the solve steps.

    python -m benchmarks implicit_fd
"""

import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx

import setfix as sf

from ._common import save


def main(argv=None):
    del argv
    jax.config.update("jax_enable_x64", True)
    n, tol, eps = 5, 1e-10, 1e-6
    values = jax.random.uniform(jax.random.key(0), (2**n,), jnp.float64, -1.0, 1.0)
    values = 0.9 / n * values / jnp.max(jnp.abs(values))
    weights = jax.random.normal(jax.random.key(1), (n,), jnp.float64)
    direction = jax.random.normal(jax.random.key(3), values.shape, jnp.float64)
    items = jnp.zeros((n, 1))
    solvers = {"fixed_point": optx.FixedPointIteration(tol, tol),
               "newton": optx.Newton(tol, tol), "chord": optx.Chord(tol, tol),
               "anderson": sf.AndersonAcceleration(tol, tol)}
    linear = {"lu": lx.LU(), "gmres": lx.GMRES(1e-12, 1e-12),
              "bicgstab": lx.BiCGStab(1e-12, 1e-12)}
    results = []
    for s_name, solver in solvers.items():
        for l_name, linear_solver in linear.items():
            mf = sf.MeanField(sf.Exact(), sf.NoScaling(), solver,
                              optx.ImplicitAdjoint(linear_solver), 500)
            loss = jax.jit(lambda v: weights @ mf(sf.TableSetFunction(v), items).psi)
            analytic = jax.grad(loss)(values) @ direction
            numeric = (loss(values + eps * direction) - loss(values - eps * direction)) / (
                2 * eps)
            row = {"solver": s_name, "linear_solver": l_name,
                   "num_steps": int(mf(sf.TableSetFunction(values), items).num_steps),
                   "relative_error": float(abs(analytic - numeric) / abs(numeric))}
            print(row)
            results.append(row)
    save("implicit_fd", {"n": n, "tol": tol, "fd_step": eps, "dtype": "float64",
                         "estimator": "Exact", "scaling": "NoScaling"}, results)


if __name__ == "__main__":
    main()
