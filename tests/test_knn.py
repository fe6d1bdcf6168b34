"""k-NN against a brute-force NumPy reference: distances, neighbour order with ties, votes, CV."""

import re

import jax
import numpy as np
import pytest

from lincv import knn


def _np_distances(x_test, x_train, metric):
  diff = x_test[:, None, :].astype(np.float64) - x_train[None, :, :]
  if metric == "l1":
    return np.abs(diff).sum(-1)
  return np.sqrt((diff**2).sum(-1))


def _np_vote(labels_row, tie_break):
  counts = np.bincount(labels_row)
  tied = np.flatnonzero(counts == counts.max())
  if tie_break == "smallest":
    return tied.min()
  return next(label for label in labels_row if label in tied)  # nearest first


def _np_predict(x_train, y_train, x_test, k, metric, tie_break):
  order = np.argsort(_np_distances(x_test, x_train, metric), axis=1, kind="stable")[:, :k]
  return np.array([_np_vote(y_train[row], tie_break) for row in order])


def _tied_data(seed=0, n_train=53, n_test=19, d=3):
  """Small-integer pixels: many exactly equal distances, all exact in float32."""
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 3, (n_train, d)).astype(np.float32),
          rng.integers(0, 4, n_train),
          rng.integers(0, 3, (n_test, d)).astype(np.float32))


@pytest.mark.parametrize("metric", knn.METRICS)
def test_distances_match_numpy(metric):
  rng = np.random.default_rng(1)
  x_test, x_train = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
  got = np.asarray(knn.distances(x_test, x_train, metric))
  assert got.dtype == np.float32
  ref = _np_distances(x_test, x_train, metric)
  # float32 bounds, D = 5 features, eps = float32 eps, s = |a|^2 + |b|^2 per pair:
  # L1 sums D differences of rounded inputs, error <= (D + 2) eps sum_d (|a_d| + |b_d|);
  # L2 forms |a|^2 - 2 a.b + |b|^2, error <= (D + 2) eps 2 s in the square, which the
  # square root divides by 2 d (plus eps d for the root itself).
  eps = np.finfo(np.float32).eps
  d = x_test.shape[1]
  if metric == "l1":
    tol = (d + 2) * eps * (np.abs(x_test).sum(1)[:, None] + np.abs(x_train).sum(1)[None, :])
  else:
    s = (x_test**2).sum(1)[:, None] + (x_train**2).sum(1)[None, :]
    tol = (d + 2) * eps * 2 * s / (2 * ref) + eps * ref
  assert np.all(np.abs(got - ref) <= tol), np.max(np.abs(got - ref) / tol)


