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
    $[10^{-6}, 1 - 10^{-6}]$ inside the logarithms.

    **Arguments:**

    - `psi`: mean-field parameters, e.g. `MeanFieldSolution.psi`.
    - `target`: the oracle's subsets $S^*$.
    - `mask`: which items are real.
    - `negatives`: which non-members enter the loss (default: all).
    """
    psi = jnp.asarray(psi)
    target = jnp.asarray(target, bool)
    mask = jnp.asarray(mask, bool)
    for name, value in (("target", target), ("mask", mask)):
        if value.shape != psi.shape:
            raise ValueError(
                f"`{name}` must have the shape of `psi` {psi.shape}, got {value.shape}."
            )
    if negatives is None:
        negatives = mask & ~target
    elif jnp.shape(negatives) != psi.shape:
        raise ValueError(
            f"`negatives` must have the shape of `psi` {psi.shape}, got "
            f"{jnp.shape(negatives)}."
        )
    clipped = jnp.clip(psi, 1e-6, 1 - 1e-6)
    positive = jnp.where(target & mask, jnp.log(clipped), 0)
    negative = jnp.where(negatives & mask & ~target, jnp.log1p(-clipped), 0)
    return -jnp.sum(positive + negative, axis=-1)
