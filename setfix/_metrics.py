"""Prediction from mean-field parameters and the Jaccard index."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int


def predict(
    psi: Float[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
    k: Int[ArrayLike, " *batch"] | int,
) -> Bool[Array, "*batch n"]:
    r"""The `k` real items with the largest $\psi$ in each set (ties broken by
    position), the papers' rule with $k = |S^*|$.

    **Arguments:**

    - `psi`: mean-field parameters.
    - `mask`: which items are real; padded items are never predicted.
    - `k`: the subset size, one per set or one for all; more than the set's real items
        is an error (also under `jit`).
    """
    psi = check_mask_shape(psi, mask)
    k = jnp.broadcast_to(jnp.asarray(k), psi.shape[:-1])
    size = jnp.sum(mask, axis=-1).astype(k.dtype)
    k = eqx.error_if(k, (k < 0) | (k > size),
                     "`k` must lie in [0, |V|] for every set (|S*| > |V|?).")
    scores = jnp.where(mask, psi, -jnp.inf)
    order = jnp.argsort(-scores, axis=-1, stable=True)
    ranks = jnp.argsort(order, axis=-1)
    return mask & (ranks < k[..., None].astype(ranks.dtype))


def predict_threshold(
    psi: Float[ArrayLike, "*batch n"], mask: Bool[ArrayLike, "*batch n"], threshold: float = 0.5
) -> Bool[Array, "*batch n"]:
    r"""The real items with $\psi_j > $ `threshold`: the mode of the mean field for
    `threshold = 0.5`, which needs no knowledge of $|S^*|$."""
    psi = check_mask_shape(psi, mask)
    return mask & (psi > threshold)


def jaccard(
    pred: Bool[ArrayLike, "*batch n"],
    target: Bool[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
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


def predict_size(
    psi: Float[ArrayLike, "*batch n"], mask: Bool[ArrayLike, "*batch n"]
) -> Bool[Array, "*batch n"]:
    r"""The $\operatorname{round}(\sum_j \psi_j)$ real items with the largest $\psi$: the
    mean field's own expected size instead of the oracle's $|S^*|$ (size-free, like
    [`setfix.predict_threshold`][])."""
    psi = check_mask_shape(psi, mask)
    size = jnp.round(jnp.sum(jnp.where(mask, psi, 0), axis=-1)).astype(jnp.int32)
    return predict(psi, mask, jnp.clip(size, 0, jnp.sum(mask, axis=-1, dtype=jnp.int32)))


def brier_score(
    psi: Float[ArrayLike, "*batch n"],
    target: Bool[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
) -> Float[Array, " *batch"]:
    r"""The Brier score of $\psi$ as inclusion probabilities, per set:
    $\frac{1}{|V|}\sum_{j \in V} (\psi_j - [j \in S^*])^2$ (0 is perfect; 0.25 for
    $\psi \equiv 1/2$)."""
    psi, target, mask = _check_same(psi, target, mask)
    error = jnp.where(mask, (psi - target.astype(psi.dtype)) ** 2, 0)
    return jnp.sum(error, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1, dtype=psi.dtype), 1)


def calibration_bins(
    psi: Float[ArrayLike, "*batch n"],
    target: Bool[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
    num_bins: int = 15,
) -> Float[Array, "3 bins"]:
    r"""Per bin of $\psi$ (`num_bins` equal bins of $[0, 1]$), over all real items: the
    number of items, the sum of their $\psi$ and the number in $S^*$. Bins of several
    batches add up; [`setfix.expected_calibration_error`][] reads them."""
    psi, target, mask = _check_same(psi, target, mask)
    if not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"`num_bins` must be a positive integer, got {num_bins!r}.")
    index = jnp.clip(jnp.floor(psi * num_bins).astype(jnp.int32), 0, num_bins - 1)
    weight = mask.astype(psi.dtype)
    rows = [weight, weight * psi, weight * target.astype(psi.dtype)]
    return jnp.stack([jnp.zeros(num_bins, psi.dtype).at[index.ravel()].add(r.ravel())
                      for r in rows])


def expected_calibration_error(
    psi_or_bins: Float[ArrayLike, "*batch n"] | Float[ArrayLike, "3 bins"],
    target: Bool[ArrayLike, "*batch n"] | None = None,
    mask: Bool[ArrayLike, "*batch n"] | None = None,
    num_bins: int = 15,
) -> Float[Array, ""]:
    r"""The expected calibration error of $\psi$ as inclusion probabilities,
    $\sum_b \frac{N_b}{N} \lvert \bar\psi_b - \bar y_b \rvert$ over `num_bins` equal
    bins (the mean $\psi$ against the fraction in $S^*$ per bin). Called on
    `(psi, target, mask)`, or on the output of [`setfix.calibration_bins`][]."""
    if target is None:
        bins = jnp.asarray(psi_or_bins)
    else:
        if mask is None:
            raise ValueError("pass `mask` with `target`.")
        bins = calibration_bins(psi_or_bins, target, mask, num_bins)
    count, total_psi, total_target = bins
    gap = jnp.abs(total_psi - total_target)  # N_b |mean psi - mean y|
    return jnp.sum(gap) / jnp.maximum(jnp.sum(count), 1)


def size_error(
    psi: Float[ArrayLike, "*batch n"],
    target: Bool[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
) -> Float[Array, " *batch"]:
    r"""$\lvert \sum_j \psi_j - |S^*| \rvert$ per set: how far the mean field's expected
    subset size is from the oracle's."""
    psi, target, mask = _check_same(psi, target, mask)
    return jnp.abs(jnp.sum(jnp.where(mask, psi - target.astype(psi.dtype), 0), axis=-1))


def check_mask_shape(psi, mask) -> Array:
    """`psi` as an array, after checking that `mask` has its shape."""
    psi = jnp.asarray(psi)
    if jnp.shape(mask) != psi.shape:
        raise ValueError(f"`mask` must have shape {psi.shape}, got {jnp.shape(mask)}.")
    return psi


def _check_same(psi, target, mask):
    psi = jnp.asarray(psi)
    target, mask = jnp.asarray(target, bool), jnp.asarray(mask, bool)
    if not psi.shape == target.shape == mask.shape:
        raise ValueError(
            f"`psi` {psi.shape}, `target` {target.shape} and `mask` {mask.shape} must "
            "have the same shape.")
    return psi, target.astype(psi.dtype), mask
