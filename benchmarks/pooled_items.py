"""Pooled items: seconds per training batch of `fit` on compound-shaped data (128 sets
of 300 drawn from a pool of 3317 Morgan fingerprints of 2048 bits, the size of
MoleculeACE's CHEMBL214_Ki; MLP encoder 2048→512→256, DeepSet 256/500/500, iDiffMF
with m = 5 and at most 20 steps) in two ways:

- **gathered**: each batch's `(128, 300, 2048)` features gathered from the pool on the
  host, sent to the device, and encoded item by item (38400 encoder rows per step);
- **pooled**: the pool sent once, each batch's rows as `setfix.PooledItems`, the
  encoder run on the 3317 pool rows and its output gathered (what `fit` does when the
  pool has fewer rows than a batch has items).

A figure is the best of `--repeats` batches after a warm-up batch, from the host batch
to the finished step. The random bits (5% set, as in real fingerprints) and rows are
seeded; the cost does not depend on their values.

    python -m benchmarks pooled_items [--quick]
"""

import time

import equinox as eqx
import jax
import numpy as np

import setfix as sf
from setfix._fit import device_batches, train_step
from setfix._sharding import DataParallel

from ._common import quick_flag, save


FULL = {"pool": 3317, "bits": 2048, "n": 300, "batch": 128, "repeats": 3}
QUICK = {"pool": 300, "bits": 256, "n": 50, "batch": 16, "repeats": 2}


def _dataset(pool, bits, n, batch):
    rng = np.random.default_rng(0)
    table = (rng.random((pool, bits)) < 0.05).astype(np.float32)
    rows = [rng.choice(pool, n, replace=False) for _ in range(batch)]
    return sf.SetDataset.from_sets(rows, [np.arange(15)] * batch, pool=table)


def _gathered_batches(data, batch, parallel):
    """The batches as `fit` made them before pooled items: features gathered on the host."""
    for items, mask, target in data.batches(batch):
        yield parallel.batch(items, mask, target)


def _seconds_per_batch(make_batches, data, batch, repeats):
    parallel = DataParallel()
    key = jax.random.key(0)
    model = sf.DeepSet(encoder=sf.MLPEncoder(data.pool.shape[1], 256, width=512, depth=1,
                                             key=key), key=key)
    method, optimizer = sf.idiffmf(max_steps=20), sf.default_optimizer(1e-3)
    opt_state = method.objective.init(optimizer, model)
    best = float("inf")
    for i in range(repeats + 1):
        start = time.perf_counter()
        items, mask, target = next(make_batches(data, batch, parallel))
        out = train_step(model, opt_state, items, mask, target, jax.random.key(i), method,
                         method.objective, optimizer, 1)
        jax.block_until_ready(eqx.filter(out, eqx.is_array))
        if i:  # the first call compiles
            best = min(best, time.perf_counter() - start)
    return best


def main(argv):
    config = QUICK if quick_flag(argv) else FULL
    data = _dataset(config["pool"], config["bits"], config["n"], config["batch"])
    results = {}
    for name, make_batches in (("gathered", _gathered_batches),
                               ("pooled", device_batches)):
        results[f"{name}_seconds_per_batch"] = _seconds_per_batch(
            make_batches, data, config["batch"], config["repeats"])
        print(f"{name}: {results[f'{name}_seconds_per_batch']:.2f} s per batch")
    results["speedup"] = (results["gathered_seconds_per_batch"]
                          / results["pooled_seconds_per_batch"])
    print(f"speed-up {results['speedup']:.2f}x")
    save("pooled_items", config, results)
