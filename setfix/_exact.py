"""Exact multilinear extension by enumeration of all subsets."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._estimator import AbstractEstimator
from ._evaluator import batched_readout, closed_form_gradient, is_closed_form


MAX_EXACT_ITEMS = 20


def all_subsets(num_items: int, dtype=jnp.float32) -> Float[Array, "subsets n"]:
    """The indicator vectors of all $2^n$ subsets; row `b` is the subset with bitmask `b`."""
    if num_items > MAX_EXACT_ITEMS:
        raise ValueError(
            f"Exact enumeration needs 2**n subsets; n = {num_items} exceeds the limit "
            f"of {MAX_EXACT_ITEMS} items. Use `setfix.MonteCarlo` for larger sets."
        )
    codes = jnp.arange(2**num_items, dtype=jnp.int32)[:, None]
    return ((codes >> jnp.arange(num_items, dtype=jnp.int32)) & 1).astype(dtype)


class Exact(AbstractEstimator):
    r"""Computes $\tilde F(\psi)$ exactly by enumerating all $2^n$ subsets.

    The value is an ordinary differentiable function of $\psi$, so its gradient and the
    JVP of the gradient (the exact multilinear Hessian) come from autodiff. Refuses
    ground sets of more than 20 items, except for a set function that knows its
    multilinear extension in closed form (`DeepSet(smooth=True)` and the other smooth
    energies), whose value it then takes at any size. Padded items (mask false) have
    probability 0.
    """

    @property
    def needs_key(self) -> bool:
        return False

    @property
    def symmetric_hessian(self) -> bool:
        return True

    def noise(self, key: PRNGKeyArray, num_items: int) -> None:
        # Nothing to draw; a set too large to enumerate is refused where the readout
        # is known (`value`), since a closed-form readout needs no enumeration.
        del key, num_items
        return None

    def value(
        self,
        readout: Callable,
        embedding: Float[Array, "n h"],
        psi: Float[Array, " n"],
        mask: Bool[Array, " n"],
        noise: None = None,
    ) -> Float[Array, ""]:
        del noise
        if is_closed_form(readout):
            return readout.multilinear(embedding, psi, mask)
        subsets = all_subsets(psi.shape[0], psi.dtype)
        values = batched_readout(readout, subsets @ embedding)
        psi = jnp.where(mask, psi, 0)
        probs = jnp.prod(jnp.where(subsets > 0, psi, 1 - psi), axis=1)
        return jnp.dot(probs, values)

    def gradient(
        self,
        readout: Callable,
        embedding: Float[Array, "n h"],
        psi: Float[Array, " n"],
        mask: Bool[Array, " n"],
        noise: None = None,
    ) -> Float[Array, " n"]:
        if is_closed_form(readout):
            return closed_form_gradient(readout, embedding, psi, mask)
        grad = jax.grad(self.value, argnums=2)(readout, embedding, psi, mask, noise)
        return jnp.where(mask, grad, 0)


Exact.__init__.__doc__ = """**Arguments:** none."""
