"""The real-data loaders: counts on the shared data, the ground-set constructions, feature
determinism, fingerprints, and clear errors for bad paths and malformed files."""

import pathlib
import pickle

import numpy as np
import pytest

import setfix as sf
from setfix.datasets._files import FileFormatError

from .helpers import unchecked


DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
AMAZON = DATA / "amazon-baby-registry"
MOLECULEACE = DATA / "moleculeace"
needs_data = pytest.mark.skipif(not AMAZON.is_dir(), reason=f"{DATA} is not present")


@needs_data
@pytest.mark.parametrize("category,count", [("apparel", 4675), ("toys", 2421),
                                            ("safety", 267), ("furniture", 280)])
def test_amazon_counts_and_splits(category, count):
    train, val, test = sf.datasets.amazon(AMAZON, category)
    assert len(train) + len(val) + len(test) == count
    assert (len(train), len(val)) == (int(0.33 * count), int(0.66 * count) - int(0.33 * count))
    for split in (train, val, test):
        assert split.items.shape[1] == 30 and split.mask.all()
        sizes = split.target.sum(axis=1)
        assert sizes.min() > 2 and sizes.max() < 30
        # every ground set holds 30 distinct catalogue items
        assert all(len(np.unique(row)) == 30 for row in split.items)


@needs_data
def test_amazon_ground_set_construction():
    train, _, _ = sf.datasets.amazon(AMAZON, "toys")
    lines = [line.strip() for line in (AMAZON / "1_100_100_100_toys_regs.csv").open()]
    registries = [np.array(line.split(","), int) - 1 for line in lines if line]
    first = next(r for r in registries if 2 < len(r) < 30)
    items, target = train.items[0], train.target[0]
    # S* is the registry, at random positions
    np.testing.assert_array_equal(np.sort(items[target]), np.sort(first))
    # the rest are the catalogue items least cosine-similar to the mean of S
    table = train.pool
    others = np.setdiff1d(np.arange(len(table)), first)
    unit = table[others] / np.linalg.norm(table[others], axis=1, keepdims=True)
    mean = table[first].mean(0)
    similarity = unit @ (mean / np.linalg.norm(mean))
    expected = others[np.argsort(similarity, kind="stable")[: 30 - len(first)]]
    np.testing.assert_array_equal(np.sort(items[~target]), np.sort(expected))
    assert similarity.max() > np.max(similarity[np.isin(others, items[~target])])


@needs_data
def test_amazon_is_deterministic_and_seeded():
    a = sf.datasets.amazon(AMAZON, "safety")[0]
    b = sf.datasets.amazon(AMAZON, "safety")[0]
    c = sf.datasets.amazon(AMAZON, "safety", seed=2)[0]
    np.testing.assert_array_equal(a.pool, b.pool)
    np.testing.assert_array_equal(a.items, b.items)
    assert not np.array_equal(a.target, c.target)  # positions move with the seed
    for x, y in zip(a.items, c.items):  # the ground sets themselves do not
        assert set(x) == set(y)
    assert sf.datasets.amazon(AMAZON, "safety", dim=8)[0].feature_shape == (8,)
    with pytest.raises(ValueError, match="`dim` must be an integer in"):
        sf.datasets.amazon(AMAZON, "safety", dim=500)


@needs_data
def test_amazon_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sf.datasets.amazon(tmp_path / "nowhere", "toys")
    with pytest.raises(ValueError, match="unknown Amazon category 'shoes'"):
        sf.datasets.amazon(AMAZON, "shoes")
    with pytest.raises(FileNotFoundError, match="expected 1_100_100_100_toys_regs.csv"):
        sf.datasets.amazon(tmp_path, "toys")
    (tmp_path / "1_100_100_100_toys_regs.csv").write_text("1,2,3\n4,x,6\n")
    with pytest.raises(FileFormatError, match=r"regs.csv, line 2: expected comma-separated"):
        sf.datasets.amazon(tmp_path, "toys")
    (tmp_path / "1_100_100_100_toys_regs.csv").write_text("1,2,3\n2,3,3\n")
    with pytest.raises(FileFormatError, match=r"line 2: a registry lists an item twice"):
        sf.datasets.amazon(tmp_path, "toys")
    with pytest.raises(ValueError, match=r"`v_size` \(40\) exceeds the 36 items"):
        sf.datasets.amazon(AMAZON, "safety", v_size=40)
    (tmp_path / "1_100_100_100_toys_regs.csv").write_text("1,2,3\n2,3,4\n1,3,4\n")
    (tmp_path / "1_100_100_100_toys_item_names.txt").write_text("1 a\n3 c\n")
    with pytest.raises(FileFormatError, match=r"item_names.txt, line 2: expected '2 <item"):
        sf.datasets.amazon(tmp_path, "toys")


