"""Compound selection, offline: from ground sets of molecules measured against one target
(the ChEMBL series RDKit ships), the oracle picks the strongest binders. Molecules become
Morgan fingerprints with RDKit; the DeepSet encodes each with an MLP, once per ground
set and step. The molecules are split between training, validation and test
(`disjoint=True`), so the test measures selection among molecules never seen in
training. Needs `pip install 'setfix[chem]'`.

    python examples/compound_selection.py [--quick]
"""

import argparse
import time

import jax

import setfix as sf


def main(quick: bool) -> None:
    ground_set, subset = (30, 3) if quick else (100, 10)
    num_sets = (16, 8, 8) if quick else (300, 50, 50)
    train, val, test = sf.datasets.compounds(ground_set=ground_set, subset=subset,
                                             num_sets=num_sets, disjoint=True)
    print(f"{train.metadata['molecules']} molecules ({train.metadata['source']}); "
          f"{len(train)} training sets: the top {subset} of {ground_set}")

    key = jax.random.key(0)
    width = 32 if quick else 256
    encoder = sf.MLPEncoder(train.feature_shape[0], width, width=2 * width, key=key)
    model = sf.DeepSet(encoder=encoder, width=width, key=jax.random.fold_in(key, 1))
    method = sf.idiffmf()
    chance = sf.evaluate(model, method, test, key=jax.random.key(1))["jaccard"]
    start = time.perf_counter()
    result = sf.fit(model, method, train, val, key=jax.random.key(2), learning_rate=1e-3,
                    batch_size=8 if quick else 32, epochs=1 if quick else 10,
                    progress=False)
    scores = sf.evaluate(result.model, method, test, key=jax.random.key(1))
    print(f"test Jaccard: untrained {chance:.1f}, trained {scores['jaccard']:.1f} "
          f"(best epoch {result.best_epoch}, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    main(parser.parse_args().quick)
