"""Monte Carlo estimation of the multilinear extension, with common random numbers."""

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._estimator import AbstractEstimator
from ._evaluator import batched_readout, closed_form_gradient, is_closed_form


_HESSIANS = ("score", "pairwise", "zero")


class MonteCarlo(AbstractEstimator):
    r"""Estimates $\nabla \tilde F(\psi)$ by sampling $m$ subsets $S_k \sim q(\psi)$:

    $$\hat g_i = \frac{1}{m} \sum_{k=1}^m F(S_k \cup \{i\}) - F(S_k \setminus \{i\}).$$

    The subsets are $S_k = \{j : u_{kj} < \psi_j\}$ for uniforms $u$ drawn once per
    solve, so for a fixed key the estimate is a deterministic function of $\psi$. By
    default the $m$ subsets are shared by all coordinates, which costs one readout of
    $F(S_k)$ and one of $F(S_k \oplus i)$ per sample and item; `per_coordinate=True`
    draws fresh subsets for every coordinate, as the reference code does
    ($m \times n \times n$ random numbers). The uniforms of item $j$ depend only on the
    key and $j$, so padding a set with items does not change its estimate.

    Sampling passes no gradient, so the JVP of $\hat g$ with respect to $\psi$ (the
    multilinear Hessian $H$, which a true implicit adjoint needs) is estimated by the
    rule chosen with `hessian`, on the same samples:

    - `"score"`: the score-function estimator
      $H_{ij} \approx \frac{1}{m}\sum_k (D_{ki} - b_{ki})\,
      \frac{\mathbb 1[j \in S_k] - \psi_j}{\psi_j(1 - \psi_j)}$ ($j \neq i$), with
      $D_{ki} = F(S_k + i) - F(S_k - i)$ and $b_{ki}$ the leave-one-out mean of
      $D_{\cdot i}$ as baseline. Unbiased, costs nothing beyond the gradient.
    - `"pairwise"`: unbiased second differences
      $F(S_k{+}i{+}j) - F(S_k{+}i{-}j) - F(S_k{-}i{+}j) + F(S_k{-}i{-}j)$;
      $4mn^2$ readouts per JVP, a few samples at a time (memory $O(n^2 h)$).
    - `"zero"`: no dependence on $\psi$, which is what autodiff through Bernoulli
      sampling gives and so what the published implementations compute.

    The JVP with respect to the set function's parameters and the item embeddings is
    the exact derivative of $\hat g$ with the samples held fixed.

    A set function whose multilinear extension is known in closed form
    (`closed_form`, e.g. `DeepSet(smooth=True)`) is not sampled: the estimate is then
    exact, and so is its Hessian.
    """

    num_samples: int = 5
    per_coordinate: bool = eqx.field(default=False, kw_only=True)
    hessian: Literal["score", "pairwise", "zero"] = eqx.field(
        default="score", kw_only=True
    )

    def __check_init__(self):
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ValueError(
                f"`num_samples` must be a positive integer, got {self.num_samples!r}."
            )
        if self.hessian not in _HESSIANS:
            raise ValueError(
                f"`hessian` must be one of {_HESSIANS}, got {self.hessian!r}."
            )

    @property
    def symmetric_hessian(self) -> bool:
        # Second differences on shared samples are symmetric in (i, j); the score
        # estimator and per-coordinate samples are not.
        return self.hessian in ("pairwise", "zero") and not self.per_coordinate

    def noise(self, key: PRNGKeyArray, num_items: int) -> Float[Array, "m c n"]:
        m = self.num_samples
        item_keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(num_items))
        if self.per_coordinate:
            # u[k, i, j]: coordinate i's k-th sample, item j; keyed by (i, j).
            pair_keys = jax.vmap(
                jax.vmap(jax.random.fold_in, (None, 0)), (0, None)
            )(item_keys, jnp.arange(num_items))
            u = jax.vmap(jax.vmap(lambda k: jax.random.uniform(k, (m,))))(pair_keys)
            return jnp.transpose(u, (2, 0, 1))
        u = jax.vmap(lambda k: jax.random.uniform(k, (m,)))(item_keys)
        return u.T[:, None, :]

    def value(
        self,
        readout: Callable,
        embedding: Float[Array, "n h"],
        psi: Float[Array, " n"],
        mask: Bool[Array, " n"],
        noise: Float[Array, "m c n"],
    ) -> Float[Array, ""]:
        if is_closed_form(readout):
            return readout.multilinear(embedding, psi, mask)
        subsets = _subsets(psi, mask, jax.lax.stop_gradient(noise))
        return jnp.mean(batched_readout(readout, subsets @ embedding))

    def gradient(
        self,
        readout: Callable,
        embedding: Float[Array, "n h"],
        psi: Float[Array, " n"],
        mask: Bool[Array, " n"],
        noise: Float[Array, "m c n"],
    ) -> Float[Array, " n"]:
        if is_closed_form(readout):
            return closed_form_gradient(readout, embedding, psi, mask)
        noise = jax.lax.stop_gradient(noise)
        return _mc_gradient(readout, embedding, psi, mask, noise, hessian=self.hessian)