def test_amazon_reference_layout(tmp_path):
    """EquiVSet's `<category>.csv` (quoted floats) and `<category>.pickle` vectors."""
    rng = np.random.default_rng(0)
    vectors = {i: rng.normal(size=6) for i in range(1, 13)}
    (tmp_path / "media.pickle").write_bytes(pickle.dumps(vectors))
    rows = [rng.choice(np.arange(1, 13), int(rng.integers(3, 6)), replace=False)
            for _ in range(9)]
    (tmp_path / "media.csv").write_text("\n".join(",".join(f"{float(i)}" for i in r)
                                                  for r in rows))
    train, val, test = sf.datasets.amazon(tmp_path, "media", features="pickle", v_size=8)
    assert (len(train), len(val), len(test)) == (2, 3, 4)
    np.testing.assert_allclose(train.pool[0], vectors[1], rtol=1e-6)
    np.testing.assert_array_equal(np.sort(train.items[0][train.target[0]]),
                                  np.sort(rows[0] - 1))
    # What `setfix train --dataset amazon:media --features pickle --root DIR` loads.
    from setfix.experiments import Experiment, load_splits

    big = tmp_path / "big"
    big.mkdir()
    vectors = {i: rng.normal(size=6) for i in range(1, 41)}  # 40 items: V of 30 fits
    (big / "media.pickle").write_bytes(pickle.dumps(vectors))
    (big / "media.csv").write_text("\n".join(",".join(f"{float(i)}" for i in r)
                                             for r in rows))
    config = Experiment(dataset="amazon:media", root=str(big), features="pickle")
    train, _, _ = load_splits(config)
    assert train.items.shape[1] == 30 and train.feature_shape == (6,)
    np.testing.assert_allclose(train.pool[39], vectors[40], rtol=1e-6)
    (tmp_path / "media.pickle").write_bytes(b"not a pickle")
    with pytest.raises(FileFormatError, match="media.pickle: not a readable pickle"):
        sf.datasets.amazon(tmp_path, "media", features="pickle", v_size=8)


def test_compounds_offline_default():
    train, val, test = sf.datasets.compounds()
    assert (len(train), len(val), len(test)) == (1000, 100, 100)
    assert train.pool.shape == (1017, 2048) and train.items.shape == (1000, 300)
    assert set(np.unique(train.pool)) <= {0.0, 1.0} and train.pool.sum(1).min() > 0
    assert train.metadata["invalid_smiles"] == []
    assert np.all(train.target.sum(1) == 15)
    # S* holds the 15 most active molecules of each ground set
    from setfix.datasets._compounds import _read_freewilson

    _, activity, _, _ = _read_freewilson()
    for items, target in zip(train.items[:20], train.target[:20]):
        assert activity[items[target]].min() >= activity[items[~target]].max()
    again = sf.datasets.compounds(num_sets=(3, 1, 1))[0]
    np.testing.assert_array_equal(again.items, train.items[:3])
    # disjoint: validation and test sets hold only molecules never seen in training
    splits = sf.datasets.compounds(ground_set=100, num_sets=(20, 5, 5), disjoint=True)
    seen = [set(s.items.ravel()) for s in splits]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    with pytest.raises(ValueError, match="203 valid molecules available to the val split"):
        sf.datasets.compounds(disjoint=True)


@needs_data
def test_compounds_moleculeace():
    train, _, test = sf.datasets.compounds(MOLECULEACE, "CHEMBL214_Ki", ground_set=50,
                                           subset=5, num_sets=(4, 2, 2), bits=512)
    assert train.pool.shape == (3317, 512) and train.items.shape == (4, 50)
    assert test.metadata["target"] == "CHEMBL214_Ki"
    with pytest.raises(ValueError, match="`target` is required with `root`"):
        sf.datasets.compounds(MOLECULEACE)
    with pytest.raises(FileNotFoundError, match="CHEMBL0_Ki"):
        sf.datasets.compounds(MOLECULEACE, "CHEMBL0_Ki")
    with pytest.raises(ValueError, match="`ground_set` \\(5000\\) exceeds"):
        sf.datasets.compounds(MOLECULEACE, "CHEMBL214_Ki", ground_set=5000)


