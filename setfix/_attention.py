"""The attention energy: item embeddings that have attended to their ground set, then a
DeepSet's pooled readout."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._contextual import (
    AbstractContextualSetFunction,
    AbstractSmoothContextual,
    FoldedReadout,
    split_first_layer,
)
from ._encoders import AbstractEncoder, item_encoder
from ._interactions import check_pairwise_options, init_pairwise, PairwiseTerms
from ._set_function import check_widths


class _AttentionBlock(eqx.Module):
    r"""Set Transformer's MAB: $H = \text{LN}(X + \text{Attention}(X, Y, Y))$, then
    $\text{LN}(H + \text{rFF}(H))$."""

    attention: eqx.nn.MultiheadAttention
    feedforward: eqx.nn.MLP
    norms: tuple[eqx.nn.LayerNorm, eqx.nn.LayerNorm]

    def __init__(self, size: int, heads: int, key: PRNGKeyArray):
        attention_key, feedforward_key = jax.random.split(key)
        self.attention = eqx.nn.MultiheadAttention(heads, size, key=attention_key)
        self.feedforward = eqx.nn.MLP(size, size, size, 1, activation=jax.nn.relu,
                                      key=feedforward_key)
        self.norms = (eqx.nn.LayerNorm(size), eqx.nn.LayerNorm(size))

    def __call__(self, x, y, mask=None):
        first, second = self.norms
        keys = None if mask is None else jnp.broadcast_to(mask, (x.shape[0], y.shape[0]))
        h = jax.vmap(first)(x + self.attention(x, y, y, mask=keys))
        return jax.vmap(second)(h + jax.vmap(self.feedforward)(h))


class InducedAttention(eqx.Module):
    r"""One induced set-attention block (ISAB, Lee et al., ICML 2019): $m$ learned
    inducing points attend to the real items of the ground set, then every item
    attends to what they gathered,

    $$\text{ISAB}(X) = \text{MAB}\big(X, \text{MAB}(I, X)\big),$$

    at $O(nm)$ cost instead of self-attention's $O(n^2)$. Padded items are never
    attended to, so they change no real item's output."""

    inducing: Float[Array, "m h"]
    gather: _AttentionBlock
    scatter: _AttentionBlock

    def __init__(self, size: int, *, inducing: int = 16, heads: int = 4,
                 key: PRNGKeyArray):
        for name, value in (("size", size), ("inducing", inducing), ("heads", heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if size % heads:
            raise ValueError(f"`heads` ({heads}) must divide the embedding size ({size}).")
        point_key, gather_key, scatter_key = jax.random.split(key, 3)
        self.inducing = jax.random.normal(point_key, (inducing, size)) / size**0.5
        self.gather = _AttentionBlock(size, heads, gather_key)
        self.scatter = _AttentionBlock(size, heads, scatter_key)

    def __call__(self, x: Float[Array, "n h"], mask: Bool[Array, " n"]) -> Float[Array, "n h"]:
        gathered = self.gather(self.inducing, x, mask)
        return self.scatter(x, gathered)


InducedAttention.__init__.__doc__ = """**Arguments:**

- `size`: the dimension of the item embeddings.
- `inducing`: the number $m$ of inducing points.
- `heads`: the number of attention heads (must divide `size`).
- `key`: a JAX PRNG key for the initialisation.
"""


class AttentionSet(AbstractSmoothContextual):
    r"""A DeepSet on item embeddings that have attended to their ground set:

    $$F(S, V) = \rho\Big(\sum_{i \in S} x_i(V)\Big), \qquad
    X(V) = \text{ISAB}^{(k)} \circ \dots \circ \text{ISAB}^{(1)}\big(\phi(V)\big),$$

    `blocks` induced set-attention blocks ([`setfix.InducedAttention`][]), so each
    item's embedding depends on what else is in $V$ (a near-duplicate can learn to
    look redundant). The attention runs once per ground set, before the solve; inside
    the fixed-point loop only the pooled readout runs, and in the folded form $\rho$'s
    first layer is folded into the attended rows, so estimators cost what they cost on
    a [`setfix.DeepSet`][].

    With `smooth=True` it is instead a certified pairwise energy (as
    `DeepSet(smooth=True)`) on the attended embeddings: scores $m_i$ and pairwise
    features $a_i, b_i$ of $x_i(V)$, the multilinear extension exact and the
    interaction bound exact up to the triangle inequality.
    """

    phi: eqx.nn.Linear | AbstractEncoder
    blocks: tuple[InducedAttention, ...]
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
        blocks: int = 2,
        inducing: int = 16,
        heads: int = 4,
        smooth: bool = False,
        rank: int = 16,
        kernel_features: int = 256,
        kernel_dims: int = 4,
        key: PRNGKeyArray,
    ):
        check_widths(width, depth)
        check_pairwise_options(rank, kernel_features, kernel_dims)
        if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < 0:
            raise ValueError(f"`blocks` must be a non-negative integer, got {blocks!r}.")
        phi_key, block_key, rho_key, pair_key, kernel_key = jax.random.split(key, 5)
        self.phi, hidden = item_encoder(in_features, encoder, hidden, phi_key)
        self.blocks = tuple(
            InducedAttention(hidden, inducing=inducing, heads=heads, key=k)
            for k in jax.random.split(block_key, blocks))
        self.rho = eqx.nn.MLP(hidden, "scalar", width, depth, activation=jax.nn.relu,
                              key=rho_key)
        self.terms = (init_pairwise(hidden, rank, kernel_features, kernel_dims, pair_key,
                                    kernel_key) if smooth else None)

    def embed(self, items: Float[Array, "n ..."]) -> Float[Array, "n h"]:
        return jax.vmap(self.phi)(items)

    def attend(self, embedding: Float[Array, "n h"], mask: Bool[Array, " n"]
               ) -> Float[Array, "n h"]:
        """The item embeddings after every attention block."""
        for block in self.blocks:
            embedding = block(embedding, mask)
        return embedding

    def context(self, embedding, mask):
        x = self.attend(embedding, mask)
        if self.terms is None:
            return x, None
        return self.terms.rows(x, jax.vmap(self.rho)(x)), None

    def readout(self, pooled, context):
        del context
        return self.rho(pooled) if self.terms is None else self.terms.value(pooled)

    def folded(self) -> AbstractContextualSetFunction:
        r"""The same function with $\rho$'s first layer $Wx + b$ folded into the
        attended rows ($W x_i(V)$, once per ground set) and $b$ carried as the context;
        `self` when smooth or when $\rho$ has no hidden layer."""
        if self.terms is not None or self.rho.depth == 0:
            return self
        weight, bias, head = split_first_layer(self.rho)
        return _FoldedAttentionSet(self, weight, bias, head)


AttentionSet.__init__.__doc__ = r"""**Arguments:**

- `in_features`: the dimension $d$ of each item's feature vector, for a linear $\phi$.
- `encoder`: instead of `in_features`, the per-item encoder $\phi$.
- `hidden`: the dimension of the item embeddings (256 by default; with an `encoder`,
    its `out_features`).
- `width`, `depth`: the hidden layers of $\rho$ (with `smooth=True`, of the item
    score's MLP).
- `blocks`: the number of induced set-attention blocks (0: a DeepSet).
- `inducing`, `heads`: each block's inducing points and attention heads.
- `smooth`: the certified pairwise energy on the attended embeddings.
- `rank`, `kernel_features`, `kernel_dims`: with `smooth=True`, the pairwise terms, as
    in [`setfix.DeepSet`][].
- `key`: a JAX PRNG key for the initialisation.
"""


class _FoldedAttentionSet(AbstractContextualSetFunction):
    """An `AttentionSet` with the first layer of rho folded (see its `folded`)."""

    energy: AttentionSet
    weight: Float[Array, "width h"]
    bias: Float[Array, " width"]
    head: FoldedReadout

    def embed(self, items):
        return self.energy.embed(items)

    def context(self, embedding, mask):
        return self.energy.attend(embedding, mask) @ self.weight.T, self.bias

    def readout(self, pooled, context):
        return self.head(pooled, context)