@pytest.mark.parametrize("metric", knn.METRICS)
def test_distances_match_numpy_in_float64(metric, x64):
  rng = np.random.default_rng(1)
  x_test, x_train = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
  np.testing.assert_allclose(knn.distances(x_test, x_train, metric),
                             _np_distances(x_test, x_train, metric), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("metric", knn.METRICS)
def test_neighbours_match_brute_force_with_ties(metric):
  x_train, _, x_test = _tied_data()
  ref = _np_distances(x_test, x_train, metric)
  order = np.argsort(ref, axis=1, kind="stable")[:, :6]
  # chunk sizes that divide neither side, so padding and block merging are exercised
  dist, idx = knn.neighbours(x_train, x_test, 6, metric, chunk_size=7, train_chunk_size=16)
  np.testing.assert_array_equal(idx, order)
  np.testing.assert_allclose(dist, np.take_along_axis(ref, order, axis=1), rtol=1e-6)
  # more neighbours than rows per training block
  _, idx = knn.neighbours(x_train, x_test, 20, metric, chunk_size=5, train_chunk_size=8)
  np.testing.assert_array_equal(idx, np.argsort(ref, axis=1, kind="stable")[:, :20])


@pytest.mark.parametrize("metric", knn.METRICS)
def test_predict_matches_brute_force_vote(metric):
  x_train, y_train, x_test = _tied_data(seed=2)
  for tie_break in knn.TIE_BREAKS:
    for k in (2, 7):
      got = knn.predict(x_train, y_train, x_test, k, metric, tie_break=tie_break,
                        chunk_size=8, train_chunk_size=20)
      np.testing.assert_array_equal(
          got, _np_predict(x_train, y_train, x_test, k, metric, tie_break),
          err_msg=f"k={k}, {tie_break}")
  _, idx = knn.neighbours(x_train, x_test, 9, metric)
  for tie_break in knn.TIE_BREAKS:
    for k in range(1, 10):
      np.testing.assert_array_equal(
          knn.vote(y_train[np.asarray(idx)[:, :k]], 4, tie_break),
          _np_predict(x_train, y_train, x_test, k, metric, tie_break),
          err_msg=f"k={k}, {tie_break}")


def test_tie_rules_by_hand():
  # Neighbours of 0.2: train row 0 (label 3, distance 0.2), then row 1 (label 1, 0.8).
  x_train = np.array([[0.0], [1.0], [5.0]])
  y_train = np.array([3, 1, 0])
  x_test = np.array([[0.2]])
  assert knn.predict(x_train, y_train, x_test, k=2)[0] == 3
  assert knn.predict(x_train, y_train, x_test, k=2, tie_break="smallest")[0] == 1
  # Equal distances: the lower training index comes first.
  _, idx = knn.neighbours(np.array([[-1.0], [1.0]]), np.array([[0.0]]), k=2)
  np.testing.assert_array_equal(idx, [[0, 1]])
  assert knn.predict(np.array([[1.0], [-1.0]]), np.array([2, 0]), np.array([[0.0]]))[0] == 2


def test_vote_by_hand():
  labels = np.array([[1, 2, 2, 1], [2, 1, 1, 2], [0, 3, 3, 0], [4, 4, 0, 1]])
  np.testing.assert_array_equal(knn.vote(labels, 5), [1, 2, 0, 4])
  np.testing.assert_array_equal(knn.vote(labels, 5, "smallest"), [1, 1, 0, 4])
  with pytest.raises(AssertionError, match=r"\[labels_MxK must be integer classes\]"):
    knn.vote(labels.astype(np.float32), 5)


def test_uint8_rows_and_float32_match():
  rng = np.random.default_rng(3)
  x_train = rng.integers(0, 256, (40, 12), dtype=np.uint8)
  x_test = rng.integers(0, 256, (9, 12), dtype=np.uint8)
  y_train = rng.integers(0, 3, 40)
  np.testing.assert_array_equal(
      knn.predict(x_train, y_train, x_test, 3),
      _np_predict(x_train, y_train, x_test, 3, "l2", "nearest"))


def test_fold_indices_partition():
  folds = knn.fold_indices(23, 5, seed=4)
  assert sorted(len(f) for f in folds) == [4, 4, 5, 5, 5]
  np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(23))
  again = knn.fold_indices(23, 5, seed=4)
  assert all(np.array_equal(a, b) for a, b in zip(folds, again))
  assert not all(np.array_equal(a, b) for a, b in zip(folds, knn.fold_indices(23, 5, seed=5)))


def test_fold_indices_keep_a_group_in_one_fold():
  n = 23
  groups = np.arange(2 * n) % n  # rows i and i + n: an image and its mirror image
  folds = knn.fold_indices(2 * n, 5, seed=4, groups=groups)
  np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(2 * n))
  fold_of = np.empty(2 * n, int)
  for f, rows in enumerate(folds):
    fold_of[rows] = f
  np.testing.assert_array_equal(fold_of[:n], fold_of[n:])
  assert sorted(len(f) for f in folds) == [8, 8, 10, 10, 10]  # 4 or 5 groups of 2
  # one row per group: the same folds as without groups
  plain = knn.fold_indices(n, 5, seed=4)
  same = knn.fold_indices(n, 5, seed=4, groups=np.arange(n) + 100)
  assert all(np.array_equal(a, b) for a, b in zip(plain, same))
  with pytest.raises(ValueError, match=r"num_folds must be in \[2, 3\] for 3 groups"):
    knn.fold_indices(6, 4, groups=np.array([0, 0, 1, 1, 2, 2]))
  with pytest.raises(ValueError, match=r"groups must have shape \(6,\)"):
    knn.fold_indices(6, 2, groups=np.zeros(5))


def _fold_by_fold(x, y, folds, ks, metric):
  expected = np.zeros((len(folds), len(ks)))
  for f, test_rows in enumerate(folds):
    train_rows = np.concatenate([folds[g] for g in range(len(folds)) if g != f])
    for j, k in enumerate(ks):
      pred = _np_predict(x[train_rows], y[train_rows], x[test_rows], k, metric, "nearest")
      expected[f, j] = np.mean(pred == y[test_rows])
  return expected


