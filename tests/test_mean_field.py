"""The mean-field layer: solves, implicit gradients against finite differences,
equivariance, padding, batching, convergence reports."""

import os
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest

import setfix as sf
from setfix._evaluator import split_set_function

from .helpers import fd_check, random_like, random_table, unchecked


TOL = 1e-10
SOLVERS = {
    "fixed_point": optx.FixedPointIteration(rtol=TOL, atol=TOL),
    "newton": optx.Newton(rtol=TOL, atol=TOL),
    "chord": optx.Chord(rtol=TOL, atol=TOL),
}
LINEAR_SOLVERS = {
    "lu": lx.LU(),
    "gmres": lx.GMRES(rtol=1e-12, atol=1e-12),
    "bicgstab": lx.BiCGStab(rtol=1e-12, atol=1e-12),
}


SNIPPET = """
import jax, jax.numpy as jnp, optimistix as optx, lineax as lx, setfix as sf
key = jax.random.key(0)
f = sf.DeepSet(in_features=2, key=key)
items = jax.random.normal(key, (30, 2)); mask = jnp.ones(30, bool)
mf = sf.MeanField(
    estimator=sf.MonteCarlo(num_samples=8),
    scaling=sf.NormScaling(),
    solver=optx.FixedPointIteration(rtol=1e-6, atol=1e-6),
    adjoint=optx.ImplicitAdjoint(lx.GMRES(rtol=1e-6, atol=1e-6)),
    max_steps=100,
)
sol = mf(f, items, mask, key=key)   # sol.psi (30,), sol.num_steps, sol.residual, sol.converged
assert sol.psi.shape == (30,) and sol.psi.dtype == jnp.float32, sol.psi.dtype
assert bool(sol.converged) and int(sol.num_steps) >= 1 and float(sol.residual) <= 1e-5
assert bool(jnp.all((sol.psi > 0) & (sol.psi < 1)))
g = jax.grad(lambda x: jnp.sum(mf(f, x, mask, key=key).psi ** 2))(items)
assert g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g)))
print("ok")
"""


@pytest.mark.slow
def test_issue_snippet_runs_as_written_in_float32():
    """The README/issue example, in a fresh process with JAX's float32 default."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("linear_solver", list(LINEAR_SOLVERS))
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_implicit_gradients_match_finite_differences(solver, linear_solver):
    """Gradients of a loss of psi* w.r.t. table values, DeepSet parameters and items,
    exact estimator, float64. The FD error is O(eps^2) + O(tol / eps) ~ 1e-10."""
    mf = sf.MeanField(
        estimator=sf.Exact(),
        scaling=sf.NoScaling(),
        solver=SOLVERS[solver],
        adjoint=optx.ImplicitAdjoint(LINEAR_SOLVERS[linear_solver]),
        max_steps=200,
    )
    key = jax.random.key(0)
    n = 5
    weights = jax.random.normal(jax.random.key(1), (n,), jnp.float64)
    items = jax.random.normal(jax.random.key(2), (n, 2), jnp.float64)

    # Table values (n max|F| = 0.9: a contraction, Theorem 4.2) with the unscaled map;
    # a DeepSet through the per-set normalisation, w.r.t. its parameters and the items.
    table = random_table(key, n, 0.9 / n)
    mf_norm = eqx.tree_at(lambda m: m.scaling, mf, sf.NormScaling())
    f = sf.DeepSet(2, hidden=6, width=8, key=key)
    f = jax.tree.map(lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, f)
    assert bool(mf(table, items).converged) and bool(mf_norm(f, items).converged)

    def loss(params):
        table, f, items = params
        return jnp.dot(weights, mf(table, items).psi + mf_norm(f, items).psi)

    params = (table, f, items)
    zero = jax.tree.map(jnp.zeros_like, eqx.filter(params, eqx.is_inexact_array))
    directions = [
        eqx.tree_at(lambda p: p[0], zero, random_like(table, jax.random.key(3))),
        eqx.tree_at(lambda p: p[1], zero, random_like(f, jax.random.key(4))),
        eqx.tree_at(lambda p: p[2], zero, jax.random.normal(jax.random.key(5), items.shape)),
    ]
    fd_check(loss, params, directions)


@pytest.mark.slow
@pytest.mark.parametrize(
    "hessian", [sf.ScoreHessian(), sf.PairwiseHessian(), sf.ZeroHessian()], ids=repr)
def test_implicit_gradient_with_monte_carlo_solves_the_ift_system(hessian):
    """With a Monte Carlo estimator the implicit adjoint gives
    d psi*/d theta = (I - dT/dpsi)^{-1} dT/dtheta, built here from explicit Jacobians of
    the estimator's map (its custom psi-JVP) at the solution."""
    n = 6
    key = jax.random.key(0)
    f = random_table(key, n, 0.9 / n)
    items = jnp.zeros((n, 1))
    est = sf.MonteCarlo(32, hessian=hessian)
    mf = sf.MeanField(
        estimator=est,
        scaling=sf.NoScaling(),
        solver=optx.FixedPointIteration(rtol=TOL, atol=TOL),
        adjoint=optx.ImplicitAdjoint(lx.LU()),
    )
    skey = jax.random.key(9)
    weights = jnp.arange(1.0, n + 1)
    grad = jax.grad(lambda v: weights @ mf(sf.TableSetFunction(v), items, key=skey).psi)(
        f.values
    )
    psi = mf(f, items, key=skey).psi
    mask = jnp.ones(n, bool)
    noise = est.noise(skey, n)

    def T(psi, values):
        readout, emb = split_set_function(sf.TableSetFunction(values), items)
        return jax.nn.sigmoid(est.gradient(readout, emb, psi, mask, noise))

    A = jnp.eye(n) - jax.jacfwd(T, argnums=0)(psi, f.values)
    B = jax.jacfwd(T, argnums=1)(psi, f.values)
    expected = weights @ jnp.linalg.solve(A, B)
    assert np.allclose(grad, expected, atol=1e-10)
    if isinstance(hessian, sf.ZeroHessian):
        # The one-step gradient the published code computes.
        assert np.allclose(grad, weights @ B, atol=1e-10)


