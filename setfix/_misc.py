"""Small shared helpers (private)."""

import equinox as eqx
import jax
import jax.tree_util as jtu


def stop_gradient_tree(tree):
    """`lax.stop_gradient` on every inexact array of a pytree; other leaves unchanged."""
    return jtu.tree_map(
        lambda x: jax.lax.stop_gradient(x) if eqx.is_inexact_array(x) else x, tree
    )


class Default:
    """A default decided from other arguments; its repr states the rule, so that
    signatures in the docs read e.g. `neg_num=method.neg_num`."""

    def __init__(self, rule: str):
        self.rule = rule

    def __repr__(self) -> str:
        return self.rule
