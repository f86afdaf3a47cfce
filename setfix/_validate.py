"""Checks of user input (private). Shape checks are static; value checks use
`eqx.error_if`, so they also work under `jit` and `vmap`."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array


def check_items_and_mask(items, mask, *, allow_batch: bool = True):
    """Validates `items` of shape (n, d) or (b, n, d) and a boolean `mask` of shape
    (n,) or (b, n); `mask=None` means every item is real. Returns the arrays."""
    if not hasattr(items, "shape") or not hasattr(items, "dtype"):
        raise TypeError(f"`items` must be an array, got {type(items).__name__}.")
    items = jnp.asarray(items)
    ndims = (2, 3) if allow_batch else (2,)
    expected = "(n, d) or (batch, n, d)" if allow_batch else "(n, d)"
    if items.ndim not in ndims:
        raise ValueError(f"`items` must have shape {expected}, got shape {items.shape}.")
    if not jnp.issubdtype(items.dtype, jnp.floating):
        raise TypeError(
            f"`items` must be a floating-point array, got dtype {items.dtype}."
        )
    if items.shape[-2] == 0:
        raise ValueError(
            "`items` holds an empty ground set (n = 0); every set needs at least one "
            "item."
        )
    if mask is None:
        mask = jnp.ones(items.shape[:-1], dtype=bool)
    else:
        mask = jnp.asarray(mask)
        if mask.shape != items.shape[:-1]:
            raise ValueError(
                f"`mask` must have shape {items.shape[:-1]} to match `items` of shape "
                f"{items.shape}, got shape {mask.shape}."
            )
        if mask.dtype != jnp.bool_:
            raise TypeError(
                f"`mask` must be a boolean array (True for real items, False for "
                f"padding), got dtype {mask.dtype}."
            )
    # The check rides on the small mask, not on the items: under data parallelism the
    # error branch is placed on one device, and what passes through it is gathered.
    mask = eqx.error_if(
        mask,
        jnp.any(~jnp.isfinite(items)),
        "`items` contains NaN or infinite values (padded items must be finite too).",
    )
    return items, mask


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
