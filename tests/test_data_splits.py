"""Tests for lincv.data.splits: stratified, deterministic train/val splits, k-fold, subsets."""

import numpy as np
import pytest

from lincv import data, knn


def _labels(counts=(50, 30, 20, 7), seed=0):
  labels = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
  return np.random.default_rng(seed).permutation(labels).astype(np.int32)


def test_train_val_split_partitions_and_is_stratified():
  labels = _labels()
  train_idx, val_idx = data.train_val_split(labels, val_fraction=0.2, seed=3)
  assert train_idx.dtype.kind == "i" and val_idx.dtype.kind == "i"
  np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, val_idx])),
                                np.arange(len(labels)))
  assert len(val_idx) == round(0.2 * len(labels))
  val_counts = np.bincount(labels[val_idx], minlength=4)
  expected = 0.2 * np.bincount(labels)
  assert np.all(np.abs(val_counts - expected) <= 1), (val_counts, expected)


def test_train_val_split_same_seed_same_split_other_seed_other_split():
  labels = _labels()
  a = data.train_val_split(labels, 0.1, seed=7)
  b = data.train_val_split(labels, 0.1, seed=7)
  c = data.train_val_split(labels, 0.1, seed=8)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[1], c[1])


def test_train_val_split_zero_fraction_and_tiny_classes():
  labels = np.array([0, 0, 1, 1, 2], np.int32)
  train_idx, val_idx = data.train_val_split(labels, 0.0)
  np.testing.assert_array_equal(train_idx, np.arange(5))
  assert val_idx.size == 0
  train_idx, _ = data.train_val_split(labels, 0.9)
  assert set(labels[train_idx]) == {0, 1, 2}  # every class keeps one training example


def test_kfold_partitions_and_is_deterministic():
  labels = _labels()
  folds = data.kfold(labels, k=5, seed=1)
  assert len(folds) == 5
  vals = np.concatenate([v for _, v in folds])
  np.testing.assert_array_equal(np.sort(vals), np.arange(len(labels)))  # each example once
  sizes = [len(v) for _, v in folds]
  assert max(sizes) - min(sizes) <= 1
  for train_idx, val_idx in folds:
    assert not set(train_idx) & set(val_idx)
    assert len(train_idx) + len(val_idx) == len(labels)
  again = data.kfold(labels, k=5, seed=1)
  for (a, b), (c, d) in zip(folds, again):
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, d)


def test_kfold_is_the_folds_knn_cross_validates_on():
  # One k-fold assignment: kfold's validation parts are k-NN's folds, groups included.
  labels = _labels()
  n = len(labels)
  groups = np.arange(n) % (n // 2)  # rows i and i + n/2 share a group
  folds = data.kfold(labels, k=4, seed=3, groups=groups)
  for (_, val_idx), rows in zip(folds, knn.fold_indices(n, 4, seed=3, groups=groups)):
    np.testing.assert_array_equal(val_idx, np.sort(rows))
    assert set(groups[val_idx]).isdisjoint(set(groups[np.setdiff1d(np.arange(n), val_idx)]))
  assert knn.fold_indices is data.splits.fold_indices


def test_stratified_subset_keeps_proportions():
  labels = _labels((400, 200, 100))
  keep = data.stratified_subset(labels, 70, seed=0)
  assert len(keep) == len(set(keep)) == 70
  np.testing.assert_array_equal(np.bincount(labels[keep]), [40, 20, 10])


@pytest.mark.parametrize("call, match", [
    (lambda: data.train_val_split([0, 1, -1]), "label -1 is out of range"),
    (lambda: data.train_val_split([[0, 1]]), "shape"),
    (lambda: data.train_val_split([0.0, 1.0]), "integer"),
    (lambda: data.train_val_split([0, 1], val_fraction=1.0), "val_fraction"),
    (lambda: data.kfold([0, 1, 0, 1], k=1), "k must be"),
    (lambda: data.kfold([0, 1, 0, 1], k=5), "k must be"),
    (lambda: data.stratified_subset([0, 1], 3), "subset size"),
    # These failed inside NumPy or JAX, with messages about slices and tracers.
    (lambda: data.stratified_subset([0, 1, 0, 1], 2.5),
     r"subset size must be an integer in \[0, 4\], got 2.5"),
    (lambda: data.train_val_split([0, 1, 0, 1], 0.5, seed=-1),
     r"seed must be an integer in \[0, 18446744073709551615\], got -1"),
    (lambda: data.kfold([0, 1, 0, 1], 2, seed=1.5), r"seed must be an integer .*, got 1.5"),
    # jax.random.key keeps a seed's low 32 bits: these gave the folds of seeds 0 and
    # 2**32 - 1, silently (and 2**63 an OverflowError).
    (lambda: data.kfold([0, 1, 0, 1], 2, seed=2**32),
     r"seed must be an integer in \[0, 4294967295\], got 4294967296"),
    (lambda: data.kfold([0, 1, 0, 1], 2, seed=2**63), r"seed must be an integer in \[0, 4294"),
    (lambda: knn.fold_indices(4, 2, seed=-1), r"in \[0, 4294967295\], got -1"),
])
def test_bad_split_arguments(call, match):
  with pytest.raises(data.DataError, match=match):
    call()


def test_stratified_subset_keeps_a_rare_class():
  # A class of 5 in 2,005 has a share of 0.25 of 100: it kept none, and a classifier
  # trained on the subset (data.limit) never saw it, silently. It takes one from the
  # largest class instead; with fewer places than classes, some class must go.
  labels = _labels((1000, 1000, 5))
  keep = data.stratified_subset(labels, 100, seed=0)
  assert len(keep) == len(set(keep)) == 100
  counts = np.bincount(labels[keep], minlength=3)
  assert counts[2] == 1 and sorted(counts[:2]) == [49, 50]
  assert (np.bincount(labels[data.stratified_subset(labels, 3)], minlength=3) == 1).all()
  assert len(data.stratified_subset(labels, 2)) == 2


def test_stratified_subset_is_unchanged_where_every_class_has_a_share():
  # The same subsets as before for the usual case: exact proportional shares.
  labels = _labels((400, 200, 100))
  keep = data.stratified_subset(labels, 70, seed=3)
  members = data.splits._class_members(labels, np.random.default_rng(3))
  want = np.sort(np.concatenate([m[:t] for m, t in zip(members, (40, 20, 10))]))
  np.testing.assert_array_equal(keep, want)