MonteCarlo.__init__.__doc__ = """**Arguments:**

- `num_samples`: the number $m$ of sampled subsets.
- `per_coordinate`: draw separate subsets for every coordinate (the reference code's
    scheme, $O(mn^2)$ work) instead of sharing them (the default, $O(mn)$).
- `hessian`: how the JVP with respect to $\\psi$ is estimated: `"score"`,
    `"pairwise"` or `"zero"` (see above).
"""


def _subsets(psi, mask, u):
    """Indicator vectors S[k, c, j] = [u[k, c, j] < psi_j] on the real items."""
    return ((u < psi) & mask).astype(psi.dtype)


def _own_bit(subsets, n):
    """S[k, i] = 1[i in S_k^{(i)}], the bit of coordinate i in its own sample."""
    if subsets.shape[1] == 1:
        return subsets[:, 0, :]
    return jnp.diagonal(subsets, axis1=1, axis2=2)


def _differences(readout, embedding, subsets):
    """D[k, i] = F(S_k^{(i)} + i) - F(S_k^{(i)} - i), from one readout of F(S) and one
    of F(S with bit i toggled) per sample and item."""
    n = embedding.shape[0]
    own = _own_bit(subsets, n)
    sign = 1 - 2 * own  # +1: i is added by the toggle; -1: i is removed
    pooled = subsets @ embedding  # (m, c, h)
    base = batched_readout(readout, pooled)  # (m, c)
    toggled = batched_readout(readout, pooled + sign[..., None] * embedding)  # (m, n, h)
    return sign * (toggled - base)


def _plain_gradient(readout, embedding, psi, mask, noise):
    subsets = _subsets(psi, mask, noise)
    diffs = _differences(readout, embedding, subsets)
    return jnp.where(mask, jnp.mean(diffs, axis=0), 0), (subsets, diffs)


def _score_hvp(psi, mask, subsets, diffs, tangent):
    m = diffs.shape[0]
    if m > 1:
        baseline = (jnp.sum(diffs, axis=0) - diffs) / (m - 1)
    else:
        baseline = jnp.zeros_like(diffs)
    var = psi * (1 - psi)
    valid = mask & (var > 0)
    weights = jnp.where(valid, (subsets - psi) / jnp.where(valid, var, 1), 0)  # (m,c,n)
    weighted = weights @ tangent  # (m, c): sum over all j
    own = _own_bit(weights, psi.shape[0]) * tangent  # the j = i term, removed
    return jnp.mean((diffs - baseline) * (weighted - own), axis=0)


def _pairwise_hvp(readout, embedding, subsets, tangent):
    m, _, n = subsets.shape
    h = embedding.shape[1]
    own = _own_bit(subsets, n)  # (m, n)
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

    # One sample at a time (in small batches): memory O(n^2 h), not O(m n^2 h).
    per_sample = jax.lax.map(one_sample, (own, full, pooled), batch_size=min(m, 4))
    return jnp.mean(per_sample, axis=0)


@eqx.filter_custom_jvp
def _mc_gradient(readout, embedding, psi, mask, noise, *, hessian):
    return _plain_gradient(readout, embedding, psi, mask, noise)[0]


@_mc_gradient.def_jvp
def _mc_gradient_jvp(primals, tangents, *, hessian):
    readout, embedding, psi, mask, noise = primals
    t_readout, t_embedding, t_psi, _, _ = tangents
    grad, (subsets, diffs) = _plain_gradient(readout, embedding, psi, mask, noise)
    t_grad = jnp.zeros_like(grad)
    if not (_is_zero(t_readout) and _is_zero(t_embedding)):

        def of_model(readout, embedding):
            return _plain_gradient(readout, embedding, psi, mask, noise)[0]

        t_readout = _materialise(readout, t_readout)
        t_embedding = _materialise(embedding, t_embedding)
        _, t_model = eqx.filter_jvp(
            of_model, (readout, embedding), (t_readout, t_embedding)
        )
        t_grad = t_grad + t_model
    if t_psi is not None and hessian != "zero":
        t_psi = jnp.where(mask, t_psi, 0)
        if hessian == "score":
            hvp = _score_hvp(psi, mask, subsets, diffs, t_psi)
        else:
            hvp = _pairwise_hvp(readout, embedding, subsets, t_psi)
        t_grad = t_grad + jnp.where(mask, hvp, 0)
    return grad, t_grad


def _is_zero(tangent):
    return all(leaf is None for leaf in jtu.tree_leaves(tangent, is_leaf=_is_none))


def _is_none(x):
    return x is None


def _materialise(primal, tangent):
    """Replaces symbolic-zero (None) tangents of inexact arrays by zeros."""

    def fill(p, t):
        if t is None and eqx.is_inexact_array(p):
            return jnp.zeros_like(p)
        return t

    return jtu.tree_map(fill, primal, tangent, is_leaf=_is_none)
