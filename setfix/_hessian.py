r"""How [`setfix.MonteCarlo`][] estimates the multilinear Hessian's JVP.

Sampling passes no gradient, so the JVP of the Monte Carlo gradient $\hat g$ with
respect to $\psi$, $H(\psi)\,t$ with $H$ the multilinear Hessian (which a true implicit
adjoint needs), is estimated from the gradient's own samples by a rule passed in as a
value: `MonteCarlo(hessian=setfix.PairwiseHessian())`.
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ._evaluator import batched_readout


class AbstractHessianRule(eqx.Module):
    r"""A rule for $H(\psi)\,t$ from the samples $S_k$ of one Monte Carlo gradient
    estimate and their differences $D_{ki} = F(S_k + i) - F(S_k - i)$."""

    @property
    @abc.abstractmethod
    def symmetric(self) -> bool:
        """Whether the estimate is symmetric in $(i, j)$ when the samples are shared by
        all coordinates (so a root-form solve may use a symmetric linear solver)."""

    @abc.abstractmethod
    def hvp(
        self,
        readout: Callable,
        embedding: Float[Array, "n h"],
        psi: Float[Array, " n"],
        mask: Bool[Array, " n"],
        subsets: Float[Array, "m c n"],
        differences: Float[Array, "m n"],
        tangent: Float[Array, " n"],
    ) -> Float[Array, " n"]:
        r"""The estimate of $H(\psi)\,t$ (`tangent` is zero on padding). `subsets` are
        the samples' indicator vectors ($c = 1$ when shared by all coordinates, $c = n$
        when drawn per coordinate) and `differences` the $D_{ki}$."""


def own_bit(subsets, n):
    """S[k, i] = 1[i in S_k^{(i)}], the bit of coordinate i in its own sample."""
    if subsets.shape[1] == 1:
        return subsets[:, 0, :]
    return jnp.diagonal(subsets, axis1=1, axis2=2)


class ScoreHessian(AbstractHessianRule):
    r"""The score-function estimator, with the leave-one-out mean $b_{ki}$ of
    $D_{\cdot i}$ as baseline:

    $$(H t)_i \approx \frac{1}{m} \sum_k (D_{ki} - b_{ki}) \sum_{j \ne i}
    \frac{\mathbb 1[j \in S_k] - \psi_j}{\psi_j (1 - \psi_j)}\, t_j.$$

    Unbiased, and costs nothing beyond the gradient's own readouts. The default of
    [`setfix.MonteCarlo`][].
    """

    @property
    def symmetric(self) -> bool:
        return False

    def hvp(self, readout, embedding, psi, mask, subsets, differences, tangent):
        del readout, embedding
        m = differences.shape[0]
        if m > 1:
            baseline = (jnp.sum(differences, axis=0) - differences) / (m - 1)
        else:
            baseline = jnp.zeros_like(differences)
        var = psi * (1 - psi)
        valid = mask & (var > 0)
        weights = jnp.where(valid, (subsets - psi) / jnp.where(valid, var, 1), 0)
        weighted = weights @ tangent  # (m, c): sum over all j
        own = own_bit(weights, psi.shape[0]) * tangent  # the j = i term, removed
        return jnp.mean((differences - baseline) * (weighted - own), axis=0)


ScoreHessian.__init__.__doc__ = """**Arguments:** none."""


class PairwiseHessian(AbstractHessianRule):
    r"""Unbiased second differences on the gradient's samples,

    $$H_{ij} \approx \frac{1}{m} \sum_k F(S_k{+}i{+}j) - F(S_k{+}i{-}j)
    - F(S_k{-}i{+}j) + F(S_k{-}i{-}j) \quad (i \ne j):$$

    $4 m n^2$ readouts per JVP, `batch_size` samples at a time (memory
    $O(\text{batch\_size} \cdot n^2 h)$).
    """

    batch_size: int = eqx.field(default=4, static=True)

    def __check_init__(self):
        if (not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool)
                or self.batch_size < 1):
            raise ValueError(
                f"`batch_size` must be a positive integer, got {self.batch_size!r}.")

    @property
    def symmetric(self) -> bool:
        return True

    def hvp(self, readout, embedding, psi, mask, subsets, differences, tangent):
        del psi, mask, differences
        m, _, n = subsets.shape
        h = embedding.shape[1]
        own = own_bit(subsets, n)  # (m, n)
        full = jnp.broadcast_to(subsets, (m, n, n))  # S[k, i, j]
        pooled = jnp.broadcast_to(subsets @ embedding, (m, n, h))
        zi = embedding[:, None, :]
        zj = embedding[None, :, :]
        off_diagonal = ~jnp.eye(n, dtype=bool)

        def one_sample(sample):
            own_k, full_k, pooled_k = sample
            # Pooled sum of S_k^{(i)} without i and without j: shape (i, j, h).
            base = pooled_k[:, None, :] - own_k[:, None, None] * zi - full_k[..., None] * zj
            second = (
                batched_readout(readout, base + zi + zj)
                - batched_readout(readout, base + zi)
                - batched_readout(readout, base + zj)
                + batched_readout(readout, base)
            )
            return jnp.where(off_diagonal, second, 0) @ tangent

        per_sample = jax.lax.map(one_sample, (own, full, pooled),
                                 batch_size=min(m, self.batch_size))
        return jnp.mean(per_sample, axis=0)


PairwiseHessian.__init__.__doc__ = """**Arguments:**

- `batch_size`: how many samples' $n \\times n$ second differences are formed at once
    (memory against parallelism; default 4).
"""


class ZeroHessian(AbstractHessianRule):
    r"""$H t = 0$: no dependence of $\hat g$ on $\psi$, which is what autodiff through
    Bernoulli sampling gives, and so what the published implementations compute."""

    @property
    def symmetric(self) -> bool:
        return True

    def hvp(self, readout, embedding, psi, mask, subsets, differences, tangent):
        return jnp.zeros_like(tangent)


ZeroHessian.__init__.__doc__ = """**Arguments:** none."""
