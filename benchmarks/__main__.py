"""`python -m benchmarks [NAME ...] [OPTIONS]`: runs the named benchmarks (memory, solvers,
gradients, implicit_fd, throughput, floor, iterations, compile_time, end_to_end,
pooled_items, interactions, pairwise_ceiling, large_sets, roofline, expected_jaccard,
logit_adjoint, interaction_bound, device; default:
all), each writing JSON and PNG under benchmarks/results/. The options (e.g. `--quick`)
go to every named benchmark."""

import sys

from . import (
    compile_time,
    device,
    end_to_end,
    expected_jaccard,
    floor,
    gradients,
    implicit_fd,
    interaction_bound,
    interactions,
    iterations,
    large_sets,
    logit_adjoint,
    memory,
    pairwise_ceiling,
    pooled_items,
    roofline,
    solvers,
    throughput,
)


BENCHMARKS = {
    "memory": memory.main,
    "solvers": solvers.main,
    "gradients": gradients.main,
    "implicit_fd": implicit_fd.main,
    "throughput": throughput.main,
    "floor": floor.main,
    "iterations": iterations.main,
    "compile_time": compile_time.main,
    "end_to_end": end_to_end.main,
    "pooled_items": pooled_items.main,
    "interactions": interactions.main,
    "pairwise_ceiling": pairwise_ceiling.main,
    "large_sets": large_sets.main,
    "roofline": roofline.main,
    "expected_jaccard": expected_jaccard.main,
    "logit_adjoint": logit_adjoint.main,
    "interaction_bound": interaction_bound.main,
    "device": device.main,
}


def main(argv):
    # Leading names choose benchmarks; everything from the first option on is passed to
    # each of them.
    first = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names, flags = argv[:first] or list(BENCHMARKS), argv[first:]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    for name in names:
        print(f"== {name}")
        BENCHMARKS[name](flags)


if __name__ == "__main__":
    main(sys.argv[1:])