def test_cross_validate_with_groups_and_a_single_k():
  x, y, _ = _tied_data(seed=6, n_train=30, d=4)
  x2, y2 = np.concatenate([x, x[:, ::-1]]), np.concatenate([y, y])  # a "mirrored" copy
  groups = np.arange(60) % 30
  folds = knn.fold_indices(60, 4, seed=2, groups=groups)
  for ks in ((1,), (1, 4)):
    result = knn.cross_validate(x2, y2, ks=ks, num_folds=4, seed=2, groups=groups,
                                chunk_size=5, train_chunk_size=7)
    expected = _fold_by_fold(x2, y2, folds, ks, "l2")
    np.testing.assert_array_equal(result["fold_accuracy"], expected)
    assert np.all(np.isfinite(result["accuracy"])) and result["ks"] == list(ks)
  assert result["best_k"] == (1, 4)[int(np.argmax(expected.mean(axis=0)))]


@pytest.mark.parametrize("metric", knn.METRICS)
def test_cross_validate_matches_fold_by_fold(metric):
  x, y, _ = _tied_data(seed=5, n_train=47, d=4)
  ks = (1, 2, 3, 9)  # 9 > rows per training block
  result = knn.cross_validate(x, y, ks=ks, num_folds=4, metric=metric, seed=1,
                              chunk_size=5, train_chunk_size=6)
  folds = knn.fold_indices(len(x), 4, seed=1)
  expected = np.zeros((4, len(ks)))
  for f, test_rows in enumerate(folds):
    train_rows = np.concatenate([folds[g] for g in range(4) if g != f])
    for j, k in enumerate(ks):
      pred = _np_predict(x[train_rows], y[train_rows], x[test_rows], k, metric, "nearest")
      expected[f, j] = np.mean(pred == y[test_rows])
  np.testing.assert_allclose(result["fold_accuracy"], expected, atol=1e-12)
  np.testing.assert_allclose(result["accuracy"], expected.mean(axis=0), atol=1e-12)
  assert result["ks"] == list(ks)
  assert result["best_k"] == ks[int(np.argmax(expected.mean(axis=0)))]


def test_errors_name_the_problem():
  x_train, y_train, x_test = _tied_data()
  with pytest.raises(ValueError, match="l1, l2"):
    knn.predict(x_train, y_train, x_test, metric="cosine")
  with pytest.raises(ValueError, match="k=60 exceeds the number of training rows"):
    knn.predict(x_train, y_train, x_test, k=60)
  with pytest.raises(ValueError, match="same number of features"):
    knn.predict(x_train, y_train, x_test[:, :2])
  with pytest.raises(ValueError, match="labels must have shape"):
    knn.predict(x_train, y_train[:-1], x_test)
  with pytest.raises(ValueError, match="nearest, smallest"):
    knn.predict(x_train, y_train, x_test, tie_break="random")
  with pytest.raises(ValueError, match="smallest training set"):
    knn.cross_validate(x_train, y_train, ks=(1, 50), num_folds=5)
  with pytest.raises(ValueError, match="num_folds must be in"):
    knn.cross_validate(x_train, y_train, ks=(1,), num_folds=1)
  # A k that is not an integer was cut to one (2.7 searched, and reported, as k=2).
  with pytest.raises(ValueError, match="k must be a positive integer, got 2.7"):
    knn.cross_validate(x_train, y_train, ks=(1, 2.7))


def test_non_finite_rows_and_out_of_range_votes_are_refused():
  x_train, y_train, x_test = _tied_data()
  bad = x_test.copy()
  bad[4, 1] = np.nan
  with pytest.raises(ValueError, match=r"^x_test row 4 holds a non-finite value"):
    knn.predict(x_train, y_train, bad)
  with pytest.raises(ValueError, match=r"^x_test row 4 holds a non-finite value"):
    knn.predict(x_train, y_train, jax.device_put(bad))    # a device array
  bad = x_train.copy()
  bad[7, 0] = np.inf
  with pytest.raises(ValueError, match=r"^x_train row 7 holds a non-finite value"):
    knn.neighbours(bad, x_test)
  with pytest.raises(ValueError, match=r"^x_train row 7"):
    knn.distances(x_test, bad)
  with pytest.raises(ValueError, match=r"^x row 7"):
    knn.cross_validate(bad, y_train, ks=(1,))
  with pytest.raises(ValueError, match=r"labels must be in \[0, 2\] for num_classes=3, got 5"):
    knn.vote(np.array([[5, 5, 1]]), 3)
  with pytest.raises(ValueError, match=r"got -1"):
    knn.vote(np.array([[-1, -1, 2]]), 3)


