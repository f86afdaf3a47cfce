"""The mean-field negative log-likelihood (Eq. 9) and EquiVSet's negative sampling."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray


def check_neg_num(neg_num) -> None:
    """Raises unless `neg_num` is a positive integer or `None`."""
    if neg_num is not None and (not isinstance(neg_num, int) or isinstance(neg_num, bool)
                                or neg_num < 1):
        raise ValueError(f"`neg_num` must be a positive integer or None, got {neg_num!r}.")


def sample_negatives(
    key: PRNGKeyArray,
    target: Bool[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
    neg_num: int | None = 1,
) -> Bool[Array, "*batch n"]:
    r"""Draws, per set, `neg_num` $\times |S^*|$ distinct real items outside $S^*$
    uniformly at random (all of them if there are fewer), as EquiVSet does; with
    `neg_num=None`, every real item outside $S^*$.

    **Arguments:**

    - `key`: PRNG key (one draw per call; pass a fresh key each training step).
    - `target`: the oracle's subsets $S^*$.
    - `mask`: which items are real.
    - `neg_num`: negatives per member of $S^*$, or `None` for all non-members.
    """
    target = jnp.asarray(target)
    mask = jnp.asarray(mask)
    if target.shape != mask.shape:
        raise ValueError(
            f"`target` of shape {target.shape} and `mask` of shape {mask.shape} must match."
        )
    candidates = mask & ~target
    check_neg_num(neg_num)
    if neg_num is None:
        return candidates
    scores = jax.random.uniform(key, target.shape)
    scores = jnp.where(candidates, scores, jnp.inf)
    ranks = jnp.argsort(jnp.argsort(scores, axis=-1), axis=-1)
    wanted = neg_num * jnp.sum(target & mask, axis=-1, keepdims=True)
    return candidates & (ranks < wanted)


def mean_field_nll(
    psi: Float[ArrayLike, "*batch n"],
    target: Bool[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
    negatives: Bool[ArrayLike, "*batch n"] | None = None,
) -> Float[Array, " *batch"]:
    r"""The negative log-likelihood of the oracle's subset under the mean field
    $q(\cdot\,; \psi)$ (the paper's Eq. 9), per set:

    $$L = -\sum_{j \in S^*} \log \psi_j - \sum_{j \in N} \log (1 - \psi_j),$$

    where $N$ is `negatives` (e.g. from [`setfix.sample_negatives`][]) or, by default,
    every real item outside $S^*$. Padded items never count. $\psi$ is clipped to
    $[10^{-6}, 1 - 10^{-6}]$ inside the logarithms. Where $\psi$'s logits are at hand
    (`MeanFieldSolution.logits`), [`setfix.mean_field_nll_from_logits`][] is the same
    likelihood without the clipping.

    **Arguments:**

    - `psi`: mean-field parameters, e.g. `MeanFieldSolution.psi`.
    - `target`: the oracle's subsets $S^*$.
    - `mask`: which items are real.
    - `negatives`: which non-members enter the loss (default: all).
    """
    psi = jnp.asarray(psi)
    target, mask, negatives = _checked(psi, "psi", target, mask, negatives)
    clipped = jnp.clip(psi, 1e-6, 1 - 1e-6)
    positive = jnp.where(target & mask, jnp.log(clipped), 0)
    negative = jnp.where(negatives & mask & ~target, jnp.log1p(-clipped), 0)
    return -jnp.sum(positive + negative, axis=-1)


def mean_field_nll_from_logits(
    logits: Float[ArrayLike, "*batch n"],
    target: Bool[ArrayLike, "*batch n"],
    mask: Bool[ArrayLike, "*batch n"],
    negatives: Bool[ArrayLike, "*batch n"] | None = None,
) -> Float[Array, " *batch"]:
    r"""[`setfix.mean_field_nll`][] at $\psi = \sigma(z)$, from the logits $z$:

    $$L = -\sum_{j \in S^*} \log \sigma(z_j) - \sum_{j \in N} \log \sigma(-z_j),$$

    exact for every $z$ (no clipping). Its gradient $\partial L / \partial z_j =
    \sigma(z_j) - y_j$ is bounded by 1, where $\partial L / \partial \psi_j$ grows
    as $1/\psi_j$. [`setfix.MeanFieldNLL`][] trains with it wherever a solution has
    logits, so that the implicit adjoint's linear solve meets a well-scaled right-hand
    side however close to 0 or 1 the marginals are.

    **Arguments:**

    - `logits`: the logits of $\psi$, e.g. `MeanFieldSolution.logits`.
    - `target`, `mask`, `negatives`: as [`setfix.mean_field_nll`][].
    """
    logits = jnp.asarray(logits)
    target, mask, negatives = _checked(logits, "logits", target, mask, negatives)
    positive = jnp.where(target & mask, jax.nn.log_sigmoid(logits), 0)
    negative = jnp.where(negatives & mask & ~target, jax.nn.log_sigmoid(-logits), 0)
    return -jnp.sum(positive + negative, axis=-1)


def _checked(values, name, target, mask, negatives):
    """`target`, `mask` and `negatives` (default: every real non-member) as boolean
    arrays of `values`' shape; a clear error where a shape differs."""
    target = jnp.asarray(target, bool)
    mask = jnp.asarray(mask, bool)
    for arg, value in (("target", target), ("mask", mask)):
        if value.shape != values.shape:
            raise ValueError(
                f"`{arg}` must have the shape of `{name}` {values.shape}, got {value.shape}."
            )
    if negatives is None:
        return target, mask, mask & ~target
    if jnp.shape(negatives) != values.shape:
        raise ValueError(
            f"`negatives` must have the shape of `{name}` {values.shape}, got "
            f"{jnp.shape(negatives)}."
        )
    return target, mask, jnp.asarray(negatives, bool)
