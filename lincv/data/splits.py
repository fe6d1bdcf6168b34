"""Deterministic index splits: stratified train/validation and subsets, k-fold.

Every function takes a seed and returns int64 index arrays; the same input and seed give
the same indices on every machine (numpy's PCG64 generator for the stratified splits,
`jax.random.permutation` for the folds). Stratified means each class keeps its share of
examples in every part, to within one example per class.
"""

import jax
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


def _keep_every_class(take: np.ndarray, counts: np.ndarray) -> np.ndarray:
  """`take` (from `_apportion(counts, total)`) with every class given at least one, where
  the total allows: each class that got none takes one from the class that got the most
  above its exact share (of those with two or more). Unchanged where none got 0."""
  take = take.copy()
  exact = counts * (take.sum() / counts.sum())
  if take.sum() < len(take):
    return take
  for k in np.flatnonzero(take == 0):
    j = int(np.argmax(np.where(take > 1, take - exact, -np.inf)))
    take[j] -= 1
    take[k] += 1
  return take


def _check_int(name: str, value, low: int, high: int) -> None:
  """A DataError unless `value` is an integer in [low, high] (a seed of 1.5 or -1, or a
  subset size of 2.5, failed deep inside NumPy or JAX)."""
  if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
      or not low <= value <= high):
    raise DataError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _check_seed(seed) -> None:
  _check_int("seed", seed, 0, 2**64 - 1)


def _check_key_seed(seed) -> None:
  """The seed of `jax.random.key`, which keeps its low 32 bits: 2**32 gave the folds of
  0, and -1 those of 2**32 - 1, silently."""
  _check_int("seed", seed, 0, 2**32 - 1)


def stratified_subset(labels, size: int, seed: int = 0) -> np.ndarray:
  """Indices of `size` examples drawn without replacement, keeping class proportions.

  Every class present keeps at least one example when `size` is at least the number of
  classes present (a class of 5 examples in 2,005 has a share of 0.25 of 100; it kept
  none, and a classifier trained on the subset never saw it).

  Args:
    labels: integer class indices (N,).
    size: how many to keep, 0 <= size <= N.
    seed: the same seed gives the same subset.

  Returns:
    sorted int64 indices (size,).
  """
  labels_N = check_labels(labels)
  n = len(labels_N)
  _check_int("subset size", size, 0, n)
  _check_seed(seed)
  members = _class_members(labels_N, np.random.default_rng(seed))
  counts = np.array([len(m) for m in members])
  take = _keep_every_class(_apportion(counts, size), counts) if n else []
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
  _check_seed(seed)
  n = len(labels_N)
  members = _class_members(labels_N, np.random.default_rng(seed))
  sizes = np.array([len(m) for m in members], dtype=np.int64)
  take = _apportion(sizes, int(round(float(val_fraction) * n))) if n else sizes
  take = np.minimum(take, np.maximum(sizes - 1, 0))
  val = [m[:t] for m, t in zip(members, take)]
  train = [m[t:] for m, t in zip(members, take)]
  empty = [np.zeros(0, np.int64)]
  return np.sort(np.concatenate(train or empty)), np.sort(np.concatenate(val or empty))


def kfold(labels, k: int, seed: int = 0, *, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
  """k-fold cross-validation splits: the folds of `fold_indices(N, k, seed, groups)`.

  Fold sizes differ by at most one (in groups, with `groups`); the rows of one group
  share a fold. The k validation parts partition range(N).

  Args:
    labels: integer class indices (N,).
    k: number of folds, 2 <= k <= N (or the number of groups).
    seed: an integer in [0, 2**32); the same labels and seed give the same folds.
    groups: optional (N,) group of each example, e.g. the image it was made from.

  Returns:
    k pairs (train_idx, val_idx) of sorted int64 index arrays; fold i validates on
    val_idx and trains on all other examples.
  """
  labels_N = check_labels(labels)
  n = len(labels_N)
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= n:
    raise DataError(f"k must be an integer in [2, N={n}], got {k!r}")
  _check_key_seed(seed)
  every = np.arange(n)
  fold_of = np.empty(n, np.int64)
  for i, rows in enumerate(fold_indices(n, k, seed, groups)):
    fold_of[rows] = i
  return [(every[fold_of != i], every[fold_of == i]) for i in range(k)]


def fold_indices(n: int, num_folds: int, seed: int = 0, groups=None) -> list[np.ndarray]:
  """A random partition of range(n) into num_folds folds; rows of one group share a fold.

  Without `groups`, fold f is the f-th contiguous piece of
  `jax.random.permutation(key(seed), n)` and fold sizes differ by at most 1. With
  `groups` (N,), e.g. the image each row was made from (an image and its mirrored copy),
  the G distinct groups are permuted and split the same way, and every row goes to its
  group's fold: the fold sizes in groups differ by at most 1, and rows of a group are
  listed in index order after those of the groups before it. `groups=arange(n)` gives
  the same folds as no groups. This is lincv's one k-fold assignment: `kfold` and k-NN
  cross-validation (`lincv.knn.cross_validate`) both use it.

  Returns:
    num_folds integer index arrays that partition range(n), in the order above.
  """
  if isinstance(num_folds, bool) or not isinstance(num_folds, (int, np.integer)) or num_folds < 1:
    raise ValueError(f"num_folds must be a positive integer, got {num_folds!r}")
  _check_key_seed(seed)
  if groups is None:
    g, members = n, None
  else:
    groups = np.asarray(groups)
    if groups.shape != (n,):
      raise ValueError(f"groups must have shape ({n},), got {groups.shape}")
    _, inverse = np.unique(groups, return_inverse=True)
    g = int(inverse.max()) + 1 if n else 0
    order = np.argsort(inverse, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(inverse, minlength=g))[:-1])
  what = "examples" if groups is None else "groups"
  if num_folds < 2 or num_folds > g:
    raise ValueError(f"num_folds must be in [2, {g}] for {g} {what}, got {num_folds}")
  folds = np.array_split(np.asarray(jax.random.permutation(jax.random.key(seed), g)),
                         num_folds)
  if members is None:
    return folds
  return [np.concatenate([members[i] for i in fold]) for fold in folds]