def test_predict_and_cross_validation_compile_their_own_programs_only(compiled):
  """Op by op, the label lookup, the shift and the gather of the folds' rows and the
  finiteness checks compiled about twenty programs of their own (63 in a digits k-NN run
  where 9 remain); each now runs inside a program or on the host."""
  rng = np.random.default_rng(8)
  x, t = rng.normal(size=(37, 5)), rng.normal(size=(11, 5))   # shapes no other test has
  y = np.arange(37) % 3
  knn.fold_indices(37, 3, seed=0)     # the permutation's programs, compiled before
  compiled.clear()
  for _ in range(2):                  # the second time compiles nothing
    knn.predict(x, y, t, k=3, num_classes=3)
    knn.cross_validate(x, y, ks=(1, 3), num_folds=3, num_classes=3)
  assert sorted(compiled) == ["jit(_cross_validate)", "jit(_neighbours)",
                              "jit(_vote_neighbours)"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [2.0 ** -12, 2.0 ** -7, 1 / 16, 1.0, 2.0 ** 14])
def test_scaled_integer_rows_keep_their_exact_ties_in_index_order(dtype, scale):
  """The L2 search shifts the rows by a mean rounded to a power of two, so that rows of
  small integers times a power of two stay exact, and so do their ties. XLA's exp2 gave
  grids one ulp off a power of two (float64 2^-7; float32 2^-15), and equal distances
  came back out of index order."""
  rng = np.random.default_rng(4)
  x_train, x_test = rng.integers(0, 4, (60, 3)), rng.integers(0, 4, (25, 3))
  exact = ((x_test[:, None, :] - x_train[None, :, :]) ** 2).sum(-1)    # integers: exact
  want = np.argsort(exact, axis=1, kind="stable")[:, :5]
  with jax.enable_x64(dtype == "float64"):
    _, got = knn.neighbours((x_train * scale).astype(dtype), (x_test * scale).astype(dtype),
                            5)
  np.testing.assert_array_equal(got, want)


def test_the_search_holds_its_own_copy_of_host_rows():
  """On a CPU a device array made from aligned host rows shares their memory, and a
  search still running when `predict` returns would see the caller change them."""
  from lincv import aligned   # pylint: disable=import-outside-toplevel
  rows = aligned.empty((64, 16), np.float32)        # as lincv's own rows: shared if not copied
  rows[:] = 0.0
  searched = knn.search._as_float(rows)
  rows[0, 0] = 7.0
  assert float(searched[0, 0]) == 0.0


def test_float16_rows_are_searched_in_float32():
  # Squared norms past float16's 65,504 overflow: a float16 search returned inf and NaN
  # distances and chance-level neighbours.
  rng = np.random.default_rng(4)
  x_train = rng.normal(size=(60, 400)).astype(np.float16) * 20
  y_train = rng.integers(0, 3, 60)
  x_test = x_train[:15] + np.float16(0.5)
  d, i = knn.neighbours(x_train, x_test, k=2)
  assert d.dtype == np.float32 and np.all(np.isfinite(d))
  np.testing.assert_array_equal(i[:, 0], np.arange(15))
  ref = _np_predict(x_train.astype(np.float32), y_train, x_test.astype(np.float32), 3, "l2",
                    "nearest")
  np.testing.assert_array_equal(knn.predict(x_train, y_train, x_test, 3), ref)
  cv = knn.cross_validate(x_train, y_train, ks=(1, 3))
  ref = knn.cross_validate(x_train.astype(np.float32), y_train, ks=(1, 3))
  assert cv["accuracy"] == ref["accuracy"] and cv["best_k"] == ref["best_k"]


def test_rows_with_a_large_common_offset_are_shifted_by_their_spread():
  # Rows of 1e6 + 5 N(0, 1) in float32: the shift's grid was 2^-8 of the rows' magnitude
  # (2,048 here), which left them up to 1,024 from their mean, and the L2 expansion
  # cancelled again: 27% of the 5-nearest lists were float64's.
  rng = np.random.default_rng(8)
  x_train = (1e6 + 5 * rng.normal(size=(500, 64))).astype(np.float32)
  x_test = (1e6 + 5 * rng.normal(size=(100, 64))).astype(np.float32)
  sq = np.square(x_test[:, None].astype(np.float64) - x_train[None]).sum(axis=2)
  _, i = knn.neighbours(x_train, x_test, k=5)
  np.testing.assert_array_equal(i, np.argsort(sq, axis=1, kind="stable")[:, :5])
  y_train = rng.integers(0, 3, 500)
  centred = knn.cross_validate(x_train - np.float32(1e6), y_train, ks=(1, 5))
  _assert_same_cv(knn.cross_validate(x_train, y_train, ks=(1, 5)), centred)


