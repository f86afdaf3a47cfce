"""Data parallelism: batches sharded over devices, parameters replicated (jax.sharding)."""

from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


class DataParallel(eqx.Module):
    """Places training batches split along their first axis over `devices` and
    everything else replicated on all of them; jitted steps are then partitioned by
    XLA (GSPMD), the batch mean becoming an all-reduce. With several processes
    (`jax.distributed.initialize`), every process passes the same full host batch and
    keeps only its devices' slices. A batch whose size is not a multiple of the number
    of devices is replicated instead of split."""

    mesh: Mesh = eqx.field(static=True)

    def __init__(self, devices: Sequence[jax.Device] | None = None):
        devices = list(jax.devices() if devices is None else devices)
        if not devices:
            raise ValueError("`devices` must name at least one device.")
        self.mesh = Mesh(np.array(devices), ("batch",))

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    def _put(self, x, spec):
        sharding = NamedSharding(self.mesh, spec)
        if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(sharding, x.ndim):
            return x  # already placed (e.g. a model `fit` replicated): no round trip
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    def batch(self, *arrays: np.ndarray) -> tuple[jax.Array, ...]:
        """Host arrays with a leading batch axis, split over the devices."""
        return tuple(
            self._put(x, PartitionSpec("batch") if len(x) % self.num_devices == 0
                      else PartitionSpec())
            for x in arrays
        )

    def replicate(self, tree):
        """Every array leaf of `tree` copied to all devices (other leaves untouched)."""
        arrays, static = eqx.partition(tree, eqx.is_array)
        arrays = jax.tree.map(
            lambda x: x if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
            else self._put(x, PartitionSpec()),
            arrays,
        )
        return eqx.combine(arrays, static)


DataParallel.__init__.__doc__ = """**Arguments:**

- `devices`: the devices to split batches over (default: `jax.devices()`, all devices
    of all processes).
"""
