"""Brute-force references computed from the definitions, in NumPy."""

import contextlib
import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np

import setfix as sf


def random_table(key, n, max_abs=1.0):
    """A TableSetFunction on n items with values uniform in [-max_abs, max_abs] and
    max |F| equal to max_abs."""
    values = jax.random.uniform(key, (2**n,), jnp.float64, -1.0, 1.0)
    values = max_abs * values / jnp.max(jnp.abs(values))
    return sf.TableSetFunction(values)


def subsets(n):
    return [np.array(bits[::-1], float) for bits in itertools.product([0, 1], repeat=n)]


def index(s):
    return int(sum(int(b) << i for i, b in enumerate(s)))


def prob(s, psi):
    return float(np.prod(np.where(s > 0, psi, 1 - psi)))


def multilinear(values, psi):
    """F~(psi) = sum_S F(S) q(S; psi)."""
    n = len(psi)
    return sum(values[index(s)] * prob(s, psi) for s in subsets(n))


def multilinear_grad(values, psi):
    """dF~/dpsi_i = E[F(S + i) - F(S - i)], by enumeration."""
    n = len(psi)
    grad = np.zeros(n)
    for s in subsets(n):
        p = prob(s, psi)
        for i in range(n):
            plus, minus = s.copy(), s.copy()
            plus[i], minus[i] = 1, 0
            grad[i] += p * (values[index(plus)] - values[index(minus)])
    return grad


def multilinear_hessian(values, psi):
    """d2F~/dpsi_i dpsi_j = E[F(S+i+j) - F(S+i-j) - F(S-i+j) + F(S-i-j)], i != j."""
    n = len(psi)
    hess = np.zeros((n, n))
    for s in subsets(n):
        p = prob(s, psi)
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                terms = 0.0
                for bi, bj, sign in ((1, 1, 1), (1, 0, -1), (0, 1, -1), (0, 0, 1)):
                    t = s.copy()
                    t[i], t[j] = bi, bj
                    terms += sign * values[index(t)]
                hess[i, j] += p * terms
    return hess


def tree_dot(a, b):
    leaves = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    return sum(jnp.vdot(x, y) for x, y in leaves)


def random_like(tree, key):
    """A standard normal direction with the inexact-array leaves of `tree`."""
    leaves, treedef = jax.tree.flatten(eqx.filter(tree, eqx.is_inexact_array))
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    )


def fd_check(loss, params, directions, eps=1e-6, rtol=1e-5):
    """<grad loss, d> against a central difference along each d in `directions`
    (in float64: error O(eps^2) + O(solver tolerance / eps)); returns the analytic
    values. The loss is compiled once and reused for every difference."""
    loss = eqx.filter_jit(loss)
    grad = eqx.filter(eqx.filter_jit(eqx.filter_grad(loss))(params), eqx.is_inexact_array)
    analytic_values = []
    for direction in directions:
        analytic = float(tree_dot(grad, eqx.filter(direction, eqx.is_inexact_array)))
        step = lambda sign: jax.tree.map(lambda d: sign * eps * d, direction)  # noqa: E731
        plus = eqx.apply_updates(params, step(1))
        minus = eqx.apply_updates(params, step(-1))
        numeric = (float(loss(plus)) - float(loss(minus))) / (2 * eps)
        assert abs(analytic - numeric) <= rtol * max(1.0, abs(numeric)), (analytic, numeric)
        analytic_values.append(analytic)
    return analytic_values


@contextlib.contextmanager
def unchecked():
    """Turns jaxtyping's run-time type check off for a block that passes a wrong
    argument on purpose, to check the library's own error message: that message is
    what users see, while the tests run with the check on (pyproject's addopts) and it
    would answer first. For whole tests, the `bad_input` marker does the same."""
    before = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", before)