def _assert_same_cv(a, b):
  assert a["accuracy"] == b["accuracy"] and a["best_k"] == b["best_k"]


@pytest.mark.parametrize("metric", knn.METRICS)
@pytest.mark.parametrize("exponent", [-70, 124])
def test_rows_of_any_magnitude_find_the_neighbours_of_their_scaled_rows(metric, exponent):
  # Rows times 2^-70: their squares fell below float32's smallest normal number, every
  # L2 distance was 0 and every neighbour the first training row. Rows times 2^124: L1
  # distances past float32's range were inf, and every neighbour came back as -1 (the
  # running table's empty entry), every prediction the last training row's label.
  rng = np.random.default_rng(9)
  x_train = rng.normal(size=(120, 256)).astype(np.float32)
  x_test = rng.normal(size=(30, 256)).astype(np.float32)
  y_train = rng.integers(0, 3, 120)
  s = np.float32(2.0 ** exponent)               # exact: the same rows, scaled
  d, i = knn.neighbours(x_train, x_test, k=3, metric=metric)
  d_s, i_s = knn.neighbours(x_train * s, x_test * s, k=3, metric=metric)
  np.testing.assert_array_equal(i_s, i)
  with np.errstate(over="ignore"):               # past float32's range: inf, as it is
    np.testing.assert_array_equal(d_s, np.asarray(d) * s)
  np.testing.assert_array_equal(knn.predict(x_train * s, y_train, x_test * s, 3, metric),
                                knn.predict(x_train, y_train, x_test, 3, metric))
  _assert_same_cv(knn.cross_validate(x_train * s, y_train, ks=(1, 3), metric=metric),
                  knn.cross_validate(x_train, y_train, ks=(1, 3), metric=metric))


def test_float32_rows_whose_squared_norms_overflow_still_find_their_neighbours():
  # Rows near 1e20: |a|^2 passed float32's 3.4e38, inf - inf made every distance NaN,
  # and every neighbour came back as -1.
  rng = np.random.default_rng(5)
  x_train = (rng.normal(size=(50, 8)) * 1e20).astype(np.float32)
  x_test = x_train[:6] + (rng.normal(size=(6, 8)) * 1e18).astype(np.float32)
  ref = np.linalg.norm(x_test[:, None].astype(np.float64) - x_train[None], axis=2)
  d, i = knn.neighbours(x_train, x_test, k=3)
  np.testing.assert_array_equal(i, np.argsort(ref, axis=1, kind="stable")[:, :3])
  # The L2 expansion cancels digits (see lincv.knn.search): a few eps (|a|^2 + |b|^2)
  # in the squared distance.
  sq = lambda a: np.square(np.asarray(a, np.float64))
  atol = 8 * np.finfo(np.float32).eps * 2 * sq(x_train).sum(axis=1).max()
  np.testing.assert_allclose(sq(d), sq(np.sort(ref, axis=1)[:, :3]), rtol=1e-6, atol=atol)
  np.testing.assert_allclose(sq(knn.distances(x_test, x_train)), sq(ref), rtol=1e-6,
                             atol=atol)
  y_train = rng.integers(0, 3, 50)
  cv = knn.cross_validate(x_train, y_train, ks=(1, 3))
  ref = knn.cross_validate(x_train / np.float32(2.0 ** 66), y_train, ks=(1, 3))
  assert cv["accuracy"] == ref["accuracy"] and cv["best_k"] == ref["best_k"]


def test_l2_on_raw_pixels_finds_an_exact_copy_first():
  # Raw 0-255 rows: |a|^2 - 2 a.b + |b|^2 in float32 cancels most digits of |a|^2 ~ 1e8.
  # Shifted by the mean training row first, an image's distance to itself is small and
  # its exact copy is nearer than a copy one grey level off (measured on these rows: 0.0
  # and all rows; unshifted: 4.0 and 33% of them).
  rng = np.random.default_rng(5)
  base = rng.integers(0, 256, (1, 3072))
  x = np.clip(base + rng.integers(-40, 41, (300, 3072)), 0, 255).astype(np.float32)
  off = x.copy()
  off[:, 0] += np.where(x[:, 0] < 255, 1, -1)
  self_d = np.diagonal(np.asarray(knn.distances(x, x)))
  _, i = knn.neighbours(np.concatenate([off, x]), x, k=1)
  exact_first = np.mean(np.asarray(i)[:, 0] >= 300)
  assert self_d.max() < 1 and exact_first > 0.9, (self_d.max(), exact_first)


