"""Set functions F_θ(S, V) as Equinox modules."""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._encoders import AbstractEncoder, item_encoder
from ._interactions import (
    check_pairwise_options,
    init_pairwise,
    PairwiseTerms,
    spectral_bound,
)


class AbstractSetFunction(eqx.Module):
    r"""A learnable set function $F_\theta(S, V)$.

    Called as `f(items, subset)`, where `items` holds the features of the $n$ items of
    the ground set $V$ (one row each) and `subset` is the indicator vector of
    $S \subseteq V$ (entries in $\{0, 1\}$). Returns the scalar $F_\theta(S, V)$.

    Subclasses whose value depends on $S$ only through a pooled sum of per-item
    embeddings should subclass [`setfix.AbstractPooledSetFunction`][] instead, so that
    estimators run the per-item encoder once per ground set.
    """

    @abc.abstractmethod
    def __call__(
        self, items: Float[Array, "n ..."], subset: Float[Array, " n"]
    ) -> Float[Array, ""]:
        """Evaluate $F_\\theta(S, V)$ for the subset with indicator vector `subset`."""

    def interaction_bound(
        self, embedding: Float[Array, "*batch n h"], mask: Bool[Array, "*batch n"]
    ) -> Float[Array, " *batch"]:
        r"""An upper bound, per ground set, on $\sup_\psi \lVert H(\psi) \rVert_2$,
        the spectral norm of the multilinear Hessian (the averaged second differences
        $F(S{+}i{+}j) - F(S{+}i) - F(S{+}j) + F(S)$ over the real items).

        It certifies the mean-field map: $T(\psi) = \sigma(c \nabla \tilde F)$ is a
        contraction with $\omega \le c B / 4$ (see [`setfix.CertifiedScaling`][]).
        `embedding` is what the set function's pooled form embeds the ground set to
        (`embed(items)` of its `folded()` form for a pooled set function; the identity
        for others). The default raises: only set functions that can bound their
        interactions (e.g. `setfix.DeepSet(..., smooth=True)`) are certified.
        """
        raise TypeError(
            f"{type(self).__name__} has no interaction certificate: use a set function "
            "that bounds its interactions, such as `setfix.DeepSet(..., smooth=True)`, "
            "or a scaling other than `setfix.CertifiedScaling`."
        )


