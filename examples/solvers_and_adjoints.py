"""Composing solvers and adjoints: the fixed point psi = T(psi) of a DeepSet solved by
fixed-point iteration, Anderson acceleration and Newton, and its gradient taken
implicitly (with different Lineax solvers), by unrolling (DiffMF) and by one step (what
the published code computes), all compared with the exact implicit gradient.

    python examples/solvers_and_adjoints.py [--quick]
"""

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx

import setfix as sf


# Double precision, so that the comparisons below measure the methods, not round-off.
jax.config.update("jax_enable_x64", True)

def cosine(a, b):
    a, b = jnp.ravel(a), jnp.ravel(b)
    return float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


def main(quick: bool) -> None:
    n = 8 if quick else 12
    key = jax.random.key(0)
    f = sf.DeepSet(2, hidden=32, width=32, key=key)
    items = jax.random.normal(jax.random.key(1), (n, 2))

    # A constant scaling sets the Lipschitz constant omega of T (Theorem 4.2); choose c
    # so that the largest |dT/dpsi| found over the cube is about 0.9 (near the fixed
    # point the map contracts faster).
    omega1 = float(sf.lipschitz_estimate(f, items, scaling=sf.ConstantScaling(1.0), key=key))
    scaling = sf.ConstantScaling(omega1 / 0.9)
    print(f"n = {n}: ConstantScaling({scaling.c:.3g}) gives omega ~ 0.9")

    tol = 1e-6
    exact = sf.Exact()  # enumerates all 2^n subsets: exact values and Hessian
    implicit = optx.ImplicitAdjoint(lx.LU())
    print("\nsolver                 steps   residual")
    for name, solver in [
        ("fixed-point iteration", optx.FixedPointIteration(rtol=tol, atol=tol)),
        ("Anderson (m = 5)", sf.AndersonAcceleration(rtol=tol, atol=tol)),
        ("Newton", optx.Newton(rtol=tol, atol=tol)),
    ]:
        mf = sf.MeanField(exact, scaling, solver, implicit, max_steps=500)
        sol = mf(f, items)
        print(f"{name:22s} {int(sol.num_steps):5d}   {float(sol.residual):.1e}")

    # Gradients of a loss of psi* with respect to the DeepSet's parameters.
    w = jax.random.normal(jax.random.key(2), (n,))

    def grad_with(mf, key=None):
        def loss(f):
            return jnp.sum(w * mf(f, items, key=key).psi)

        return jax.tree.leaves(eqx.filter_grad(loss)(f))

    fpi = optx.FixedPointIteration(rtol=tol, atol=tol)
    reference = grad_with(sf.MeanField(exact, scaling, fpi, implicit, max_steps=500))
    print("\nadjoint (exact estimator)         cosine to exact")
    for name, adjoint in [
        ("implicit, LU", implicit),
        ("implicit, GMRES", optx.ImplicitAdjoint(lx.GMRES(rtol=1e-8, atol=1e-8))),
        ("unrolled, K = 5 (DiffMF)", sf.Unrolled(5)),
        ("unrolled, K = 30", sf.Unrolled(30)),
        ("one step (published code)", sf.OneStep(1)),
    ]:
        mf = sf.MeanField(exact, scaling, fpi, adjoint, max_steps=500)
        g = grad_with(mf)
        c = cosine(jnp.concatenate([x.ravel() for x in g]),
                   jnp.concatenate([x.ravel() for x in reference]))
        print(f"{name:33s} {c:14.4f}")

    # With sampling, the implicit adjoint needs the estimator's Hessian-vector
    # products; "zero" is what autodiff through Bernoulli samples gives.
    m = 16 if quick else 64
    print(f"\nMonte Carlo ({m} samples), implicit adjoint   cosine to exact")
    for hessian in (sf.ScoreHessian(), sf.PairwiseHessian(), sf.ZeroHessian()):
        mf = sf.MeanField(sf.MonteCarlo(m, hessian=hessian), scaling, fpi,
                          optx.ImplicitAdjoint(lx.GMRES(rtol=1e-6, atol=1e-6)),
                          max_steps=500)
        g = grad_with(mf, key=jax.random.key(3))
        c = cosine(jnp.concatenate([x.ravel() for x in g]),
                   jnp.concatenate([x.ravel() for x in reference]))
        print(f"hessian={hessian!r:20s} {c:23.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    main(parser.parse_args().quick)