def _exact_mf(**kw):
    return sf.MeanField(
        estimator=sf.Exact(),
        scaling=kw.pop("scaling", sf.NormScaling()),
        solver=optx.FixedPointIteration(rtol=1e-10, atol=1e-10),
        adjoint=optx.ImplicitAdjoint(lx.LU()),
        **kw,
    )


def test_permutation_equivariance():
    n = 7
    key = jax.random.key(0)
    f = sf.DeepSet(2, hidden=8, width=8, key=key)
    items = jax.random.normal(key, (n, 2), jnp.float64)
    perm = jax.random.permutation(jax.random.key(1), n)
    mf = _exact_mf()
    assert np.allclose(mf(f, items).psi[perm], mf(f, items[perm]).psi, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", [sf.Exact(), sf.MonteCarlo(8)])
def test_padding_changes_nothing(estimator):
    n, pad = 6, 3
    key = jax.random.key(0)
    f = sf.DeepSet(2, hidden=8, width=8, key=key)
    items = jax.random.normal(key, (n, 2), jnp.float64)
    padded = jnp.concatenate([items, jnp.zeros((pad, 2))])
    mask = jnp.arange(n + pad) < n
    mf = sf.MeanField(
        estimator=estimator,
        solver=optx.FixedPointIteration(rtol=1e-10, atol=1e-10),
        adjoint=optx.ImplicitAdjoint(lx.GMRES(rtol=1e-12, atol=1e-12)),
    )
    skey = jax.random.key(5)
    mf = eqx.filter_jit(mf)
    sol = mf(f, items, key=skey)
    sol_pad = mf(f, padded, mask, key=skey)
    assert np.allclose(sol_pad.psi[:n], sol.psi, atol=1e-12)
    assert np.all(sol_pad.psi[n:] == 0)
    assert bool(sol_pad.converged)
    # Gradients w.r.t. the real items are unchanged too; padded items get none.
    w = jnp.linspace(-1, 1, n)
    g = jax.jit(jax.grad(lambda x: w @ mf(f, x, key=skey).psi))(items)
    g_pad = jax.jit(jax.grad(lambda x: w @ mf(f, x, mask, key=skey).psi[:n]))(padded)
    assert np.allclose(g_pad[:n], g, atol=1e-10)
    assert np.all(g_pad[n:] == 0)


def test_batch_equals_loop_and_vmap():
    b, n = 4, 5
    key = jax.random.key(0)
    f = sf.DeepSet(2, hidden=8, width=8, key=key)
    items = jax.random.normal(key, (b, n, 2), jnp.float64)
    mask = jnp.ones((b, n), bool).at[1, 3:].set(False)
    mf = sf.MeanField(estimator=sf.MonteCarlo(6))
    skey = jax.random.key(1)
    batch = mf(f, items, mask, key=skey)
    keys = jax.random.split(skey, b)
    loop = [mf(f, items[i], mask[i], key=keys[i]) for i in range(b)]
    vmapped = jax.vmap(lambda x, m, k: mf(f, x, m, key=k))(items, mask, keys)
    for i in range(b):
        assert np.allclose(batch.psi[i], loop[i].psi, atol=1e-12)
        assert np.allclose(vmapped.psi[i], loop[i].psi, atol=1e-12)
        assert int(batch.num_steps[i]) == int(loop[i].num_steps)
    assert batch.converged.shape == (b,) and bool(jnp.all(batch.converged))


def test_generic_set_function_batch():
    """A non-pooled set function works on a batch (its items travel with it)."""
    b, n = 3, 4
    tables = [random_table(jax.random.key(i), n, 0.2) for i in range(b)]
    f = tables[0]
    items = jax.random.normal(jax.random.key(0), (b, n, 1), jnp.float64)
    mf = _exact_mf(scaling=sf.NoScaling())
    batch = mf(f, items)
    for i in range(b):
        assert np.allclose(batch.psi[i], mf(f, items[i]).psi, atol=1e-12)


def test_unconverged_solves_are_reported_not_raised():
    b, n = 3, 6
    key = jax.random.key(0)
    f = sf.DeepSet(2, hidden=8, width=8, key=key)
    items = jax.random.normal(key, (b, n, 2), jnp.float64)
    mf = sf.MeanField(
        estimator=sf.Exact(),
        scaling=sf.NoScaling(),
        solver=optx.FixedPointIteration(rtol=1e-14, atol=1e-14),
        max_steps=2,
    )
    sol = mf(f, items)
    assert sol.converged.shape == (b,)
    assert not bool(jnp.any(sol.converged))
    assert bool(jnp.all(sol.residual > 0))
    converging = eqx.tree_at(lambda m: m.max_steps, mf, 500)
    converging = eqx.tree_at(
        lambda m: m.solver, converging, optx.FixedPointIteration(rtol=1e-8, atol=1e-8)
    )
    assert bool(jnp.all(converging(f, items).converged))


@pytest.mark.slow
def test_batch_coupled_scaling():
    b, n = 3, 5
    key = jax.random.key(0)
    f = sf.DeepSet(2, hidden=8, width=8, key=key)
    items = jax.random.normal(key, (b, n, 2), jnp.float64)
    other = items.at[2].multiply(3.0)
    for norm in ("fro", "nuc"):
        coupled = _exact_mf(scaling=sf.BatchNormScaling(norm))
        per_set = _exact_mf(scaling=sf.NormScaling())
        # Changing set 2 changes set 0's solution only when the batch is coupled.
        assert not np.allclose(coupled(f, items).psi[0], coupled(f, other).psi[0])
        assert np.allclose(per_set(f, items).psi[0], per_set(f, other).psi[0])
        # On a single set, batch and set scaling coincide.
        assert np.allclose(coupled(f, items[0]).psi, per_set(f, items[0]).psi)
        sol = coupled(f, items)
        assert sol.num_steps.shape == sol.converged.shape == sol.residual.shape == (b,)
        assert bool(jnp.all(sol.converged))
    # The joint solve's gradient matches finite differences.
    coupled = _exact_mf(scaling=sf.BatchNormScaling("nuc"))
    w = jax.random.normal(jax.random.key(3), (b, n), jnp.float64)
    loss = lambda x: jnp.sum(w * coupled(f, x).psi)  # noqa: E731
    fd_check(loss, items, [jax.random.normal(jax.random.key(4), items.shape)])


def test_warm_start_and_fixed_point_functions():
    n = 5
    key = jax.random.key(0)
    f = random_table(key, n, 0.5 / n)
    items = jnp.zeros((n, 1))
    mf = _exact_mf(scaling=sf.NoScaling())
    sol = mf(f, items)
    kw = dict(estimator=sf.Exact(), scaling=sf.NoScaling())
    assert np.allclose(sf.fixed_point_map(f, items, None, sol.psi, **kw), sol.psi, atol=1e-9)
    assert np.abs(sf.residual(f, items, None, sol.psi, **kw)).max() < 1e-9
    warm = mf(f, items, psi0=sol.psi)
    assert int(warm.num_steps) < int(sol.num_steps)
    assert np.allclose(warm.psi, sol.psi, atol=1e-9)


def test_constant_scaling():
    n = 4
    f = random_table(jax.random.key(0), n, 1.0)
    items = jnp.zeros((n, 1))
    c = 3.0
    scaled = _exact_mf(scaling=sf.ConstantScaling(c))(f, items).psi
    table = sf.TableSetFunction(f.values * 2 / (n * c))
    assert np.allclose(scaled, _exact_mf(scaling=sf.NoScaling())(table, items).psi)


@pytest.mark.slow
def test_solution_reports_why_each_solve_stopped():
    """`MeanFieldSolution.result` is Optimistix's reason per set: successful exactly
    where converged, max steps where the solver ran out, divergence where psi is not
    finite (here one set of the batch, whose items overflow, but not the other);
    for a batch-coupled solve the shared reason is given to every set. `throw=True`
    raises instead."""
    g = sf.DeepSet(2, hidden=8, width=8, key=jax.random.key(0))
    # The first set's items overflow float32 in the embedding: F is inf - inf there.
    huge = jax.random.normal(jax.random.key(1), (2, 10, 2))
    huge = huge.at[0].set(jnp.finfo(huge.dtype).max)
    sol = sf.MeanField(sf.MonteCarlo(5), sf.NoScaling())(g, huge, key=jax.random.key(2))
    assert list(np.asarray(sol.converged)) == [False, True]
    assert list(np.asarray(sol.result == optx.RESULTS.nonlinear_divergence)) == [True, False]
    assert list(np.asarray(sol.result == optx.RESULTS.successful)) == [False, True]

    g = sf.DeepSet(2, hidden=8, width=8, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 10, 2))
    for scaling in (sf.NormScaling(), sf.BatchNormScaling()):
        short = sf.MeanField(sf.MonteCarlo(5), scaling, max_steps=1)(g, x, key=jax.random.key(2))
        assert not np.any(short.converged)
        assert np.all(short.result == optx.RESULTS.nonlinear_max_steps_reached)
        full = sf.MeanField(sf.MonteCarlo(5), scaling)(g, x, key=jax.random.key(2))
        assert np.all(full.converged) and np.all(full.result == optx.RESULTS.successful)
    steps = sf.diffmf()(g, x, key=jax.random.key(2))
    assert np.all(steps.result == optx.RESULTS.successful)
    with pytest.raises(eqx.EquinoxRuntimeError, match="maximum number of steps"):
        sf.MeanField(sf.MonteCarlo(5), max_steps=1, throw=True)(g, x[0], key=jax.random.key(2))
    with pytest.raises(TypeError, match="throw"):
        sf.MeanField(throw=1)  # pyright: ignore