class AbstractPooledSetFunction(AbstractSetFunction):
    r"""A set function of the form $F(S, V) = \rho\big(\sum_{i \in S} \phi(v_i)\big)$.

    Subclasses implement `embed` ($\phi$, applied to every item once) and `readout`
    ($\rho$, applied to a pooled sum). Estimators use the split to compute
    $F(S \pm i)$ from pooled sums $s \pm \phi(v_i)$ without re-running $\phi$.
    """

    @abc.abstractmethod
    def embed(self, items: Float[Array, "n ..."]) -> Float[Array, "n h"]:
        r"""The per-item embeddings $\phi(v_i)$, one row per item. Row $i$ must depend
        on item $i$ alone: on [`setfix.PooledItems`][] the embedding is computed once
        for a table of items shared by several sets and gathered."""

    @abc.abstractmethod
    def readout(self, pooled: Float[Array, " h"]) -> Float[Array, ""]:
        r"""The value $\rho(s)$ of a pooled sum $s = \sum_{i \in S} \phi(v_i)$."""

    @property
    def closed_form(self) -> bool:
        """Whether [`multilinear`][setfix.AbstractPooledSetFunction.multilinear] gives
        the multilinear extension exactly, so estimators need not sample it."""
        return False

    def multilinear(
        self, embedding: Float[Array, "n h"], psi: Float[Array, " n"],
        mask: Bool[Array, " n"],
    ) -> Float[Array, ""]:
        r"""The multilinear extension $\tilde F(\psi)$ over the real items, in closed
        form, from the set's `embedding`; only for set functions with `closed_form`.
        Estimators then return it and its autodiff gradient and Hessian (exact)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form multilinear "
                                  "extension.")

    def folded(self) -> "AbstractPooledSetFunction":
        r"""An equivalent pooled set function (the same $F(S, V)$ for every $S$ and
        $V$) that is cheaper to evaluate many times on one ground set. Estimators and
        solvers call it once per solve and evaluate its `readout` on pooled sums of its
        `embed`. The default is `self`; [`setfix.DeepSet`][] folds the first linear
        layer of $\rho$ into the embeddings."""
        return self

    def __call__(
        self, items: Float[Array, "n ..."], subset: Float[Array, " n"]
    ) -> Float[Array, ""]:
        return self.readout(subset @ self.embed(items))


def check_widths(width: int, depth: int) -> None:
    """Clear errors for the width and depth of an MLP readout."""
    if (not isinstance(width, int) or not isinstance(depth, int) or width < 1
            or depth < 0):
        raise ValueError(
            f"`width` must be positive and `depth` non-negative, got width={width!r}, "
            f"depth={depth!r}.")


class AddBias(eqx.Module):
    """What is left of a linear layer whose weight was folded into the embeddings."""

    bias: Float[Array, " out"] | None

    def __call__(self, x: Float[Array, " out"]) -> Float[Array, " out"]:
        return x if self.bias is None else x + self.bias


class _FoldedDeepSet(AbstractPooledSetFunction):
    r"""A DeepSet with $\rho$'s first layer $x \mapsto Wx + b$ folded into the
    embeddings: $\phi'(v) = W\phi(v)$ and $\rho'(s') = \rho_{>1}(s' + b)$, so that
    $\rho'(\sum_{i \in S} \phi'(v_i)) = \rho(\sum_{i \in S} \phi(v_i))$: the same
    function, up to rounding. A readout of $F(S \pm i)$ then starts from one add of
    precomputed rows, $s' \pm \phi'(v_i)$, instead of a matmul."""

    phi: eqx.nn.Linear | AbstractEncoder
    weight: Float[Array, "width h"]
    rho: eqx.nn.MLP

    def embed(self, items: Float[Array, "n ..."]) -> Float[Array, "n width"]:
        return jax.vmap(self.phi)(items) @ self.weight.T

    def readout(self, pooled: Float[Array, " width"]) -> Float[Array, ""]:
        return self.rho(pooled)


class DeepSet(AbstractPooledSetFunction):
    r"""The DeepSet set function of the reference models:
    $F(S, V) = \rho\big(\sum_{i \in S} \phi(v_i)\big)$ with $\rho$ an MLP
    (`depth` hidden layers of `width` units with ReLU, then a linear scalar output) and
    $\phi$ a linear map $\phi(v) = W v + b$, or any [`setfix.AbstractEncoder`][] (an MLP
    over fingerprints, a CNN over images).

    With `smooth=True` it is instead a *pairwise* energy whose interactions are
    certified: the MLP (`width`, `depth`) scores each item, $m_i = \text{MLP}(\phi(v_i))$,
    and repulsive features $a_i$ and attractive features $b_i$ make items substitutes
    or complements,

    $$F(S, V) = \sum_{i \in S} m_i - \tfrac12 \Big\lVert \sum_{i \in S} a_i
    \Big\rVert^2 + \tfrac12 \Big\lVert \sum_{i \in S} b_i \Big\rVert^2,$$

    a pooled function of the rows $(m_i, a_i, b_i)$: taking two items with similar $a$
    costs $a_i^\top a_j$, two with similar $b$ gains $b_i^\top b_j$. Here
    $b_i = Q\phi(v_i)$ and $a_i = (P\phi(v_i),\; s\, z(C\phi(v_i)))$: a low-rank
    term and a *local* one, $z$ the random Fourier features of a Gaussian kernel on
    learned coordinates $C\phi(v_i)$ (`kernel_dims` of them), so that
    $s^2 z_i^\top z_j \approx s^2 e^{-\lVert C\phi_i - C\phi_j \rVert^2/2}$ repels
    near-duplicates without repelling everything (a low-rank Gram matrix cannot be
    local). Its multilinear extension is known in closed form, so estimators compute
    $\nabla \tilde F$ and its Hessian exactly (no sampling, at
    $O(n \cdot (2\,\text{rank} + \text{kernel\_features}))$ per step), and its
    [`interaction_bound`][setfix.AbstractSetFunction.interaction_bound] is exact up to
    the triangle inequality, for [`setfix.CertifiedScaling`][]: a mean-field map that
    provably contracts while $\psi$ is free to approach 0 and 1.
    """

    phi: eqx.nn.Linear | AbstractEncoder
    rho: eqx.nn.MLP
    pairwise: Float[Array, "2*rank h"] | None
    kernel: Float[Array, "kernel_dims h"] | None
    kernel_scale: Float[Array, ""] | None
    smooth: bool = eqx.field(static=True)
    kernel_features: int = eqx.field(static=True)

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
        phi_key, rho_key, pair_key, kernel_key = jax.random.split(key, 4)
        self.phi, hidden = item_encoder(in_features, encoder, hidden, phi_key)
        self.rho = eqx.nn.MLP(
            hidden, "scalar", width, depth, activation=jax.nn.relu, key=rho_key
        )
        self.smooth = bool(smooth)
        terms = (init_pairwise(hidden, rank, kernel_features, kernel_dims, pair_key,
                               kernel_key) if smooth else None)
        self.pairwise = None if terms is None else terms.pairwise
        self.kernel = None if terms is None else terms.kernel
        self.kernel_scale = None if terms is None else terms.kernel_scale
        self.kernel_features = 0 if terms is None else terms.kernel_features

    @property
    def rank(self) -> int:
        """The rank of each pairwise term (0 unless `smooth`)."""
        return 0 if self.pairwise is None else self.pairwise.shape[0] // 2

    @property
    def _terms(self) -> PairwiseTerms | None:
        if self.pairwise is None:
            return None
        return PairwiseTerms(self.pairwise, self.kernel, self.kernel_scale,
                             self.kernel_features)

    def embed(self, items: Float[Array, "n ..."]) -> Float[Array, "n h"]:
        phi = jax.vmap(self.phi)(items)
        terms = self._terms
        return phi if terms is None else terms.rows(phi, jax.vmap(self.rho)(phi))

    def readout(self, pooled: Float[Array, " h"]) -> Float[Array, ""]:
        terms = self._terms
        return self.rho(pooled) if terms is None else terms.value(pooled)

    @property
    def closed_form(self) -> bool:  # pyright: ignore
        return self.pairwise is not None

    def multilinear(self, embedding, psi, mask):
        terms = self._terms
        if terms is None:
            return super().multilinear(embedding, psi, mask)
        return terms.multilinear(embedding, psi, mask)

    def interaction_bound(self, embedding, mask):
        terms = self._terms
        if terms is None:
            return super().interaction_bound(embedding, mask)
        return terms.interaction_bound(embedding, mask)

    def folded(self) -> AbstractPooledSetFunction:
        """This DeepSet with the first linear layer of $\\rho$ folded into the item
        embeddings (see [`setfix.AbstractPooledSetFunction.folded`][]); `self` when
        $\\rho$ has no hidden layer or the DeepSet is smooth (its readout is already a
        few sums of squares)."""
        if self.rho.depth == 0 or self.pairwise is not None:
            return self
        first = self.rho.layers[0]
        rest = eqx.tree_at(lambda r: r.layers[0], self.rho, AddBias(first.bias))
        return _FoldedDeepSet(self.phi, first.weight, rest)


DeepSet.__init__.__doc__ = r"""**Arguments:**

