"""Brute-force references computed from the definitions, in NumPy."""

import contextlib
import itertools

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
