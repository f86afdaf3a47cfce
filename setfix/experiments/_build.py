"""What a configuration builds: its scaling, method, prediction rule, model and data."""

from collections.abc import Callable
from typing import Any

import jax
from jaxtyping import PRNGKeyArray

from .._dataset import SetDataset
from .._encoders import CNNEncoder, MLPEncoder
from .._method import AbstractMethod
from .._methods import certified_max_steps
from .._recognition import AmortizedSetFunction, RecognitionNetwork
from .._scaling import AbstractScaling
from .._set_function import AbstractSetFunction
from . import _registry
from ._config import Experiment


def build_scaling(config: Experiment) -> AbstractScaling:
    """The scaling named by `config.scaling` (iDiffMF and the one-step gradient)."""
    return _registry.SCALINGS[config.scaling](config)


def build_method(config: Experiment) -> AbstractMethod:
    """The method named by `config.method`."""
    scaling = build_scaling(config)
    # A certified solve gets at least the steps its certificate needs (the default 20 is
    # the published code's, for the norm scalings).
    steps = certified_max_steps(scaling, 1e-5, config.max_steps)
    return _registry.METHODS[config.method](config, scaling, steps)


def build_inference(config: Experiment, method: AbstractMethod) -> AbstractMethod:
    """The prediction rule: the method's own inference, or the reference one step."""
    if config.prediction != "solve" and config.method in _registry.AMORTISED:
        raise ValueError(f"`prediction={config.prediction!r}` applies to the mean-field "
                         "methods, not to EquiVSet.")
    return _registry.PREDICTIONS[config.prediction](method)


def build_encoder(item_type: str, feature_shape: tuple[int, ...], key,
                  encoder: str = "default"):
    """The per-item encoder for the dataset's item type: by default `None` (the
    reference's linear map) for vectors, an MLP over fingerprints, a small CNN over
    images; with `encoder="mlp"`, the MLP for vectors too. Other item types refuse
    `encoder="mlp"`, which would give their default model a second label."""
    if encoder == "mlp" and item_type != "vector":
        default = "the CNN" if item_type == "image" else "this MLP already"
        raise ValueError(f"`encoder='mlp'` takes vector items; {item_type} items use "
                         f"{default} (`encoder='default'`).")
    if item_type == "image":
        return CNNEncoder(feature_shape[0], 256, key=key)
    if len(feature_shape) != 1:
        raise ValueError(f"items of shape {feature_shape} need an item type "
                         "('image' or 'fingerprint') in the dataset's metadata.")
    if item_type == "fingerprint" or encoder == "mlp":
        return MLPEncoder(feature_shape[0], 256, width=512, depth=1, key=key)
    return None


def build_model(
    config: Experiment,
    feature_shape: int | tuple[int, ...],
    key,
    item_type: str = "vector",
) -> AbstractSetFunction:
    """The configured energy (the references' DeepSet by default), plus a recognition
    network for EquiVSet, its per-item encoder chosen by the item type."""
    shape = (feature_shape,) if isinstance(feature_shape, int) else tuple(feature_shape)
    f_key, q_key = jax.random.split(key)
    # Encoder keys are derived, so vector models initialise exactly as they always have.
    fe_key, qe_key = jax.random.fold_in(f_key, 1), jax.random.fold_in(q_key, 1)
    encoder = build_encoder(item_type, shape, fe_key, config.encoder)
    linear = shape[0] if encoder is None else None  # in_features of a linear encoder
    energy, smooth = _registry.ENERGIES[config.energy]
    model = energy(linear, encoder=encoder, smooth=smooth, key=f_key)
    if config.method in _registry.AMORTISED:
        recognition = RecognitionNetwork(
            linear, encoder=build_encoder(item_type, shape, qe_key, config.encoder),
            key=q_key)
        model = AmortizedSetFunction(model, recognition)
    return model


def build(
    config: Experiment, data: SetDataset
) -> tuple[Callable[[PRNGKeyArray], AbstractSetFunction], AbstractMethod, AbstractMethod]:
    """What a configuration trains on the items of `data`: its model (from a key), its
    method and its prediction rule."""
    shape, item_type = data.feature_shape, _item_type(data)
    method = build_method(config)
    return (lambda key: build_model(config, shape, key, item_type),
            method, build_inference(config, method))


def _item_type(data: SetDataset) -> str:
    return data.metadata.get("item_type", "vector")


def model_spec(data: SetDataset) -> dict[str, Any]:
    """What building a model needs to know of the items (a run's `model.json`)."""
    return {"feature_shape": list(data.feature_shape), "item_type": _item_type(data)}


def load_splits(config: Experiment) -> tuple[SetDataset, SetDataset, SetDataset]:
    train, val, test = _registry.load_dataset(config.dataset, config.root,
                                              features=config.features)
    return (train[: config.train_sets], val[: config.val_sets], test[: config.test_sets])


def keys(config: Experiment) -> jax.Array:
    """The run's three keys: the model's initialisation, training, and the test
    evaluation."""
    return jax.random.split(jax.random.key(config.seed), 3)