- `in_features`: the dimension $d$ of each item's feature vector, for a linear $\phi$.
- `encoder`: instead of `in_features`, the per-item encoder $\phi$, e.g. a
    [`setfix.CNNEncoder`][] for images.
- `hidden`: the dimension of the item embedding $\phi(v)$ (256 by default; with an
    `encoder`, its `out_features`).
- `width`: the width of each hidden layer of $\rho$ (with `smooth=True`, of the item
    score's MLP).
- `depth`: the number of hidden layers of $\rho$ (of the item score's MLP).
- `smooth`: the certified pairwise energy above instead of $\rho(\sum \phi)$.
- `rank`: with `smooth=True`, the rank of the repulsive ($P$) and of the attractive
    ($Q$) low-rank term.
- `kernel_features`, `kernel_dims`: with `smooth=True`, the number $D$ of random
    Fourier features and of learned coordinates of the local repulsive kernel (both 0:
    no local term, as in smooth DeepSets saved before the term existed). The default
    of `kernel_features` was 64 before version 0.1.0's commit 274819d: pass 64 to load
    a smooth energy saved then.
- `key`: a JAX PRNG key for the initialisation.
"""


class TableSetFunction(AbstractSetFunction):
    r"""An explicit set function on $n$ items, given by its table of $2^n$ values.

    `values[b]` is $F(S)$ for the subset $S$ whose bitmask is `b` (item $i$ is bit $i$).
    Item features are ignored; only their number is checked. Meant for theory and tests.
    """

    values: Float[Array, " subsets"]

    def __init__(self, values: Float[Array, " subsets"]):
        values = jnp.asarray(values)
        if values.ndim != 1 or values.shape[0] < 2:
            raise ValueError(
                "`values` must be a 1-d array of length 2**n with n >= 1, got shape "
                f"{values.shape}."
            )
        n = int(round(math.log2(values.shape[0])))
        if 2**n != values.shape[0]:
            raise ValueError(
                f"`values` must have length 2**n, got length {values.shape[0]}."
            )
        if not jnp.issubdtype(values.dtype, jnp.floating):
            values = values.astype(float)
        self.values = values

    @property
    def num_items(self) -> int:
        """The number $n$ of items the table is defined on."""
        return int(round(math.log2(self.values.shape[0])))

    def __call__(
        self, items: Float[Array, "n ..."], subset: Float[Array, " n"]
    ) -> Float[Array, ""]:
        n = self.num_items
        if subset.shape != (n,):
            raise ValueError(
                f"`subset` must have shape ({n},) for a table on {n} items, got "
                f"{subset.shape}."
            )
        bits = jnp.round(subset).astype(jnp.int32)
        index = jnp.sum(bits << jnp.arange(n, dtype=jnp.int32))
        return self.values[index]

    def interaction_bound(self, embedding, mask):
        r"""$\lVert D \rVert_2$ for $D_{ij} = \max_S |F(S{+}i{+}j) - F(S{+}i) -
        F(S{+}j) + F(S)|$ over subsets $S$ of the real items ($i \ne j$ real): every
        $H(\psi)$ is an average of such differences, so $|H| \le D$ entrywise and
        $\lVert H \rVert_2 \le \lVert D \rVert_2$ (Perron–Frobenius), itself bounded
        by $(\operatorname{tr} D^{256})^{1/256}$. By enumeration; `embedding` is
        ignored."""
        del embedding
        mask = jnp.asarray(mask, bool)
        if mask.ndim == 2:
            return jax.vmap(lambda m: self.interaction_bound(None, m))(mask)
        n = self.num_items
        codes = jnp.arange(2**n, dtype=jnp.int32)
        bit = jnp.left_shift(1, jnp.arange(n, dtype=jnp.int32))
        real = jnp.sum(jnp.where(mask, bit, 0), dtype=jnp.int32)
        # Subsets of the real items without i and j: codes with those bits cleared.
        base = (codes[None, None, :] & real) & ~bit[:, None, None] & ~bit[None, :, None]
        bi, bj = bit[:, None, None], bit[None, :, None]
        v = self.values
        second = v[base | bi | bj] - v[base | bi] - v[base | bj] + v[base]
        pair = mask[:, None] & mask[None, :] & ~jnp.eye(n, dtype=bool)
        worst = jnp.where(pair, jnp.max(jnp.abs(second), axis=-1), 0)
        return spectral_bound(worst)


TableSetFunction.__init__.__doc__ = """**Arguments:**

- `values`: the $2^n$ values $F(S)$, indexed by the bitmask of $S$ (item $i$ is bit $i$).
"""


def _encoder_input(f: AbstractSetFunction) -> str | None:
    """What the per-item encoder of `f` takes, when that can be read off it."""
    phi = getattr(getattr(f, "set_function", f), "phi", None)
    if isinstance(phi, eqx.nn.Linear):
        return f"{phi.in_features} features per item"
    mlp = getattr(phi, "mlp", None)
    if isinstance(mlp, eqx.nn.MLP):
        return f"{mlp.in_size} features per item"
    return None


def check_item_shape(f: AbstractSetFunction, shape: tuple[int, ...], dtype) -> None:
    """Raises a `ValueError` naming both shapes when the per-item encoder of a pooled
    or contextual set function `f` cannot take items of feature shape `shape` (checked
    by tracing its `embed` on one abstract item, so nothing runs); set functions
    without a per-item `embed` are not checked."""
    embed = getattr(f, "embed", None)
    if embed is None:
        return
    try:
        jax.eval_shape(embed, jax.ShapeDtypeStruct((1, *shape), dtype))
    except jax.dtypes.TypePromotionError as error:
        raise TypeError(
            f"the items are {jnp.dtype(dtype).name}, which the parameters of "
            f"{type(f).__name__} do not mix with under jax_numpy_dtype_promotion="
            f"'strict': cast the items or the model to one floating dtype ({error})"
        ) from None
    except (TypeError, ValueError) as error:
        takes = _encoder_input(f)
        expected = f" (its encoder takes {takes})" if takes else ""
        raise ValueError(
            f"the items have feature shape {tuple(shape)}, which the set function "
            f"{type(f).__name__} does not accept{expected}: {error}"
        ) from None