@pytest.mark.slow
def test_problem_is_the_map_every_solve_iterates():
    """`MeanFieldProblem` is the one place a solve's per-ground-set work is done: its map
    equals `fixed_point_map`, `in_axes` splits a batch into the per-set problems (the
    DeepSet's and a table's, whose readout is per set), its solved fixed point is what
    `MeanField` returns, and `redrawn` changes only the samples."""
    key = jax.random.key(0)
    f = sf.DeepSet(2, hidden=8, width=8, key=key)
    items = jax.random.normal(jax.random.key(1), (3, 6, 2))
    mask = jnp.arange(6) < jnp.array([[6], [4], [5]])
    est, scaling = sf.MonteCarlo(4), sf.NormScaling()
    psi = jax.random.uniform(jax.random.key(2), (3, 6))
    for g in (f, random_table(jax.random.key(3), 6)):
        problem = sf.MeanFieldProblem(g, items, mask, estimator=est, scaling=scaling,
                                      key=key)
        assert problem.batched
        mapped = sf.fixed_point_map(g, items, mask, psi, estimator=est, scaling=scaling,
                                    key=key)
        assert jnp.allclose(problem.fixed_point(psi), mapped, atol=1e-6)
        per_set = jax.vmap(lambda q, p: q.fixed_point(p), in_axes=(problem.in_axes(), 0))(
            problem, psi)
        assert jnp.allclose(per_set, mapped, atol=1e-6)
        assert bool(jnp.all(jnp.where(mask, True, mapped == 0)))
    problem = sf.MeanFieldProblem(f, items[0], estimator=est, scaling=scaling, key=key)
    assert not problem.batched
    sol = sf.MeanField(est, scaling, optx.FixedPointIteration(rtol=1e-6, atol=1e-6))(
        f, items[0], key=key)
    assert jnp.allclose(problem.fixed_point(sol.psi), sol.psi, atol=1e-5)
    fresh = problem.redrawn(jax.random.key(9))
    assert not jnp.allclose(fresh.noise, problem.noise)
    assert jnp.array_equal(fresh.embedding, problem.embedding)
    with pytest.raises(ValueError, match="`key` is required"):
        sf.MeanFieldProblem(f, items[0], estimator=est)
    with unchecked(), pytest.raises(TypeError, match="`estimator`"):
        sf.MeanFieldProblem(f, items[0], estimator="mc")  # pyright: ignore