def test_fingerprints_and_invalid_smiles(tmp_path):
    features, valid = sf.datasets.fingerprints(["CCO", "not-a-smiles", "c1ccccc1"],
                                               radius=1, bits=64)
    assert features.shape == (2, 64) and valid.tolist() == [True, False, True]
    assert features.dtype == np.float32 and features.sum() > 0
    table = tmp_path / "T.csv"
    good = ["CCO", "CCN", "CCC", "c1ccccc1", "CC(=O)O", "CCCl"]
    lines = ["smiles,y"] + [f"{s},{i}" for i, s in enumerate(good)]
    lines[3:3] = ["C1CC,0.5", "xyz,9"]  # invalid SMILES on lines 4 and 5
    table.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"2 of 8 SMILES could not be parsed.*line 4"):
        train, _, _ = sf.datasets.compounds(tmp_path, "T", ground_set=4, subset=2,
                                            num_sets=(2, 1, 1), bits=128)
    assert len(train.pool) == 6 and train.pool.sum(1).min() > 0
    assert [line for line, _ in train.metadata["invalid_smiles"]] == [4, 5]
    table.write_text("smiles,activity\nCCO,1\n")
    with pytest.raises(FileFormatError, match="T.csv, line 1: expected a CSV header"):
        sf.datasets.compounds(tmp_path, "T")
    table.write_text("smiles,y\nCCO,1\nCCN,high\n")
    with pytest.raises(FileFormatError, match="T.csv, line 3"):
        sf.datasets.compounds(tmp_path, "T")


def test_bindingdb_takes_the_smallest_kd(tmp_path):
    smiles = ["CCO", "CCN", "CCC", "CCCl", "CC(=O)O", "c1ccccc1", "CCOC", "CNC"]
    rows = ["Drug_ID\tDrug\tTarget_ID\tTarget\tY"]
    for i, s in enumerate(smiles):
        rows.append(f"d{i}\t{s}\tP1\tMKTAYIAK\t{10.0 ** i}")  # Kd grows with i
    rows.append("d0\tCCO\tP1\tMKTAYIAK\t3.0")  # a repeated pair: averaged to 2.0
    rows.append("d1\tCCN\tP2\tGGGG\t0.5")
    rows.append("d9\tnot-a-smiles\tP2\tGGGG\t1.0")  # line 12
    path = tmp_path / "bindingdb_kd.tab"
    path.write_text("\n".join(rows) + "\n")
    train, _, _ = sf.datasets.bindingdb(path, target="P1", ground_set=8, subset=2,
                                        num_sets=(3, 1, 1), bits=64)
    assert train.pool.shape == (8, 64 + 20)
    for items, target in zip(train.items, train.target):
        assert sorted(items[target]) == [0, 1]  # the two strongest: smallest Kd
    with pytest.warns(UserWarning, match="1 of 10 drug-target pairs .*line 12"):
        everything, _, _ = sf.datasets.bindingdb(path, ground_set=9, subset=1,
                                                 num_sets=(2, 1, 1), bits=64)
    assert everything.metadata["pairs"] == 10 and len(everything.pool) == 9
    (tmp_path / "bad.tab").write_text("Drug\tY\nCCO\t1\n")
    with pytest.raises(FileFormatError, match="bad.tab, line 1: expected a header"):
        sf.datasets.bindingdb(tmp_path / "bad.tab")
    with pytest.raises(FileNotFoundError, match="BindingDB table"):
        sf.datasets.bindingdb(tmp_path / "missing.tab")


def test_digits_sets():
    from sklearn.datasets import load_digits

    labels = load_digits().target
    splits = sf.datasets.digits(num_sets=(50, 20, 20))
    assert splits[0].pool.shape == (1797, 1, 8, 8) and splits[0].feature_shape == (1, 8, 8)
    seen = [set(s.items.ravel()) for s in splits]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    for split in splits:
        assert set(split.target.sum(1)) <= {2, 3}
        for items, target in zip(split.items, split.target):
            normal = labels[items[~target]]
            assert len(set(normal)) == 1 and normal[0] not in labels[items[target]]


