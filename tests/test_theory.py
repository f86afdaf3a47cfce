"""Section 4 of the paper: Assumption 4.1, Theorem 4.2 (contraction), the iteration
bound of Section 4.4, and the Lipschitz estimate."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest
from hypothesis import given, strategies as st

import setfix as sf

from .helpers import random_table


EXACT = dict(estimator=sf.Exact(), scaling=sf.NoScaling())


def _jacobian(f, items, psi):
    return jax.jacfwd(lambda p: sf.fixed_point_map(f, items, None, p, **EXACT))(psi)


_jit_jacobian = eqx.filter_jit(jax.vmap(_jacobian, (None, None, 0)))


@eqx.filter_jit
def _solve(mf, f, items, psi0):
    return mf(f, items, psi0=psi0)


@eqx.filter_jit
def _iterate(f, items, psi0, steps):
    """`steps` plain applications of the fixed-point map."""
    fn = lambda _, p: sf.fixed_point_map(f, items, None, p, **EXACT)  # noqa: E731
    return jax.lax.fori_loop(0, steps, fn, psi0)


@pytest.mark.slow
@given(
    n=st.integers(2, 10),
    ratio=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**16),
)
def test_theorem_4_2_contraction(n, ratio, seed):
    """Tables with n max|F| = ratio < 1 (Assumption 4.1) give |dT/dpsi|_F <=
    sqrt(n(n-1)) max|F| < 1 everywhere sampled; iteration from several starts reaches
    the same fixed point, within the Section 4.4 bound."""
    key = jax.random.key(seed)
    max_abs = ratio / n
    f = random_table(key, n, max_abs)
    items = jnp.zeros((n, 1))
    assert float(sf.assumption_4_1(f, items)) == pytest.approx(ratio)
    omega = math.sqrt(n * (n - 1)) * max_abs  # Theorem 4.2's bound on |dT/dpsi|_F
    assert omega < 1
    points = jax.random.uniform(jax.random.fold_in(key, 1), (8, n), jnp.float64)
    norms = jnp.linalg.norm(_jit_jacobian(f, items, points), axis=(1, 2))
    assert float(jnp.max(norms)) <= omega + 1e-12

    tol = 1e-8
    bound = sf.iteration_bound(omega, tol, n)
    mf = sf.MeanField(
        estimator=sf.Exact(),
        scaling=sf.NoScaling(),
        solver=optx.FixedPointIteration(rtol=0.0, atol=tol),
        max_steps=10_000,
    )
    reference = _solve(mf, f, items, jnp.full(n, 0.5))
    assert bool(reference.converged)
    # The solver's step criterion |psi_{k+1} - psi_k|_inf <= tol is met within the bound.
    assert int(reference.num_steps) <= bound + 1
    starts = jax.random.uniform(jax.random.fold_in(key, 2), (3, n), jnp.float64)
    for psi0 in starts:
        sol = _solve(mf, f, items, psi0)
        assert bool(sol.converged)
        # Unique fixed point: |psi - psi*| <= omega/(1-omega) * step <= 2 tol / (1-omega).
        assert float(jnp.linalg.norm(sol.psi - reference.psi)) <= 4 * tol / (1 - omega)
        # Plain iteration for exactly `bound` steps is within tol of the fixed point.
        psi = _iterate(f, items, psi0, bound)
        err = float(jnp.linalg.norm(psi - reference.psi))
        assert err <= tol + 2 * tol / (1 - omega)


def test_assumption_4_1_by_enumeration():
    n = 5
    f = random_table(jax.random.key(0), n, 1.0)
    items = jnp.zeros((n, 1))
    values = np.asarray(f.values)
    assert float(sf.assumption_4_1(f, items)) == pytest.approx(n * np.abs(values).max())
    # With padding only subsets of the real items count (bitmasks below 2**3).
    mask = jnp.arange(n) < 3
    expected = 3 * np.abs(values[: 2**3]).max()
    assert float(sf.assumption_4_1(f, items, mask)) == pytest.approx(expected)


@pytest.mark.slow
def test_lipschitz_estimate_is_the_spectral_norm():
    n = 6
    key = jax.random.key(0)
    f = sf.DeepSet(2, hidden=8, width=8, key=key)
    items = jax.random.normal(key, (n, 2), jnp.float64)
    points = jax.random.uniform(jax.random.key(1), (4, n), jnp.float64)
    exact = max(
        float(jnp.linalg.norm(_jacobian(f, items, p), ord=2)) for p in points
    )
    est = sf.lipschitz_estimate(f, items, key=key, psi=points, num_iterations=200)
    assert float(est) == pytest.approx(exact, rel=1e-6)
    # The random-point version never exceeds the Frobenius bound of Theorem 4.2 scaled
    # by max |F|, and contracts after scaling the function down.
    table = random_table(key, n, 0.5 / n)
    omega = float(sf.lipschitz_estimate(table, jnp.zeros((n, 1)), key=key))
    assert 0 < omega <= math.sqrt(n * (n - 1)) * 0.5 / n


def test_lipschitz_estimate_with_scaling_and_monte_carlo():
    n = 8
    key = jax.random.key(0)
    f = sf.DeepSet(2, hidden=8, width=8, key=key)
    items = jax.random.normal(key, (n, 2), jnp.float64)
    omega = sf.lipschitz_estimate(
        f, items, estimator=sf.MonteCarlo(16), scaling=sf.NormScaling(), key=key
    )
    assert bool(jnp.isfinite(omega)) and float(omega) > 0


def test_iteration_bound():
    assert sf.iteration_bound(0.5, 1e-6, 4) == math.ceil(
        math.log(1e-6 * 0.5 / 2) / math.log(0.5)
    )
    assert sf.iteration_bound(0.9, 1e-3, 100) > sf.iteration_bound(0.5, 1e-3, 100)
    for name, bad in (
        ("omega", dict(omega=1.0, tol=1e-3, n=3)),
        ("tol", dict(omega=0.5, tol=0.0, n=3)),
        ("n", dict(omega=0.5, tol=1e-3, n=0)),
    ):
        with pytest.raises(ValueError, match=f"`{name}`"):
            sf.iteration_bound(**bad)
