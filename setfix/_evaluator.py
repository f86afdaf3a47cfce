"""Evaluation of a set function from pooled sums (private).

Every set function is evaluated as ``readout(subset @ embedding)``: a pooled set function
uses the ``embed``/``readout`` split of its ``folded`` form, so the per-item encoder runs
once per ground set; any other set function uses the identity embedding (the pooled sum
*is* the subset indicator) and ``readout(s) = f(items, s)``.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from ._contextual import AbstractContextualSetFunction
from ._pooled_items import embed_items, gathered, PooledItems
from ._set_function import AbstractPooledSetFunction, AbstractSetFunction


class _PooledReadout(eqx.Module):
    f: AbstractPooledSetFunction

    def __call__(self, pooled):
        return self.f.readout(pooled)

    def interaction_bound(self, embedding, mask):
        return self.f.interaction_bound(embedding, mask)

    @property
    def closed_form(self):
        return self.f.closed_form

    def multilinear(self, embedding, psi, mask):
        return self.f.multilinear(embedding, psi, mask)


class _ContextReadout(eqx.Module):
    f: AbstractContextualSetFunction
    context: Any  # one set's context, or a batch's

    def __call__(self, pooled):
        return self.f.readout(pooled, self.context)

    def interaction_bound(self, embedding, mask):
        return self.f.interaction_bound(embedding, mask)

    @property
    def closed_form(self):
        return self.f.closed_form

    def multilinear(self, embedding, psi, mask):
        return self.f.multilinear(embedding, psi, mask, self.context)


class _SubsetReadout(eqx.Module):
    f: AbstractSetFunction
    items: Float[Array, "..."]  # one set's `(n, ...)` items, or a batch's

    closed_form = False

    def __call__(self, subset):
        return self.f(self.items, subset)

    def interaction_bound(self, embedding, mask):
        return self.f.interaction_bound(embedding, mask)


class ScaledReadout(eqx.Module):
    """`scale * readout(pooled)`: the energy multiplied by a per-set factor."""

    readout: Callable
    scale: Float[Array, "*batch"]

    def __call__(self, pooled):
        return self.scale * self.readout(pooled)

    def interaction_bound(self, embedding, mask):
        return self.scale * self.readout.interaction_bound(embedding, mask)

    @property
    def closed_form(self):
        return is_closed_form(self.readout)

    def multilinear(self, embedding, psi, mask):
        return self.scale * self.readout.multilinear(embedding, psi, mask)


def is_closed_form(readout) -> bool:
    """Whether `readout` knows its multilinear extension in closed form (a readout from
    `split_set_function`; a plain callable does not)."""
    return bool(getattr(readout, "closed_form", False))


def closed_form_gradient(readout, embedding, psi, mask):
    """The exact gradient of a closed-form multilinear extension, zero on padding; its
    autodiff JVP in `psi` is the exact multilinear Hessian."""
    grad = jax.grad(lambda p: readout.multilinear(embedding, p, mask))(psi)
    return jnp.where(mask, grad, 0)


def pooled_split(
    f: AbstractSetFunction,
    items: Float[ArrayLike, "..."] | PooledItems,
    batched: bool,
    mask: Bool[ArrayLike, "*batch n"] | None = None,
) -> tuple[Callable, Float[Array, "*batch n h"], Any]:
    """`(readout, embedding, readout_axes)` with `f(items, S) == readout(S @ embedding)`
    on one set or, with `batched`, on each set of a batch (`mask`: its real items; all
    by default). A pooled set function is evaluated in its `folded` form, its encoder
    run here, once per ground set (on `PooledItems`, once per pool row), and its
    readout shared by the batch (`readout_axes` is `None`); a contextual one also
    computes each set's rows and context here, and its readout holds the contexts
    (`readout_axes` maps over them); any other set function gets the identity
    embedding and a readout holding each set's items."""
    if isinstance(f, AbstractPooledSetFunction):
        f = f.folded()
        return _PooledReadout(f), embed_items(f.embed, items, batched=batched), None
    if isinstance(f, AbstractContextualSetFunction):
        f = f.folded()
        embedding = embed_items(f.embed, items, batched=batched)
        mask = (jnp.ones(embedding.shape[:-1], bool) if mask is None
                else jnp.asarray(mask, bool))
        rows, context = (jax.vmap(f.context) if batched else f.context)(embedding, mask)
        readout = _ContextReadout(f, context)
        return readout, rows, (axes_like(readout, f=None, context=0) if batched else None)
    items = gathered(items)
    eye = jnp.eye(items.shape[-2], dtype=items.dtype)
    if not batched:
        return _SubsetReadout(f, items), eye, None
    embedding = jnp.broadcast_to(eye, (items.shape[0],) + eye.shape)
    readout = _SubsetReadout(f, items)
    return readout, embedding, axes_like(readout, f=None, items=0)


def split_set_function(
    f: AbstractSetFunction, items: Float[ArrayLike, "n ..."] | PooledItems,
    mask: Bool[ArrayLike, " n"] | None = None,
) -> tuple[Callable, Float[Array, "n h"]]:
    """Returns `(readout, embedding)` with `f(items, S) == readout(S @ embedding)` on
    one set: [`pooled_split`][] without a batch."""
    readout, embedding, _ = pooled_split(f, items, batched=False, mask=mask)
    return readout, embedding


def scale_energy(scaling, readout, embedding, mask, axes=None):
    """Applies `scaling.energy_scale` (if any) to the readout of one set or a batch.
    Returns `(readout, readout_axes, offset)`; on a batch the scale is per set.
    `offset` is what the scaling adds to the scaled gradient (its `gain_weight` times
    the singleton gains, zero on padding), or `None`."""
    scale = scaling.energy_scale(readout, embedding, mask)
    if scale is None:
        return readout, axes, None
    weight = scaling.gain_weight(scale)
    offset = (None if weight is None else
              weight[..., None] * singleton_gains(readout, embedding, mask, axes))
    scaled = ScaledReadout(readout, scale)
    return (scaled, (None if jnp.ndim(mask) == 1 else axes_like(scaled, readout=axes, scale=0)),
            offset)


def singleton_gains(readout, embedding, mask, axes=None):
    r"""$g^0_i = F(\{i\}) - F(\emptyset) = \partial_i \tilde F(0)$ for each real item
    of one set or a batch (`axes`: the readout's batch axes), zero on padding."""
    def one(readout, embedding, mask):
        empty = readout(jnp.zeros(embedding.shape[-1], embedding.dtype))
        return jnp.where(mask, jax.vmap(readout)(embedding) - empty, 0)

    if jnp.ndim(mask) == 1:
        return one(readout, embedding, mask)
    return eqx.filter_vmap(one, in_axes=(axes, 0, 0))(readout, embedding, mask)


def axes_like(module: eqx.Module, **axes) -> eqx.Module:
    """A `vmap` axes tree for `module`: `module` with each named field replaced by its
    axis spec (`None`, an integer, or a tree of them)."""
    names = tuple(axes)
    return eqx.tree_at(lambda m: tuple(getattr(m, name) for name in names), module,
                       tuple(axes[name] for name in names), is_leaf=lambda x: x is None)


def batched_readout(readout: Callable, pooled: Float[Array, "*batch h"]) -> Array:
    """Applies `readout` to every row of `pooled`, keeping the leading shape."""
    flat = pooled.reshape(-1, pooled.shape[-1])
    return jax.vmap(readout)(flat).reshape(pooled.shape[:-1])