def _celeba_fixture(root, num_images=40, attributes=("Smiling", "Young", "Male")):
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "img_align_celeba").mkdir(parents=True)
    table = rng.random((num_images, len(attributes))) < 0.5
    lines = [str(num_images), " ".join(attributes)]
    for i, row in enumerate(table):
        name = f"{i + 1:06d}.jpg"
        pixels = rng.integers(0, 255, (22, 18, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "img_align_celeba" / name)
        lines.append(name + "  " + " ".join("1" if a else "-1" for a in row))
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    return table


def test_celeba_fixture(tmp_path):
    table = _celeba_fixture(tmp_path)
    train, val, test = sf.datasets.celeba(tmp_path, set_size=4, num_sets=(6, 2, 2),
                                          image_size=16)
    assert train.feature_shape == (3, 16, 16) and train.pool.dtype == np.float16
    assert train.features().dtype == np.float32
    assert -1 <= train.pool.min() and train.pool.max() <= 1
    rows = np.array([int(f[:6]) - 1 for f in train.metadata["files"]])
    for split in (train, val, test):
        for items, target, pair in zip(split.items, split.target,
                                       split.metadata["attribute_pairs"]):
            assert 2 <= target.sum() <= 3
            assert table[rows[items[~target]]][:, pair].all()
            assert not table[rows[items[target]]][:, pair].any()
    (tmp_path / "list_attr_celeba.txt").write_text("2\nA B\n000001.jpg 1 -1\n000002.jpg 1\n")
    with pytest.raises(FileFormatError, match="list_attr_celeba.txt, line 4"):
        sf.datasets.celeba(tmp_path)
    with pytest.raises(FileNotFoundError, match="CelebA attribute file"):
        sf.datasets.celeba(tmp_path / "img_align_celeba")


def test_pooled_dataset():
    pool = np.arange(12, dtype=np.float32).reshape(6, 2)
    data = sf.SetDataset.from_sets([np.array([0, 5, 2]), np.array([4])], [[1], [0]],
                                   pool=pool)
    assert data.items.dtype == np.int64 and data.feature_shape == (2,)
    np.testing.assert_array_equal(data.features()[0], pool[[0, 5, 2]])
    items, mask, target = next(data.batches(2))
    assert items.shape == (2, 3, 2) and mask.sum() == 4
    both = sf.concatenate(data, sf.SetDataset.from_sets([np.array([1])], [[0]],
                                                        pool=pool[:2] + 100))
    np.testing.assert_array_equal(both.features()[2, 0], pool[1] + 100)
    with pytest.raises(ValueError, match=r"`items` must index rows of `pool` in \[0, 6\)"):
        sf.SetDataset(np.array([[7]]), np.ones((1, 1), bool), np.zeros((1, 1), bool),
                      pool=pool)
    with pytest.raises(ValueError, match="row 1 of `pool` contains NaN"):
        sf.SetDataset.from_sets([np.array([0])], [[0]], pool=np.array([[0.0], [np.nan]]))


@pytest.mark.slow
def test_encoders():
    import jax
    import jax.numpy as jnp

    key = jax.random.key(0)
    cnn = sf.CNNEncoder(3, 16, channels=(4, 8), key=key)
    assert cnn(jnp.ones((3, 16, 16))).shape == (16,)
    f = sf.DeepSet(encoder=cnn, width=8, depth=1, key=key)
    assert f(jnp.ones((5, 3, 16, 16)), jnp.ones(5)).shape == ()
    mlp = sf.MLPEncoder(64, 8, key=key)
    assert sf.DeepSet(encoder=mlp, key=key).embed(jnp.ones((4, 64))).shape == (4, 8)
    with unchecked(), pytest.raises(ValueError, match="exactly one of `in_features`"):
        sf.DeepSet(3, encoder=mlp, key=key)
    with unchecked(), pytest.raises(ValueError, match="must equal `encoder.out_features`"):
        sf.DeepSet(encoder=mlp, hidden=4, key=key)
    with unchecked(), pytest.raises(ValueError, match="CNNEncoder expects one image"):
        cnn(jnp.ones((16, 16)))


@pytest.mark.slow
def test_mean_field_on_image_sets():
    """A batch of image sets: items (b, n, C, H, W), the mask saying what is batched."""
    import jax
    import jax.numpy as jnp

    key = jax.random.key(0)
    f = sf.DeepSet(encoder=sf.CNNEncoder(1, 8, channels=(4,), key=key), width=8,
                   depth=1, key=key)
    items = jax.random.normal(key, (2, 5, 1, 8, 8))
    mask = jnp.array([[True] * 5, [True] * 3 + [False] * 2])
    solution = sf.idiffmf(num_samples=3)(f, items, mask, key=key)
    assert solution.psi.shape == (2, 5) and bool(solution.converged.all())
    assert float(solution.psi[1, 3:].sum()) == 0.0
    with unchecked(), pytest.raises(ValueError, match="matching the leading axes of `items`"):
        sf.idiffmf()(f, items, mask[:, :4], key=key)


@pytest.mark.user_defaults
@pytest.mark.slow
@needs_data
def test_command_line_on_amazon(tmp_path, capsys):
    from setfix.experiments import main

    args = ["train", "--dataset", "amazon:safety", "--root", str(AMAZON), "--epochs", "1",
            "--train-sets", "16", "--val-sets", "8", "--test-sets", "8", "--quiet",
            "--out", str(tmp_path / "run")]
    main(args)
    trained = capsys.readouterr().out.strip().splitlines()[-1]
    main(["evaluate", str(tmp_path / "run")])
    score = float(trained.rsplit(" ", 1)[1])
    assert f"test Jaccard: {score:.2f}" in capsys.readouterr().out


@pytest.mark.user_defaults
@pytest.mark.slow
def test_experiment_on_image_sets(tmp_path):
    """digits end to end: a CNN encoder chosen by the item type, trained, saved and
    re-evaluated to the same figure."""
    from setfix.experiments import evaluate_run, Experiment, load_run, run

    config = Experiment(dataset="digits", method="equivset_copula", epochs=1,
                        train_sets=16, val_sets=8, test_sets=8, batch_size=8)
    results = run(config, tmp_path, progress=False)
    _, model = load_run(tmp_path)
    assert isinstance(model.set_function.phi, sf.CNNEncoder)
    assert isinstance(model.recognition.encoder, sf.CNNEncoder)
    again = evaluate_run(tmp_path)
    assert again["jaccard"] == pytest.approx(results["test_jaccard"], abs=1e-6)


def test_vector_models_initialise_as_the_reference_architecture_always_did():
    """Encoders for other item types must not change how vector models initialise (the
    published figures come from those initialisations)."""
    import equinox as eqx
    import jax

    from setfix.experiments import build_model, Experiment

    key = jax.random.key(3)
    model = build_model(Experiment(), (2,), key)
    reference = sf.DeepSet(2, key=jax.random.split(key)[0])
    for a, b in zip(jax.tree.leaves(eqx.filter(model, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(reference, eqx.is_array)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_experiment_solves_with_at_most_max_steps():
    from setfix.experiments import build_method, Experiment

    assert build_method(Experiment()).max_steps == 20
    assert build_method(Experiment(method="onestep", max_steps=7)).max_steps == 7
    with pytest.raises(ValueError, match="`max_steps` must be a positive integer"):
        Experiment(max_steps=0)


def test_experiment_encoder_option():
    """`encoder='mlp'` gives vector items an MLP φ (and a label of its own, so its runs
    never mix with the reference architecture's); images (a CNN by default) and
    fingerprints (this MLP by default) refuse it."""
    import jax

    from setfix.experiments import build_model, Experiment

    config = Experiment(method="equivset_copula", encoder="mlp")
    model = build_model(config, (2,), jax.random.key(0))
    assert isinstance(model.set_function.phi, sf.MLPEncoder)
    assert isinstance(model.recognition.encoder, sf.MLPEncoder)
    assert Experiment(encoder="mlp").name == "moons-idiffmf-fro-mlp-s0"
    assert Experiment().name == "moons-idiffmf-fro-s0"
    with pytest.raises(ValueError, match="unknown encoder 'cnn'"):
        Experiment(encoder="cnn")
    with pytest.raises(ValueError, match="image items use the CNN"):
        build_model(Experiment(dataset="digits", encoder="mlp"), (1, 8, 8),
                    jax.random.key(0), "image")
    with pytest.raises(ValueError, match="fingerprint items use this MLP already"):
        build_model(Experiment(dataset="compounds", encoder="mlp"), (64,),
                    jax.random.key(0), "fingerprint")
