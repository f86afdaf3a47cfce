"""Monte Carlo estimation of the multilinear extension, with common random numbers."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._estimator import AbstractEstimator
from ._evaluator import batched_readout, closed_form_gradient, is_closed_form
from ._hessian import AbstractHessianRule, own_bit, PairwiseHessian, ScoreHessian, ZeroHessian


_NAMED = {"score": ScoreHessian(), "pairwise": PairwiseHessian(), "zero": ZeroHessian()}


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
    multilinear Hessian $H$, which a true implicit adjoint needs) is estimated on the
    same samples by the rule passed as `hessian`: [`setfix.ScoreHessian`][] (the
    default: unbiased, no extra readouts), [`setfix.PairwiseHessian`][] (unbiased
    second differences, $4mn^2$ readouts per JVP) or [`setfix.ZeroHessian`][] (what
    autodiff through Bernoulli sampling gives, and so what the published
    implementations compute).

    The JVP with respect to the set function's parameters and the item embeddings is
    the exact derivative of $\hat g$ with the samples held fixed.

    A set function whose multilinear extension is known in closed form
    (`closed_form`, e.g. `DeepSet(smooth=True)`) is not sampled: the estimate is then
    exact, and so is its Hessian.

    On large ground sets (when the $m \times n$ toggled pooled sums would hold more
    than $2^{22}$ entries) the toggled readouts run in blocks of items, each recomputed
    in the backward pass, so memory stays bounded: one training gradient on 100,000
    items peaks at 1.7 GiB instead of 5.8 GiB (`python -m benchmarks large_sets`).
    """

    num_samples: int = 5
    per_coordinate: bool = eqx.field(default=False, kw_only=True)
    hessian: AbstractHessianRule = eqx.field(default=ScoreHessian(), kw_only=True)

    def __check_init__(self):
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ValueError(
                f"`num_samples` must be a positive integer, got {self.num_samples!r}."
            )
        if not isinstance(self.hessian, AbstractHessianRule):
            named = _NAMED.get(self.hessian) if isinstance(self.hessian, str) else None
            instead = f" (use `hessian=setfix.{named!r}`)" if named is not None else ""
            raise TypeError(
                "`hessian` must be a Hessian rule such as `setfix.ScoreHessian()`, "
                f"`setfix.PairwiseHessian()` or `setfix.ZeroHessian()`, got "
                f"{self.hessian!r}{instead}."
            )

    @property
    def symmetric_hessian(self) -> bool:
        # Second differences on shared samples are symmetric in (i, j); the score
        # estimator and per-coordinate samples are not.
        return self.hessian.symmetric and not self.per_coordinate

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
- `hessian`: the [`setfix.AbstractHessianRule`][] that estimates the JVP with respect
    to $\\psi$ (default [`setfix.ScoreHessian`][]).
"""


def _subsets(psi, mask, u):
    """Indicator vectors S[k, c, j] = [u[k, c, j] < psi_j] on the real items."""
    return ((u < psi) & mask).astype(psi.dtype)


# The toggled readouts of shared samples are evaluated in blocks of items when all of
# them at once would hold more than this many pooled-sum entries (m * n * h): 2**22
# float32 entries are 16 MiB per block. Each block is recomputed in the backward pass
# rather than stored, so memory stays bounded on large ground sets.
BLOCK_ENTRIES = 2**22


def _differences(readout, embedding, subsets):
    """D[k, i] = F(S_k^{(i)} + i) - F(S_k^{(i)} - i), from one readout of F(S) and one
    of F(S with bit i toggled) per sample and item."""
    n = embedding.shape[0]
    own = own_bit(subsets, n)
    sign = 1 - 2 * own  # +1: i is added by the toggle; -1: i is removed
    pooled = subsets @ embedding  # (m, c, h)
    base = batched_readout(readout, pooled)  # (m, c)
    return sign * (_toggled(readout, pooled, sign, embedding) - base)


def _toggled(readout, pooled, sign, embedding):
    """F(S_k with bit i toggled) for every sample k and item i, shape (m, n): the readout
    of pooled_k + sign_ki * embedding_i, in blocks of items when that is large."""
    m, n = sign.shape
    h = embedding.shape[-1]
    if pooled.shape[1] != 1 or m * n * h <= BLOCK_ENTRIES:
        return batched_readout(readout, pooled + sign[..., None] * embedding)
    block = max(1, BLOCK_ENTRIES // (m * h))
    num_blocks = -(-n // block)
    pad = num_blocks * block - n
    signs = jnp.pad(sign, ((0, 0), (0, pad))).reshape(m, num_blocks, block)
    rows = jnp.pad(embedding, ((0, pad), (0, 0))).reshape(num_blocks, block, h)

    @jax.checkpoint
    def one_block(args):
        s, e = args  # (m, block), (block, h)
        return batched_readout(readout, pooled + s[..., None] * e)  # (m, block)

    out = jax.lax.map(one_block, (jnp.moveaxis(signs, 1, 0), rows))  # (blocks, m, block)
    return jnp.moveaxis(out, 0, 1).reshape(m, num_blocks * block)[:, :n]


def _plain_gradient(readout, embedding, psi, mask, noise):
    subsets = _subsets(psi, mask, noise)
    diffs = _differences(readout, embedding, subsets)
    return jnp.where(mask, jnp.mean(diffs, axis=0), 0), (subsets, diffs)


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
    if t_psi is not None:
        t_psi = jnp.where(mask, t_psi, 0)
        hvp = hessian.hvp(readout, embedding, psi, mask, subsets, diffs, t_psi)
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
