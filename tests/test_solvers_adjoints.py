"""Every solver x every adjoint on one problem; Anderson acceleration; root form;
diagnostics."""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest
from hypothesis import given, strategies as st

import setfix as sf

from .helpers import random_table, unchecked


TOL = 1e-10
N = 4
SOLVERS = {
    "fixed_point": optx.FixedPointIteration(rtol=TOL, atol=TOL),
    "damped": optx.FixedPointIteration(rtol=TOL, atol=TOL, damp=0.3),
    "anderson": sf.AndersonAcceleration(rtol=TOL, atol=TOL),
    "newton": optx.Newton(rtol=TOL, atol=TOL),
    "chord": optx.Chord(rtol=TOL, atol=TOL),
    "best_so_far": optx.BestSoFarFixedPoint(optx.FixedPointIteration(rtol=TOL, atol=TOL)),
    "best_so_far_newton": optx.BestSoFarRootFinder(optx.Newton(rtol=TOL, atol=TOL)),
}
ADJOINTS = {
    "implicit_lu": optx.ImplicitAdjoint(lx.LU()),
    "implicit_gmres": optx.ImplicitAdjoint(lx.GMRES(rtol=1e-12, atol=1e-12)),
    "implicit_bicgstab": optx.ImplicitAdjoint(lx.BiCGStab(rtol=1e-12, atol=1e-12)),
    "unrolled": sf.Unrolled(steps=40),
    "one_step": sf.OneStep(steps=2),
}
EXACT = dict(estimator=sf.Exact(), scaling=sf.NoScaling())


def _problem():
    # n max|F| = 0.5: omega <= sqrt(12)/8 ~ 0.43 (Theorem 4.2).
    table = random_table(jax.random.key(0), N, 0.5 / N)
    items = jnp.zeros((N, 1))
    weights = jnp.array([1.0, -2.0, 0.5, 3.0])
    return table, items, weights


def _T(values, psi, items):
    return sf.fixed_point_map(sf.TableSetFunction(values), items, None, psi, **EXACT)


def _reference():
    table, items, weights = _problem()
    mf = sf.MeanField(solver=SOLVERS["fixed_point"], max_steps=500, **EXACT)
    psi = mf(table, items).psi
    # The IFT gradient, from explicit Jacobians.
    A = jnp.eye(N) - jax.jacfwd(_T, argnums=1)(table.values, psi, items)
    B = jax.jacfwd(_T, argnums=0)(table.values, psi, items)
    return psi, weights @ jnp.linalg.solve(A, B)


@pytest.mark.slow
@pytest.mark.parametrize("adjoint", list(ADJOINTS))
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_solver_adjoint_matrix(solver, adjoint):
    table, items, weights = _problem()
    mf = sf.MeanField(
        solver=SOLVERS[solver], adjoint=ADJOINTS[adjoint], max_steps=500, **EXACT
    )

    @eqx.filter_jit
    def value_and_grad(values):
        def loss(values):
            sol = mf(sf.TableSetFunction(values), items)
            return weights @ sol.psi, sol

        return jax.value_and_grad(loss, has_aux=True)(values)

    (_, sol), grad = value_and_grad(table.values)
    psi_ref, grad_ref = _reference()
    assert np.allclose(sol.psi, psi_ref, atol=1e-8)
    if adjoint.startswith("implicit") or adjoint == "unrolled":
        # Unrolling 40 steps of a contraction with omega < 0.45 converges to the IFT
        # gradient (for the Newton-type solvers, much faster).
        assert np.allclose(grad, grad_ref, rtol=1e-6, atol=1e-8), (grad, grad_ref)
    else:
        # OneStep(2): the gradient of two map applications at the (stopped) solution.
        def phantom(values):
            psi = jax.lax.stop_gradient(psi_ref)
            return weights @ _T(values, _T(values, psi, items), items)

        assert np.allclose(grad, jax.grad(phantom)(table.values), atol=1e-8)