def test_best_k_is_the_smallest_of_the_tied_ks_in_any_order():
  x_train, y_train, _ = _tied_data()
  up = knn.cross_validate(x_train, y_train, ks=(1, 2))   # k = 2 ties k = 1 ("nearest")
  down = knn.cross_validate(x_train, y_train, ks=(2, 1))
  assert up["accuracy"] == down["accuracy"][::-1]
  assert up["accuracy"][0] == up["accuracy"][1]
  assert up["best_k"] == down["best_k"] == 1


def test_empty_pools_votes_and_bad_num_classes_are_refused():
  x_train, y_train, x_test = _tied_data()
  with pytest.raises(ValueError, match="x_train has no rows"):  # said 'use 1 <= k <= 0'
    knn.neighbours(x_train[:0], x_test)
  with pytest.raises(ValueError, match="x_train has no rows"):
    knn.predict(x_train[:0], y_train[:0], x_test)
  with pytest.raises(ValueError, match=r"at least one neighbour per row \(M, K >= 1\)"):
    knn.vote(np.zeros((3, 0), np.int32), 2)
  for bad in (0, -1, 2.0):
    with pytest.raises(ValueError, match=f"num_classes must be a positive integer, got {bad}"):
      knn.vote(np.zeros((0, 3), np.int32), bad)
  with pytest.raises(ValueError, match="num_classes must be a positive integer, got 3.5"):
    knn.predict(x_train, y_train, x_test, num_classes=3.5)
  np.testing.assert_array_equal(knn.vote(np.array([[1, 0, 0]]), 2), [0])


def test_int64_rows_past_2_31_are_searched_as_float32():
  # They went to JAX as int32 and wrapped: 2**33 + 5 was 5, as near to 6 as 5 is.
  x = np.array([[2**33 + 5], [5], [2**34]], np.int64)
  d, i = knn.neighbours(x, np.array([[6]], np.int64), k=2)
  np.testing.assert_array_equal(i, [[1, 0]])
  # d[0, 0], 1, carries the L2 expansion's rounding at this scale (lincv.knn.search).
  np.testing.assert_allclose(d[0, 1], 2**33 - 1, rtol=1e-6)


def test_rows_of_the_wrong_rank_are_named():
  # Training rows of shape (1, N, D) said the labels should have shape (1,); chex said
  # "input 0" without naming it.
  x, y = np.zeros((30, 4), np.float32), np.arange(30) % 3
  with pytest.raises(ValueError, match=re.escape("x_train_NxD must be rows (N, D), got shape "
                                                 "(1, 30, 4)")):
    knn.predict(x[None], y, x)
  np.testing.assert_array_equal(knn.predict(x.tolist(), y, x[:2].tolist()), [0, 0])  # lists
  with pytest.raises(AssertionError, match=re.escape("x_test_MxD (M, D), x_train_NxD (N, D)")):
    knn.predict(x, y, x[0])
  with pytest.raises(AssertionError, match=re.escape("[x_NxD must be rows (N, D)]")):
    knn.cross_validate(x[:, 0], y)


def test_cross_validated_accuracy_is_the_exact_fraction():
  # A float32 quotient: 7 right of 10 was reported as 0.699999988079071.
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(10, 3)).astype(np.float32), rng.integers(0, 3, 10)
  result = knn.cross_validate(x, y, ks=(1,), num_folds=10)
  hits = np.rint(result["fold_accuracy"][:, 0]).astype(int)   # one row per fold
  assert result["fold_accuracy"].dtype == np.float64
  assert result["accuracy"] == [hits.sum() / 10]


def test_ks_that_are_not_a_sequence_of_ks_are_named():
  # ks=3 raised "TypeError: 'int' object is not iterable".
  x, y = np.zeros((10, 2), np.float32), np.arange(10) % 2
  with pytest.raises(ValueError, match=r"ks must be a sequence of k's, such as \(1, 3, 5\), "
                                       r"got 3"):
    knn.cross_validate(x, y, ks=3)


def test_vote_takes_a_list():
  # chex read the list as one input per row: "input 0 has rank 0 ... expected 2".
  np.testing.assert_array_equal(knn.vote([[0, 1, 1], [2, 2, 0]], 3), [1, 2])
