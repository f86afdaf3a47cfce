"""Bad input gives an error that names the argument."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import setfix as sf


@pytest.fixture(scope="module")
def f():
    return sf.DeepSet(2, hidden=4, width=4, key=jax.random.key(0))


MF = sf.MeanField(estimator=sf.Exact(), max_steps=20)


@pytest.mark.bad_input
def test_mismatched_shapes(f):
    items = jnp.ones((4, 2))
    with pytest.raises(ValueError, match="`mask` must have shape"):
        MF(f, items, jnp.ones(5, bool))
    with pytest.raises(ValueError, match="`items` must have shape"):
        MF(f, jnp.ones(4))
    with pytest.raises(ValueError, match="`psi0` must have shape"):
        MF(f, items, psi0=jnp.full(3, 0.5))
    with pytest.raises(ValueError, match="`subset` must have shape"):
        sf.TableSetFunction(jnp.zeros(8))(jnp.ones((4, 1)), jnp.ones(4))


@pytest.mark.bad_input
def test_wrong_dtypes(f):
    with pytest.raises(TypeError, match="`mask` must be a boolean array"):
        MF(f, jnp.ones((4, 2)), jnp.ones(4))
    with pytest.raises(TypeError, match="`items` must be a floating-point array"):
        MF(f, jnp.ones((4, 2), int))
    with pytest.raises(TypeError, match="`items` must be an array"):
        MF(f, [[1.0, 2.0]])
    with pytest.raises(TypeError, match="`f` must be a setfix.AbstractSetFunction"):
        MF(lambda x, s: 0.0, jnp.ones((4, 2)))


def test_empty_ground_set(f):
    with pytest.raises(ValueError, match="empty ground set"):
        MF(f, jnp.ones((0, 2)))
    with pytest.raises(ValueError, match="empty ground set"):
        MF(f, jnp.ones((3, 0, 2)))


def test_nan_items_raise_also_under_jit(f):
    items = jnp.ones((4, 2)).at[1, 0].set(jnp.nan)
    with pytest.raises(Exception, match="`items` contains NaN"):
        MF(f, items)
    with pytest.raises(Exception, match="`items` contains NaN"):
        eqx.filter_jit(MF)(f, items)


def test_psi0_out_of_range(f):
    with pytest.raises(Exception, match="`psi0` must lie in"):
        MF(f, jnp.ones((4, 2)), psi0=jnp.full(4, 1.5))


def test_missing_key_for_monte_carlo(f):
    with pytest.raises(ValueError, match="`key` is required"):
        sf.MeanField(estimator=sf.MonteCarlo())(f, jnp.ones((4, 2)))


@pytest.mark.bad_input
def test_constructor_arguments():
    with pytest.raises(TypeError, match="`solver`"):
        sf.MeanField(solver="anderson")
    with pytest.raises(TypeError, match="`adjoint`"):
        sf.MeanField(adjoint="implicit")
    with pytest.raises(TypeError, match="`estimator`"):
        sf.MeanField(estimator="mc")
    with pytest.raises(ValueError, match="`max_steps`"):
        sf.MeanField(max_steps=0)
    with pytest.raises(ValueError, match="`norm`"):
        sf.BatchNormScaling("l1")
    with pytest.raises(TypeError):
        sf.NormScaling("fro")  # per set, the norms agree: nothing to choose
    with pytest.raises(ValueError, match="`c`"):
        sf.ConstantScaling(0.0)
    with pytest.raises(ValueError, match="`values`"):
        sf.TableSetFunction(jnp.zeros(6))
    with pytest.raises(ValueError, match="`in_features`"):
        sf.DeepSet(0, key=jax.random.key(0))


def test_solver_values_not_strings():
    mf = sf.MeanField(solver=optx.Newton(rtol=1e-6, atol=1e-6), estimator=sf.Exact())
    f = sf.TableSetFunction(jnp.linspace(-0.1, 0.1, 8))
    sol = mf(f, jnp.zeros((3, 1)))
    assert bool(sol.converged)
    assert np.all(np.isfinite(sol.psi))