def test_unrolled_is_autodiff_of_k_iterations():
    table, items, weights = _problem()
    k = 5
    mf = sf.MeanField(solver=SOLVERS["fixed_point"], adjoint=sf.Unrolled(k), **EXACT)

    def explicit(values):
        psi = jnp.full(N, 0.5)
        for _ in range(k):
            psi = _T(values, psi, items)
        return weights @ psi

    def unrolled(values):
        return weights @ mf(sf.TableSetFunction(values), items).psi

    sol = mf(table, items)
    assert int(sol.num_steps) == k
    assert np.allclose(unrolled(table.values), explicit(table.values), atol=1e-12)
    assert np.allclose(
        jax.grad(unrolled)(table.values), jax.grad(explicit)(table.values), atol=1e-12
    )


def test_one_step_matches_zero_hessian_implicit():
    """OneStep(1) = the published iDiffMF gradient: an implicit adjoint over an
    estimator whose psi-Jacobian is zero."""
    table, items, weights = _problem()
    key = jax.random.key(3)
    common = dict(scaling=sf.NoScaling(), solver=SOLVERS["fixed_point"], max_steps=500)
    est = sf.MonteCarlo(16, hessian=sf.ZeroHessian())
    one_step = sf.MeanField(estimator=est, adjoint=sf.OneStep(1), **common)
    implicit = sf.MeanField(estimator=est, adjoint=optx.ImplicitAdjoint(lx.LU()), **common)
    grads = [
        jax.grad(lambda v: weights @ mf(sf.TableSetFunction(v), items, key=key).psi)(
            table.values
        )
        for mf in (one_step, implicit)
    ]
    assert np.allclose(grads[0], grads[1], atol=1e-10)


def _coupled_table(n, omega, seed):
    """F(S) = -a |S|^2 / 2 + a |S| n / 2 + sum_{i in S} c_i with a = 4 omega / (n - 1):
    the map's Jacobian is about -a/4 off the diagonal, so its contraction factor at the
    fixed point is close to `omega` (a slow, oscillating contraction)."""
    codes = np.arange(2**n)
    bits = (codes[:, None] >> np.arange(n)) & 1
    sizes = bits.sum(1)
    a = 4 * omega / (n - 1)
    c = np.random.default_rng(seed).uniform(-1, 1, n)
    return sf.TableSetFunction(jnp.asarray(-a * sizes**2 / 2 + a * sizes * n / 2 + bits @ c))


_lipschitz = eqx.filter_jit(sf.lipschitz_estimate)


@eqx.filter_jit
def _solve(mf, f, items):
    return mf(f, items)


@pytest.mark.slow
@given(n=st.integers(4, 8), seed=st.integers(0, 2**16))
def test_anderson_beats_plain_iteration_at_omega_0_9(n, seed):
    f = _coupled_table(n, 0.9, seed)
    items = jnp.zeros((n, 1))
    omega = float(_lipschitz(f, items, key=jax.random.key(seed)))
    assert 0.75 < omega < 1
    steps = {}
    for name, solver in (
        ("plain", optx.FixedPointIteration(rtol=1e-8, atol=1e-8)),
        ("anderson", sf.AndersonAcceleration(rtol=1e-8, atol=1e-8)),
    ):
        mf = sf.MeanField(solver=solver, max_steps=2000, diagnostics=(sf.ResidualTrace(),),
                          **EXACT)
        sol = _solve(mf, f, items)
        assert bool(sol.converged)
        steps[name] = int(sol.num_steps)
        if name == "anderson":
            # It returns the point whose residual it tested: |T(psi) - psi| meets the
            # tolerance it reported convergence for.
            image = sf.fixed_point_map(f, items, None, sol.psi, **EXACT)
            assert np.all(np.abs(image - sol.psi) <= 1e-8 + 1e-8 * np.abs(image))
            # ... and the last traced residual is that point's residual.
            assert np.isclose(sol.residual_trace[steps[name] - 1], sol.residual)
    assert steps["anderson"] < steps["plain"], steps


