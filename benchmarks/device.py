"""On an accelerator: throughput at batch 128 and the paper's Figure 1 memory curve on
the device, in one short run (a few minutes), written beside the CPU results as
`results/device-<platform>.json` (e.g. `device-gpu.json`).

- **Throughput**: seconds per training step of setfix's default iDiffMF
  (`throughput.setfix_step`, float32) on Moons shapes (n = 100) and compound shapes
  (n = 300, 2048-bit fingerprints) at batch 128, best of `--repeats` after a warm-up,
  with its FLOPs as `roofline.measure` counts them and the device's f32 matmul rate in
  the same run.
- **Memory against iterations**: XLA's compiled memory analysis of one training step
  with the implicit and the unrolled adjoint for K = 1 … 100 (`memory.compiled_bytes`,
  batch 128, n = 100), and the device's own peak-memory counter after running the
  step for the smallest and largest K, where the device reports one.

    python -m benchmarks device [--quick] [--repeats K]

`--quick` runs tiny shapes; it is how the script is tested on a CPU.
"""

import argparse
import time

import jax

from . import memory, roofline
from ._common import save


SHAPES = {"moons": (100, (2,), "linear"), "compounds": (300, (2048,), "fingerprint")}
QUICK_SHAPES = {"moons": (20, (2,), "linear")}
KS = [1, 2, 5, 10, 20, 50, 100]


def _peak_bytes() -> int | None:
    stats = jax.devices()[0].memory_stats()  # None on CPU
    return None if not stats else int(stats.get("peak_bytes_in_use", 0))


def throughput(shapes, batch, repeats) -> list[dict]:
    rows = []
    for name, (n, shape, encoder) in shapes.items():
        row = {"config": name, "n": n, "item_shape": list(shape), "batch": batch,
               **roofline.measure(n, shape, encoder, batch, repeats)}
        rows.append(row)
        print(f"{name:10s} n={n} batch={batch}: {row['seconds_per_step']:.4f} s/step, "
              f"{row['achieved_flops_per_second'] / 1e9:.0f} GFLOP/s", flush=True)
    return rows


def memory_curve(batch, n, m, ks) -> list[dict]:
    rows = []
    for adjoint in ("implicit", "unrolled"):
        for k in ks:
            row = {"adjoint": adjoint, "k": k, **memory.compiled_bytes(adjoint, k, batch, n, m)}
            if k in (ks[0], ks[-1]) and _peak_bytes() is not None:
                step, args = memory.make_step(adjoint, k, batch, n, m)
                jax.block_until_ready(step(*args))
                row["device_peak_bytes_so_far"] = _peak_bytes()
            print(f"{adjoint:9s} K={k:3d}: {row['total_bytes'] / 2**20:9.1f} MiB compiled",
                  flush=True)
            rows.append(row)
    return rows


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks device")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    platform = jax.default_backend()
    print(f"devices: {jax.devices()}", flush=True)
    if args.quick:
        shapes, batch, (n, m), ks, size = QUICK_SHAPES, 4, (20, 5), [1, 2, 5], 256
    else:
        shapes, batch, (n, m), ks, size = SHAPES, 128, (100, 5), KS, 4096
    rate = roofline.matmul_rate(size)
    print(f"matmul rate: {rate / 1e9:.0f} GFLOP/s", flush=True)
    steps = throughput(shapes, batch, 1 if args.quick else args.repeats)
    curve = memory_curve(batch, n, m, ks)
    seconds = time.perf_counter() - start
    print(f"done in {seconds:.0f} s")
    name = f"device-{platform}" + ("_quick" if args.quick else "")
    save(name, {"platform": platform, "batch": batch, "memory_n": n, "num_samples": m,
                "ks": ks, "matmul_size": size, "matmul_flops_per_second": rate,
                "method": "idiffmf(tolerance=1e-6, max_steps=20)",
                "wall_seconds": seconds},
         {"throughput": steps, "memory": curve})
