"""Per-item encoders φ for pooled set functions: what turns one item (a vector, a
fingerprint, an image) into its embedding. They run once per item per step, outside the
fixed-point loop."""

import abc
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class AbstractEncoder(eqx.Module):
    """Maps the features of one item to a vector of `out_features` numbers."""

    out_features: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(self, item: Float[Array, "..."]) -> Float[Array, " out_features"]:
        """The embedding of one item."""


class MLPEncoder(AbstractEncoder):
    r"""An MLP on feature vectors (text embeddings, fingerprints):
    `depth` hidden layers of `width` ReLU units, then a linear map to `out_features`."""

    mlp: eqx.nn.MLP
    out_features: int = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        width: int = 512,
        depth: int = 1,
        key: PRNGKeyArray,
    ):
        for name, value in (("in_features", in_features), ("out_features", out_features),
                            ("width", width)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if not isinstance(depth, int) or depth < 0:
            raise ValueError(f"`depth` must be a non-negative integer, got {depth!r}.")
        self.mlp = eqx.nn.MLP(in_features, out_features, width, depth,
                              activation=jax.nn.relu, key=key)
        self.out_features = out_features

    def __call__(self, item: Float[Array, " d"]) -> Float[Array, " out_features"]:
        return self.mlp(item)


MLPEncoder.__init__.__doc__ = """**Arguments:**

- `in_features`: the length $d$ of each item's feature vector.
- `out_features`: the length of the embedding.
- `width`: the width of each hidden layer.
- `depth`: the number of hidden layers (0: a single linear map).
- `key`: a JAX PRNG key for the initialisation.
"""


class CNNEncoder(AbstractEncoder):
    r"""A small convolutional network for images of shape `(channels, height, width)`:
    3×3 convolutions with stride 2 and ReLU, one per entry of `channels`, a global mean
    over positions, then a linear map to `out_features`."""

    convs: tuple[eqx.nn.Conv2d, ...]
    head: eqx.nn.Linear
    out_features: int = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_features: int,
        *,
        channels: Sequence[int] = (32, 64, 128),
        key: PRNGKeyArray,
    ):
        channels = tuple(channels)
        for name, value in (("in_channels", in_channels), ("out_features", out_features)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"`channels` must be positive integers, got {channels!r}.")
        keys = jax.random.split(key, len(channels) + 1)
        sizes = (in_channels,) + channels
        self.convs = tuple(
            eqx.nn.Conv2d(a, b, 3, stride=2, padding=1, key=k)
            for a, b, k in zip(sizes[:-1], sizes[1:], keys[:-1])
        )
        self.head = eqx.nn.Linear(channels[-1], out_features, key=keys[-1])
        self.out_features = out_features

    def __call__(self, item: Float[Array, "c h w"]) -> Float[Array, " out_features"]:
        if item.ndim != 3:
            raise ValueError(
                f"CNNEncoder expects one image of shape (channels, height, width), got "
                f"shape {item.shape}."
            )
        x = item.astype(self.convs[0].weight.dtype)  # convolutions need equal dtypes
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return self.head(jnp.mean(x, axis=(1, 2)))


CNNEncoder.__init__.__doc__ = """**Arguments:**

- `in_channels`: the number of image channels (1 for grey, 3 for colour).
- `out_features`: the length of the embedding.
- `channels`: the output channels of the successive stride-2 convolutions.
- `key`: a JAX PRNG key for the initialisation.
"""


def item_encoder(
    in_features: int | None,
    encoder: AbstractEncoder | None,
    hidden: int | None,
    key: PRNGKeyArray,
) -> tuple[eqx.nn.Linear | AbstractEncoder, int]:
    """The per-item map of a model given either `in_features` (a linear map to `hidden`,
    256 by default, initialised with `key`) or an `encoder` (whose `out_features`
    `hidden` must match if given). Returns `(map, embedding dimension)`."""
    if (in_features is None) == (encoder is None):
        raise ValueError("give exactly one of `in_features` (a linear encoder) and `encoder`.")
    if encoder is not None:
        if not isinstance(encoder, AbstractEncoder):
            raise TypeError(
                f"`encoder` must be a setfix.AbstractEncoder, got {type(encoder).__name__}."
            )
        if hidden is not None and hidden != encoder.out_features:
            raise ValueError(
                f"`hidden` ({hidden}) must equal `encoder.out_features` "
                f"({encoder.out_features}); leave it out to use the encoder's."
            )
        return encoder, encoder.out_features
    hidden = 256 if hidden is None else hidden
    for name, value in (("in_features", in_features), ("hidden", hidden)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return eqx.nn.Linear(in_features, hidden, key=key), hidden
