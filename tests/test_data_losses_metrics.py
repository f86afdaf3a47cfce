"""Datasets, the mean-field loss with negative sampling, prediction and Jaccard."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import setfix as sf
from setfix.datasets._synthetic import _make_moons

from .helpers import unchecked


def test_make_moons_matches_scikit_learn():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    for seed in (0, 7, 2999):
        x, y = sklearn_datasets.make_moons(200, noise=0.1, random_state=seed)
        ours, labels = _make_moons(200, 0.1, seed)
        assert np.array_equal(ours, x) and np.array_equal(labels, y)


@pytest.mark.parametrize("loader", [sf.datasets.moons, sf.datasets.gaussian])
def test_synthetic_construction(loader):
    train, val, test = loader(num_sets=20)
    again = loader(num_sets=20)[0]
    assert np.array_equal(train.items, again.items)  # deterministic
    for split in (train, val, test):
        assert split.items.shape == (20, 100, 2) and split.items.dtype == np.float32
        assert np.all(split.mask)
        assert np.all(split.target.sum(axis=1) == 10)
    assert not np.array_equal(train.items, val.items)
    # The anomalies lie in the other component: on average farther from the set's mean.
    x, t = train.items, train.target
    centre = np.median(x, axis=1, keepdims=True)
    dist = np.linalg.norm(x - centre, axis=-1)
    assert dist[t].mean() > dist[~t].mean()


def test_moons_geometry():
    train, _, _ = sf.datasets.moons(num_sets=5)
    x = train.items.reshape(-1, 2)
    # make_moons spans x in [-1, 2], y in [-0.5, 1]; scaled by 2 and shifted.
    assert -3.8 < x[:, 0].min() and x[:, 0].max() < 3.8
    assert -1.9 < x[:, 1].min() and x[:, 1].max() < 2.2


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="`s_size`"):
        sf.datasets.moons(v_size=5, s_size=6, num_sets=1)
    with pytest.raises(ValueError, match="`num_sets`"):
        sf.datasets.gaussian(num_sets=0)


def test_set_dataset_padding_and_batches():
    items = [np.ones((3, 2)), np.ones((5, 2)), np.ones((4, 2))]
    data = sf.SetDataset.from_sets(items, [np.array([0]), np.array([1, 4]),
                                           np.array([False, True, True, False])])
    assert data.items.shape == (3, 5, 2)
    assert data.mask.sum(1).tolist() == [3, 5, 4]
    assert data.target.sum(1).tolist() == [1, 2, 2]
    batches = list(data.batches(2))
    assert [len(b[0]) for b in batches] == [2, 1]
    assert [len(b[0]) for b in data.batches(2, drop_last=True)] == [2]
    shuffled = np.concatenate([b[1].sum(1) for b in
                               data.batches(1, rng=np.random.default_rng(0))])
    assert sorted(shuffled.tolist()) == [3, 4, 5]
    assert len(data[1:]) == 2


def test_set_dataset_bad_input():
    with pytest.raises(ValueError, match="target indices of set 0"):
        sf.SetDataset.from_sets([np.ones((3, 2))], [np.array([3])])
    with pytest.raises(ValueError, match="has 1 sets but `targets` has 2"):
        sf.SetDataset.from_sets([np.ones((3, 2))], [np.array([0]), np.array([1])])
    with pytest.raises(ValueError, match="empty ground set"):
        sf.SetDataset(np.ones((2, 3, 1), np.float32), np.array([[1, 1, 1], [0, 0, 0]], bool),
                      np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="marks padded items"):
        sf.SetDataset(np.ones((1, 3, 1), np.float32), np.array([[1, 1, 0]], bool),
                      np.array([[0, 0, 1]], bool))
    with pytest.raises(ValueError, match="NaN"):
        sf.SetDataset(np.full((1, 3, 1), np.nan, np.float32), np.ones((1, 3), bool),
                      np.zeros((1, 3), bool))
    with pytest.raises(ValueError, match="`mask` must have shape"):
        sf.SetDataset(np.ones((1, 3, 1), np.float32), np.ones((1, 2), bool),
                      np.zeros((1, 3), bool))


def test_mean_field_nll_and_negatives():
    psi = jnp.array([[0.9, 0.2, 0.4, 0.7, 0.5]])
    target = jnp.array([[True, False, False, True, False]])
    mask = jnp.array([[True, True, True, True, False]])
    expected_all = -(np.log(0.9) + np.log(0.7) + np.log(0.8) + np.log(0.6))
    assert np.isclose(sf.mean_field_nll(psi, target, mask)[0], expected_all)
    negatives = jnp.array([[False, True, False, False, False]])
    expected = -(np.log(0.9) + np.log(0.7) + np.log(0.8))
    assert np.isclose(sf.mean_field_nll(psi, target, mask, negatives)[0], expected)
    # neg_num x |S*| distinct real non-members, resampled per key.
    key = jax.random.key(0)
    big_target = jnp.zeros((50, 30), bool).at[:, :3].set(True)
    big_mask = jnp.ones((50, 30), bool).at[:, 25:].set(False)
    neg = sf.sample_negatives(key, big_target, big_mask, neg_num=2)
    assert np.all(neg.sum(1) == 6)
    assert not np.any(neg & big_target) and not np.any(neg & ~big_mask)
    assert not np.array_equal(neg, sf.sample_negatives(jax.random.key(1), big_target,
                                                       big_mask, neg_num=2))
    assert np.array_equal(sf.sample_negatives(key, big_target, big_mask, None),
                          big_mask & ~big_target)
    with pytest.raises(ValueError, match="`neg_num`"):
        sf.sample_negatives(key, big_target, big_mask, neg_num=0)
    with unchecked(), pytest.raises(ValueError, match="`target` must have the shape"):
        sf.mean_field_nll(psi, target[:, :3], mask)



def test_mean_field_nll_from_logits():
    """The same likelihood as `mean_field_nll` at psi = sigmoid(z) inside the clipping
    range; exact outside it, where the clipped form is flat."""
    psi = jnp.array([[0.9, 0.2, 0.4, 0.7, 0.5]])
    logits = jnp.log(psi) - jnp.log1p(-psi)
    target = jnp.array([[True, False, False, True, False]])
    mask = jnp.array([[True, True, True, True, False]])
    negatives = jnp.array([[False, True, False, False, False]])
    for neg in (None, negatives):
        assert np.isclose(sf.mean_field_nll_from_logits(logits, target, mask, neg)[0],
                          sf.mean_field_nll(psi, target, mask, neg)[0], rtol=1e-6)
    # A member at z = -30 (psi ~ 1e-13): the clipped form charges -log(1e-6) and is
    # flat; the logit form charges 30 + log(1 + e^-30) with slope sigma(z) - 1 = -1
    # (plus log 2, slope 1/2, for the non-member at z = 0).
    z = jnp.array([[-30.0, 0.0]])
    one = jnp.array([[True, False]])
    both = jnp.ones((1, 2), bool)
    assert np.isclose(sf.mean_field_nll_from_logits(z, one, both)[0], 30 + np.log(2))
    slope = jax.grad(lambda z: sf.mean_field_nll_from_logits(z, one, both)[0])(z)
    assert np.allclose(slope, [[-1.0, 0.5]])
    flat = jax.grad(lambda p: sf.mean_field_nll(p, one, both)[0])(jax.nn.sigmoid(z))
    assert float(flat[0, 0]) == 0.0
    with unchecked(), pytest.raises(ValueError, match="`mask` must have the shape of `logits`"):
        sf.mean_field_nll_from_logits(logits, target, mask[:, :3])
    with unchecked(), pytest.raises(ValueError, match="`negatives` must have the shape"):
        sf.mean_field_nll_from_logits(logits, target, mask, negatives[:, :2])

def test_predict_and_jaccard():
    psi = jnp.array([[0.1, 0.9, 0.8, 0.95, 0.3], [0.5, 0.5, 0.5, 0.2, 0.1]])
    mask = jnp.array([[True, True, True, False, True], [True] * 5])
    pred = sf.predict(psi, mask, jnp.array([2, 2]))
    # The padded item with the largest psi is never predicted; ties go by position.
    assert pred.tolist() == [[False, True, True, False, False],
                             [True, True, False, False, False]]
    target = jnp.array([[False, True, False, False, True], [True, True, False, False, False]])
    scores = sf.jaccard(pred, target, mask)
    assert np.allclose(scores, [1 / 3, 1.0])
    assert sf.predict_threshold(psi, mask, 0.5).tolist()[0] == [False, True, True, False,
                                                                 False]
    assert float(sf.jaccard(jnp.zeros(3, bool), jnp.zeros(3, bool), jnp.ones(3, bool))) == 1


def test_predict_rejects_k_larger_than_the_ground_set():
    psi = jnp.full((2, 4), 0.5)
    mask = jnp.array([[True, True, True, False], [True] * 4])
    with pytest.raises(Exception, match=r"\|S\*\| > \|V\|"):
        sf.predict(psi, mask, jnp.array([4, 4]))
    with pytest.raises(Exception, match=r"`k` must lie"):
        jax.jit(sf.predict)(psi, mask, jnp.array([1, -1]))
