"""The superset-aware DeepSet: a subset's value conditioned on a summary of its
ground set."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._contextual import (
    AbstractContextualSetFunction,
    AbstractSmoothContextual,
    FoldedReadout,
    masked_mean,
    split_first_layer,
)
from ._encoders import AbstractEncoder, item_encoder
from ._interactions import check_pairwise_options, init_pairwise, PairwiseTerms
from ._set_function import check_widths


class SupersetDeepSet(AbstractSmoothContextual):
    r"""A DeepSet that also sees its ground set (as INSET, Xie et al., ICLR 2024):

    $$F(S, V) = \rho\Big(\sum_{i \in S} \phi(v_i),\; g(V)\Big), \qquad
    g(V) = \frac{1}{|V|} \sum_{i \in V} \chi(\phi(v_i)),$$

    $\rho$ an MLP on the concatenation (`depth` hidden ReLU layers of `width`), $\chi$
    a one-hidden-layer MLP, so that what a subset is worth can depend on what else was
    on offer. $g(V)$ is computed once per ground set, and in the folded form
    $\rho$'s first layer splits into a per-item part folded into the embeddings and a
    per-set bias $W_g\, g(V) + b$: a readout of $F(S \pm i)$ costs what a DeepSet's
    does.

    With `smooth=True` it is instead a certified pairwise energy (as
    `DeepSet(smooth=True)`) whose item scores see the ground set,
    $m_i = \text{MLP}(\phi(v_i), g(V))$: the multilinear extension stays exact and
    [`interaction_bound`][setfix.AbstractSetFunction.interaction_bound] exact up to
    the triangle inequality, for [`setfix.CertifiedScaling`][].
    """

    phi: eqx.nn.Linear | AbstractEncoder
    summary: eqx.nn.MLP
    rho: eqx.nn.MLP
    terms: PairwiseTerms | None

    def __init__(
        self,
        in_features: int | None = None,
        *,
        encoder: AbstractEncoder | None = None,
        hidden: int | None = None,
        width: int = 500,
        depth: int = 2,
        smooth: bool = False,
        rank: int = 16,
        kernel_features: int = 256,
        kernel_dims: int = 4,
        key: PRNGKeyArray,
    ):
        check_widths(width, depth)
        check_pairwise_options(rank, kernel_features, kernel_dims)
        phi_key, summary_key, rho_key, pair_key, kernel_key = jax.random.split(key, 5)
        self.phi, hidden = item_encoder(in_features, encoder, hidden, phi_key)
        self.summary = eqx.nn.MLP(hidden, hidden, hidden, 1, activation=jax.nn.relu,
                                  key=summary_key)
        self.rho = eqx.nn.MLP(2 * hidden, "scalar", width, depth, activation=jax.nn.relu,
                              key=rho_key)
        self.terms = (init_pairwise(hidden, rank, kernel_features, kernel_dims, pair_key,
                                    kernel_key) if smooth else None)

    def embed(self, items: Float[Array, "n ..."]) -> Float[Array, "n e"]:
        phi = jax.vmap(self.phi)(items)
        return jnp.concatenate([phi, jax.vmap(self.summary)(phi)], axis=1)

    def context(self, embedding, mask):
        phi, summary = jnp.split(embedding, 2, axis=1)
        ground = masked_mean(summary, mask)
        if self.terms is None:
            return phi, ground
        with_ground = jnp.concatenate(
            [phi, jnp.broadcast_to(ground, phi.shape)], axis=1)
        return self.terms.rows(phi, jax.vmap(self.rho)(with_ground)), None

    def readout(self, pooled, context):
        if self.terms is None:
            return self.rho(jnp.concatenate([pooled, context]))
        return self.terms.value(pooled)

    def folded(self) -> AbstractContextualSetFunction:
        r"""The same function with $\rho$'s first layer $W_s s + W_g g + b$ folded: the
        item rows become $W_s \phi(v_i)$, the context the bias $W_g\, g(V) + b$ (the
        mean of $W_g \chi(\phi(v_i))$), and the readout $\rho$'s other layers on
        $s' + c$. `self` when smooth or when $\rho$ has no hidden layer."""
        if self.terms is not None or self.rho.depth == 0:
            return self
        weight, bias, head = split_first_layer(self.rho)
        hidden = weight.shape[1] // 2
        return _FoldedSupersetDeepSet(self.phi, self.summary, weight[:, :hidden],
                                      weight[:, hidden:], bias, head)


SupersetDeepSet.__init__.__doc__ = r"""**Arguments:**

- `in_features`: the dimension $d$ of each item's feature vector, for a linear $\phi$.
- `encoder`: instead of `in_features`, the per-item encoder $\phi$.
- `hidden`: the dimension of $\phi(v)$ and of the ground-set summary $g(V)$ (256 by
    default; with an `encoder`, its `out_features`).
- `width`, `depth`: the hidden layers of $\rho$ (with `smooth=True`, of the item
    score's MLP).
- `smooth`: the certified pairwise energy with ground-set-aware item scores.
- `rank`, `kernel_features`, `kernel_dims`: with `smooth=True`, the pairwise terms, as
    in [`setfix.DeepSet`][].
- `key`: a JAX PRNG key for the initialisation.
"""


class _FoldedSupersetDeepSet(AbstractContextualSetFunction):
    """A `SupersetDeepSet` with the first layer of rho folded (see its `folded`)."""

    phi: eqx.nn.Linear | AbstractEncoder
    summary: eqx.nn.MLP
    set_weight: Float[Array, "width h"]
    context_weight: Float[Array, "width h"]
    bias: Float[Array, " width"]
    head: FoldedReadout

    def embed(self, items):
        phi = jax.vmap(self.phi)(items)
        return jnp.concatenate([phi @ self.set_weight.T,
                                jax.vmap(self.summary)(phi) @ self.context_weight.T], axis=1)

    def context(self, embedding: Float[Array, "n e"], mask: Bool[Array, " n"]):
        rows, summary = jnp.split(embedding, 2, axis=1)
        return rows, masked_mean(summary, mask) + self.bias

    def readout(self, pooled, context):
        return self.head(pooled, context)
