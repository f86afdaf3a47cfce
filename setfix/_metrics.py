"""Prediction from mean-field parameters and the Jaccard index."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def predict(
    psi: Float[Array, "*batch n"],
    mask: Bool[Array, "*batch n"],
    k: Int[Array, " *batch"] | int,
) -> Bool[Array, "*batch n"]:
    r"""The `k` real items with the largest $\psi$ in each set (ties broken by
    position), the papers' rule with $k = |S^*|$.

    **Arguments:**

    - `psi`: mean-field parameters.
    - `mask`: which items are real; padded items are never predicted.
    - `k`: the subset size, one per set or one for all; more than the set's real items
        is an error (also under `jit`).
    """
    psi = jnp.asarray(psi)
    if jnp.shape(mask) != psi.shape:
        raise ValueError(f"`mask` must have shape {psi.shape}, got {jnp.shape(mask)}.")
    k = jnp.broadcast_to(jnp.asarray(k), psi.shape[:-1])
    size = jnp.sum(mask, axis=-1)
    k = eqx.error_if(k, (k < 0) | (k > size),
                     "`k` must lie in [0, |V|] for every set (|S*| > |V|?).")
    scores = jnp.where(mask, psi, -jnp.inf)
    order = jnp.argsort(-scores, axis=-1, stable=True)
    ranks = jnp.argsort(order, axis=-1)
    return mask & (ranks < k[..., None])


def predict_threshold(
    psi: Float[Array, "*batch n"], mask: Bool[Array, "*batch n"], threshold: float = 0.5
) -> Bool[Array, "*batch n"]:
    r"""The real items with $\psi_j > $ `threshold`: the mode of the mean field for
    `threshold = 0.5`, which needs no knowledge of $|S^*|$."""
    psi = jnp.asarray(psi)
    if jnp.shape(mask) != psi.shape:
        raise ValueError(f"`mask` must have shape {psi.shape}, got {jnp.shape(mask)}.")
    return mask & (psi > threshold)


def jaccard(
    pred: Bool[Array, "*batch n"],
    target: Bool[Array, "*batch n"],
    mask: Bool[Array, "*batch n"],
) -> Float[Array, " *batch"]:
    r"""The Jaccard index $|P \cap S^*| / |P \cup S^*|$ per set, over real items (1 when
    both are empty). The papers' Table 1 reports its mean $\times 100$."""
    pred, target, mask = (jnp.asarray(x, bool) for x in (pred, target, mask))
    if not pred.shape == target.shape == mask.shape:
        raise ValueError(
            f"`pred` {pred.shape}, `target` {target.shape} and `mask` {mask.shape} must "
            "have the same shape."
        )
    inter = jnp.sum(pred & target & mask, axis=-1)
    union = jnp.sum((pred | target) & mask, axis=-1)
    return jnp.where(union > 0, inter / jnp.maximum(union, 1), 1.0)