@given(seed=st.integers(0, 2**16), ratio=st.floats(0.5, 0.95))
def test_anderson_on_deepsets_meeting_assumption_4_1(seed, ratio):
    """DeepSets scaled (ConstantScaling) to meet Assumption 4.1 with n max|F| = ratio.
    Their maps contract fast, often in a few steps, and Anderson never needs more than
    one step beyond plain iteration: the step in which it tests the point it returns.
    (Where the contraction is slow, it needs far fewer: see the test above.)"""
    n = 8
    key = jax.random.key(seed)
    f = sf.DeepSet(2, hidden=8, width=16, key=key)
    items = jax.random.normal(jax.random.fold_in(key, 1), (n, 2), jnp.float64)
    # The scaled function is 2 F / (n c): n max|F_scaled| = 2 max|F| / c = ratio.
    c = float(2 * sf.assumption_4_1(f, items) / n / ratio)
    scaling = sf.ConstantScaling(c)
    steps = {}
    for name, solver in (
        ("plain", optx.FixedPointIteration(rtol=1e-8, atol=1e-8)),
        ("anderson", sf.AndersonAcceleration(rtol=1e-8, atol=1e-8)),
    ):
        mf = sf.MeanField(sf.Exact(), scaling, solver, max_steps=2000)
        sol = _solve(mf, f, items)
        assert bool(sol.converged)
        steps[name] = int(sol.num_steps)
    assert steps["anderson"] <= steps["plain"] + 1, steps


def test_anderson_under_vmap_and_implicit_adjoint():
    b = 3
    tables = [_coupled_table(5, 0.9, s) for s in range(b)]
    items = jnp.zeros((5, 1))
    mf = sf.MeanField(
        solver=sf.AndersonAcceleration(rtol=1e-10, atol=1e-10),
        adjoint=optx.ImplicitAdjoint(lx.LU()),
        max_steps=500,
        **EXACT,
    )
    values = jnp.stack([t.values for t in tables])
    solve = lambda v: mf(sf.TableSetFunction(v), items)  # noqa: E731
    batch = jax.vmap(solve)(values)
    for i in range(b):
        single = solve(values[i])
        assert np.allclose(batch.psi[i], single.psi, atol=1e-9)
        assert int(batch.num_steps[i]) == int(single.num_steps)
    grad = jax.grad(lambda v: jnp.sum(solve(v).psi ** 2))(values[0])
    plain = eqx.tree_at(lambda m: m.solver, mf, optx.FixedPointIteration(1e-12, 1e-12))
    plain = eqx.tree_at(lambda m: m.max_steps, plain, 5000)
    grad_plain = jax.grad(lambda v: jnp.sum(plain(sf.TableSetFunction(v), items).psi ** 2))(
        values[0]
    )
    assert np.allclose(grad, grad_plain, atol=1e-7)


@pytest.mark.parametrize("linear_solver", ["lu", "cg"])
def test_root_form_agrees_with_fixed_point_form(linear_solver):
    table, items, weights = _problem()
    fixed = sf.MeanField(
        solver=SOLVERS["fixed_point"], adjoint=ADJOINTS["implicit_lu"], max_steps=500,
        **EXACT,
    )
    adjoint = optx.ImplicitAdjoint(
        lx.LU() if linear_solver == "lu" else lx.CG(rtol=1e-12, atol=1e-12)
    )
    root = sf.MeanField(
        solver=optx.Newton(rtol=TOL, atol=TOL), adjoint=adjoint, form=sf.LogitRootForm(),
        **EXACT
    )
    sols = [mf(table, items) for mf in (fixed, root)]
    assert bool(sols[1].converged)
    assert np.allclose(sols[0].psi, sols[1].psi, atol=1e-9)
    grads = [
        jax.grad(lambda v: weights @ mf(sf.TableSetFunction(v), items).psi)(table.values)
        for mf in (fixed, root)
    ]
    assert np.allclose(grads[0], grads[1], atol=1e-8)


