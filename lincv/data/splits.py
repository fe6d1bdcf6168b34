"""Deterministic, stratified index splits: train/validation, k-fold, and subsets.

Every function takes integer labels (N,) and a seed and returns sorted int64 index
arrays into them; the same labels and seed give the same indices on every machine
(numpy's PCG64 generator). Stratified means each class keeps its share of examples in
every part, to within one example per class.
"""

import numpy as np

from lincv.data.dataset import DataError, check_labels


def _class_members(labels_N: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
  """Indices of each class present, in class order, each shuffled by `rng`."""
  order = np.argsort(labels_N, kind="stable")
  _, starts = np.unique(labels_N[order], return_index=True)
  return [rng.permutation(members) for members in np.split(order, starts[1:])]


def _apportion(counts: np.ndarray, total: int) -> np.ndarray:
  """Integers close to `total * counts / sum(counts)` that sum to `total` (largest remainder)."""
  exact = counts * (total / counts.sum())
  out = np.floor(exact).astype(np.int64)
  short = total - int(out.sum())
  if short:
    out[np.argsort(-(exact - out), kind="stable")[:short]] += 1
  return out


def stratified_subset(labels, size: int, seed: int = 0) -> np.ndarray:
  """Indices of `size` examples drawn without replacement, keeping class proportions.

  Args:
    labels: integer class indices (N,).
    size: how many to keep, 0 <= size <= N.
    seed: the same seed gives the same subset.

  Returns:
    sorted int64 indices (size,).
  """
  labels_N = check_labels(labels)
  n = len(labels_N)
  if not 0 <= size <= n:
    raise DataError(f"subset size {size} must lie in [0, {n}]")
  members = _class_members(labels_N, np.random.default_rng(seed))
  take = _apportion(np.array([len(m) for m in members]), size) if n else []
  return np.sort(np.concatenate([m[:t] for m, t in zip(members, take)] or [np.zeros(0, np.int64)]))


def train_val_split(labels, val_fraction: float = 0.1,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Stratified split of examples into training and validation indices.

  round(val_fraction * N) examples go to validation, apportioned over classes by their
  size (largest remainder), each class shuffled by `seed`. A class with at least two
  examples keeps at least one in training.

  Args:
    labels: integer class indices (N,).
    val_fraction: share of examples for validation, in [0, 1); 0 gives an empty one.
    seed: the same labels and seed give the same split.

  Returns:
    (train_idx, val_idx): sorted int64 index arrays that partition range(N).
  """
  labels_N = check_labels(labels)
  if not 0.0 <= float(val_fraction) < 1.0:
    raise DataError(f"val_fraction must lie in [0, 1), got {val_fraction}")
  n = len(labels_N)
  members = _class_members(labels_N, np.random.default_rng(seed))
  sizes = np.array([len(m) for m in members], dtype=np.int64)
  take = _apportion(sizes, int(round(float(val_fraction) * n))) if n else sizes
  take = np.minimum(take, np.maximum(sizes - 1, 0))
  val = [m[:t] for m, t in zip(members, take)]
  train = [m[t:] for m, t in zip(members, take)]
  empty = [np.zeros(0, np.int64)]
  return np.sort(np.concatenate(train or empty)), np.sort(np.concatenate(val or empty))


def kfold(labels, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
  """Stratified k-fold cross-validation splits.

  Each class is shuffled by `seed`, the classes are laid end to end, and the examples
  are dealt to folds in turn, so every fold holds each class's share to within one
  example and fold sizes differ by at most one. The k validation parts partition
  range(N).

  Args:
    labels: integer class indices (N,).
    k: number of folds, 2 <= k <= N.
    seed: the same labels and seed give the same folds.

  Returns:
    k pairs (train_idx, val_idx) of sorted int64 index arrays; fold i validates on
    val_idx and trains on all other examples.
  """
  labels_N = check_labels(labels)
  n = len(labels_N)
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= n:
    raise DataError(f"k must be an integer in [2, N={n}], got {k!r}")
  dealt = np.concatenate(_class_members(labels_N, np.random.default_rng(seed)))
  fold_of = np.empty(n, np.int64)
  fold_of[dealt] = np.arange(n) % k
  every = np.arange(n)
  return [(every[fold_of != i], every[fold_of == i]) for i in range(k)]
