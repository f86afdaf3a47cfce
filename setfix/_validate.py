"""Checks of user input (private). Shape checks are static; value checks use
`eqx.error_if`, so they also work under `jit` and `vmap`."""

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ._pooled_items import PooledItems


def check_items_and_mask(items, mask, *, allow_batch: bool = True):
    """Validates `items` of shape (n, ...) or (b, n, ...) and a boolean `mask` of shape
    (n,) or (b, n); the mask says whether the items are batched. `mask=None` means every
    item is real and the items are vectors, (n, d) or (b, n, d). `items` may also be a
    `PooledItems`, whose `rows` have the mask's shape. Returns `(items, mask)`."""
    if isinstance(items, PooledItems):
        mask = _pooled_mask(items, mask, allow_batch)
        features, name, note = items.pool, "`items.pool`", ""
    else:
        items, mask = _array_items_and_mask(items, mask, allow_batch)
        features, name, note = items, "`items`", " (padded items must be finite too)"
    if mask.dtype != jnp.bool_:
        raise TypeError(
            f"`mask` must be a boolean array (True for real items, False for "
            f"padding), got dtype {mask.dtype}."
        )
    if mask.shape[-1] == 0:
        raise ValueError(
            "`items` holds an empty ground set (n = 0); every set needs at least one "
            "item."
        )
    # The check rides on the small mask, not on the items: under data parallelism the
    # error branch is placed on one device, and what passes through it is gathered.
    mask = eqx.error_if(
        mask,
        jnp.any(~jnp.isfinite(features)),
        f"{name} contains NaN or infinite values{note}.",
    )
    return items, mask


def _array_items_and_mask(items, mask, allow_batch):
    """The shape checks of items given as one array; returns `(items, mask)`."""
    if not hasattr(items, "shape") or not hasattr(items, "dtype"):
        raise TypeError(
            f"`items` must be an array or a setfix.PooledItems, got {type(items).__name__}."
        )
    items = jnp.asarray(items)
    expected = "(n, d) or (batch, n, d)" if allow_batch else "(n, d)"
    if not jnp.issubdtype(items.dtype, jnp.floating):
        raise TypeError(
            f"`items` must be a floating-point array, got dtype {items.dtype}."
        )
    if mask is None:
        if items.ndim not in ((2, 3) if allow_batch else (2,)):
            raise ValueError(f"`items` must have shape {expected} (or pass a `mask` for "
                             f"items with more dimensions), got shape {items.shape}.")
        return items, jnp.ones(items.shape[:-1], dtype=bool)
    mask = jnp.asarray(mask)
    if mask.ndim not in ((1, 2) if allow_batch else (1,)):
        raise ValueError(
            f"`mask` must have shape {'(n,) or (batch, n)' if allow_batch else '(n,)'}, "
            f"got shape {mask.shape}."
        )
    if items.ndim <= mask.ndim:
        raise ValueError(
            f"`items` must hold one row of features per item, shape {expected}, got "
            f"shape {items.shape} (for one feature per item use `items[..., None]`)."
        )
    if items.shape[: mask.ndim] != mask.shape:
        raise ValueError(
            f"`mask` must have shape (n,) or (batch, n) matching the leading axes of "
            f"`items` {items.shape}, got shape {mask.shape}."
        )
    return items, mask


def _pooled_mask(items, mask, allow_batch):
    """The shape checks of `PooledItems` and their rows' range; returns the mask."""
    rows = items.rows
    if rows.ndim == 2 and not allow_batch:
        raise ValueError(f"`items.rows` must have shape (n,), got shape {rows.shape}.")
    mask = jnp.ones(rows.shape, dtype=bool) if mask is None else jnp.asarray(mask)
    if mask.shape != rows.shape:
        raise ValueError(
            f"`mask` must have the shape of `items.rows` {rows.shape}, got {mask.shape}."
        )
    num_rows = items.pool.shape[0]
    return eqx.error_if(
        mask,
        jnp.any((rows < 0) | (rows >= num_rows)),
        f"`items.rows` must index rows of `items.pool` in [0, {num_rows}).",
    )


def check_psi(psi, shape, name: str = "psi") -> Array:
    """Validates a mean-field parameter vector of the given shape."""
    psi = jnp.asarray(psi)
    if psi.shape != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)}, got {psi.shape}.")
    if not jnp.issubdtype(psi.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a floating-point array, got {psi.dtype}.")
    return eqx.error_if(
        psi,
        jnp.any((psi < 0) | (psi > 1) | jnp.isnan(psi)),
        f"`{name}` must lie in [0, 1] and contain no NaN.",
    )


def check_tolerances(solver, name: str) -> None:
    """Rejects a solver (Optimistix, Lineax or setfix) whose `rtol` or `atol` is
    negative or not a number: such a solver would report convergence it never
    reached, or never stop."""
    for field in ("rtol", "atol"):
        value = getattr(solver, field, None)
        if value is None or not isinstance(value, (int, float)):
            continue  # no such tolerance, or a traced value
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(
                f"`{name}.{field}` must be a finite non-negative number, got {value!r} "
                f"(in {type(solver).__name__})."
            )