def test_root_form_needs_a_root_finder():
    with pytest.raises(TypeError, match="root finder"):
        sf.MeanField(solver=optx.FixedPointIteration(1e-6, 1e-6), form=sf.LogitRootForm())
    with pytest.raises(TypeError, match="form"):
        sf.MeanField(form=True)


@pytest.mark.slow
def test_diagnostics_trace_and_omega():
    f = _coupled_table(5, 0.8, 0)
    items = jnp.zeros((5, 1))
    mf = sf.MeanField(
        solver=optx.FixedPointIteration(rtol=1e-9, atol=1e-9),
        max_steps=300,
        diagnostics=(sf.ResidualTrace(), sf.ContractionEstimate()),
        **EXACT,
    )
    sol = mf(f, items, key=jax.random.key(0))
    k = int(sol.num_steps)
    trace = np.asarray(sol.residual_trace)
    assert trace.shape == (300,)
    assert np.all(np.isfinite(trace[:k])) and np.all(np.isnan(trace[k:]))
    psi0 = jnp.full(5, 0.5)
    first = sf.fixed_point_map(f, items, None, psi0, **EXACT) - psi0
    assert np.isclose(trace[0], np.abs(first).max())
    # A contraction: the residual falls by about omega per step.
    assert trace[k - 1] < 1e-8 < trace[0]
    omega = sf.lipschitz_estimate(f, items, key=jax.random.key(1), psi=sol.psi[None],
                                  num_iterations=100)
    assert np.isclose(float(sol.omega), float(omega), rtol=1e-3)
    # Off by default.
    plain = eqx.tree_at(lambda m: m.diagnostics, mf, ())
    sol = plain(f, items)
    assert sol.residual_trace is None and sol.omega is None
    # The number of power iterations is the estimate's own option.
    few = eqx.tree_at(lambda m: m.diagnostics, mf, (sf.ContractionEstimate(2),))
    assert few(f, items).omega is not None


@pytest.mark.bad_input
def test_diagnostics_are_values():
    with pytest.raises(TypeError, match="`diagnostics` must be a tuple of setfix diagnostics"):
        sf.MeanField(diagnostics=("trace",))  # pyright: ignore
    with pytest.raises(ValueError, match="measures `omega` more than once"):
        sf.MeanField(diagnostics=(sf.ContractionEstimate(), sf.ContractionEstimate(5)))
    with pytest.raises(ValueError, match="num_iterations"):
        sf.ContractionEstimate(0)
    with pytest.raises(TypeError, match="trace"):
        sf.MeanField(trace=True)  # pyright: ignore
    assert sf.MeanField(diagnostics=[sf.ResidualTrace()]).diagnostics == (sf.ResidualTrace(),)


def test_mean_over_converged():
    values = jnp.array([1.0, 2.0, 30.0])
    converged = jnp.array([True, True, False])
    assert float(sf.mean_over_converged(values, converged)) == 1.5
    grad = jax.grad(lambda v: sf.mean_over_converged(v, converged))(values)
    assert np.array_equal(grad, [0.5, 0.5, 0.0])
    assert float(sf.mean_over_converged(values, jnp.zeros(3, bool))) == 0.0
    with unchecked(), pytest.raises(ValueError, match="`values`"):
        sf.mean_over_converged(values, converged[:2])


def test_bad_solver_and_adjoint_arguments():
    with pytest.raises(ValueError, match="`history_length`"):
        sf.AndersonAcceleration(1e-6, 1e-6, history_length=0)
    with pytest.raises(ValueError, match="`damp`"):
        sf.AndersonAcceleration(1e-6, 1e-6, damp=1.0)
    with pytest.raises(ValueError, match="`steps`"):
        sf.Unrolled(0)
    with pytest.raises(ValueError, match="`damp`"):
        sf.OneStep(1, damp=0.0)
