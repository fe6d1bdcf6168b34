"""k-nearest neighbours with L1 and L2 distances, in bounded memory: search and vote.

Distances between a test row a and a training row b (D features):

  L1:  d(a, b) = sum_d |a_d - b_d|
  L2:  d(a, b) = sqrt(sum_d (a_d - b_d)^2),  with  |a - b|^2 = |a|^2 - 2 a.b + |b|^2

so that the L2 distances of a chunk of test rows to a block of training rows are one
matrix product. The search never holds the full (M, N) distance matrix: it walks over
blocks of training rows, and for each block over chunks of test rows, keeping a running
(M, k) table of the nearest neighbours found so far (`jax.lax.top_k` over the running
table and the new block). L1 has no matrix-product form; its (chunk, block) distances are
accumulated feature by feature, so memory stays at one (chunk, block) table.

Neighbour order and the tie rule. Neighbours are sorted by distance, and equal distances
by training index (the lower index first), so the search is deterministic. The vote of
the k nearest picks the class with the most votes; with `tie_break="nearest"` (the
default) a tie between classes goes to the class whose nearest member among the k comes
first in that order, so k = 2 with two different labels agrees with k = 1. With
`tie_break="smallest"` it goes to the smallest label (the rule of the lecture notes'
assignment).

Precision. Rows are searched in float32 (float16 and bfloat16 rows are widened first:
their squared norms overflow past 65,504; integers such as uint8 pixels become float32)
or in float64 (with 64-bit JAX on). The L2 expansion cancels digits: its error is a few
eps (|a|^2 + |b|^2), and on raw 0-255 CIFAR-10 pixels in float32 it reached 1.25e-6
|a|^2: a distance of 45.6 (grey levels) between an image and itself. So both sides are shifted
by the mean training row first (distances do not change under a common shift, and the
norms shrink; the mean is rounded so that rows of small integers stay exact): on 500 of
those images the self-distance fell from 45.6 to 18.5, and an image's exact copy now
comes before a copy one grey level off in 89% of rows rather than 40%. Near-ties closer
than that can still order differently than exact arithmetic would. L1 is exact to
rounding. Both metrics divide the rows by the power of two of their largest magnitude
first (L2 again once shifted): exact, and no square or sum of the search passes the
dtype's range either way, so rows of 1e-20 or 1e36 find the neighbours rows of 1 do
(`_unit`).

Non-finite rows are refused (`ValueError` naming the array and row): a NaN distance
never ranks, so a NaN query row would otherwise come back with index -1.
"""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np

from lincv import chunked, precision
from lincv._checks import (check_count, check_name, first_nonfinite_row, wide_ints_as_float32,
                           working_float)

METRICS = ("l1", "l2")
TIE_BREAKS = ("nearest", "smallest")
DEFAULT_KS = (1, 3, 5, 8, 10, 12, 15, 20, 50, 100)

# Largest chunk of test rows and block of training rows per step, per metric. L2 blocks
# are wide (one matrix product each); L1 tables are kept small enough to stay in cache.
_CHUNK = {"l2": 512, "l1": 256}
_TRAIN_BLOCK = {"l2": 16384, "l1": 2048}
_L1_UNROLL = 4


def _as_float(x, name: str = "x"):
  """Rows as float32, or float64 where they are float64 (and 64-bit JAX is on): integers
  (uint8 pixels), float16 and bfloat16 are widened, host rows on the host. Raises
  ValueError on a non-finite value, naming `name` and its row (not under `jit`, where the
  values are not known). Host rows are checked on the host (`first_nonfinite_row`) and
  copied there, then moved to the device without a program (`jnp.asarray` compiled one
  per shape). The copy is the search's own: on a CPU a device array shares the memory of
  the host array it was made from, and a search still running (JAX returns before its
  programs end) saw the caller's rows change under it."""
  if not isinstance(x, jax.Array):
    x = np.asarray(wide_ints_as_float32(x))
    x = x.astype(working_float(x.dtype))      # a copy
  elif working_float(x.dtype) != x.dtype:
    x = x.astype(jnp.float32)
  if not isinstance(x, jax.core.Tracer) and x.size:    # under jit: no values to check
    row = first_nonfinite_row(x)
    if row is not None:
      raise ValueError(f"{name} row {row} holds a non-finite value; k-NN needs finite rows")
  return x if isinstance(x, jax.Array) else jax.device_put(x)


def _offset(x_train_NxD):
  """The mean training row (1, D), rounded to a multiple of g, a power of two: 2^-8 of the
  rows' largest magnitude, or 2^-4 of their largest distance from the mean where that is
  smaller. Rows of integers (small ones, whose distances are exact) stay exact once
  shifted, and so do their ties; the rounding leaves the rows at most 1/32 of their spread
  further from the origin than the mean would.

  The grid of the magnitude alone left rows of 1e6 + 5 N(0, 1) (float32) up to 1,024
  from their mean, where the expansion cancelled again: 27% of their 5-nearest lists came
  out as float64's (92% of the nearest), all of them with the mean subtracted."""
  top = jnp.max(jnp.abs(x_train_NxD))
  mean = jnp.mean(x_train_NxD, axis=0, keepdims=True)
  spread = jnp.max(jnp.abs(x_train_NxD - mean))
  g = jnp.minimum(_power_of_two(jnp.where(top > 0, top, 1), -8),
                  _power_of_two(jnp.where(spread > 0, spread, 1), -4))
  return jnp.round(mean / g) * g


def _power_of_two(x, shift: int = 0):
  """2^(floor(log2 x) + shift) for x > 0, exactly, in x's dtype. XLA's `exp2` of an integer
  is not always a power of two (2^-7 came out one ulp above in float64, and the float32
  rows' 2^-15 and 2^13 were off too), and a shift by such a grid broke the exact ties
  of integer rows: equal distances came back out of index order."""
  _, e = jnp.frexp(x)                  # x = m 2^e, m in [0.5, 1)
  return jnp.ldexp(jnp.ones((), x.dtype), e - 1 + shift)


def _scaled(x_test_MxD, x_train_NxD, metric):
  """The rows the search compares, and the unit of their distances: (test rows, training
  rows, unit). Both sides over `_unit`; for L2 then less `_offset` (the same distances,
  fewer digits cancelled) and over `_unit` again (the shifted rows may be far smaller)."""
  unit = _unit(x_test_MxD, x_train_NxD)
  x_test_MxD, x_train_NxD = x_test_MxD / unit, x_train_NxD / unit
  if metric == "l2":
    m_1xD = _offset(x_train_NxD)         # of rows in [-2, 2): their sum stays in range
    x_test_MxD, x_train_NxD = x_test_MxD - m_1xD, x_train_NxD - m_1xD
    inner = _unit(x_test_MxD, x_train_NxD)
    x_test_MxD, x_train_NxD, unit = x_test_MxD / inner, x_train_NxD / inner, unit * inner
  return x_test_MxD, x_train_NxD, unit


def _unit(*rows):
  """The power of two of the rows' largest magnitude (1 for rows of zeros): dividing by
  it is exact and keeps the order, and the distances are its multiples. The rows then
  lie in [-2, 2), so neither their squares nor their sums pass the dtype's range: rows
  near 1e20 in float32 had squared norms past it (inf - inf made every L2 distance NaN),
  rows of 1e36 had L1 distances of inf (every neighbour came back as index -1), and rows
  of 1e-20 had squares below it (every L2 distance was 0, every neighbour the first)."""
  dtype = rows[0].dtype
  top = functools.reduce(jnp.maximum, [jnp.max(jnp.abs(r), initial=0) for r in rows])
  return _power_of_two(jnp.where(top > 0, top, 1).astype(dtype))


def _split(n: int, max_size: int) -> tuple[int, int]:
  """(pieces, size) with pieces * size >= n, size <= max_size, and little padding."""
  pieces = max(1, math.ceil(n / max_size))
  return pieces, math.ceil(n / pieces)


def _sq_l2(q_CxD, b_TxD, qn_C, bn_T):
  """Squared L2 distances `|q|^2 - 2 q.b + |b|^2`, one matrix product, (C, T); the product
  in float32 on any device (`lincv.precision`): the difference cancels most of its digits."""
  with precision.exact():
    qb_CxT = jnp.einsum("cd,td->ct", q_CxD, b_TxD)
  return qn_C[:, None] - 2 * qb_CxT + bn_T[None, :]


def _l1(q_CxD, b_TxD):
  """L1 distances, accumulated one feature at a time into a (C, T) table."""
  q_DxC, b_DxT = q_CxD.T, b_TxD.T

  def add(d, acc_CxT):
    qd_C = jax.lax.dynamic_index_in_dim(q_DxC, d, 0, keepdims=False)
    bd_T = jax.lax.dynamic_index_in_dim(b_DxT, d, 0, keepdims=False)
    return acc_CxT + jnp.abs(qd_C[:, None] - bd_T[None, :])

  acc = jnp.zeros((q_CxD.shape[0], b_TxD.shape[0]), q_CxD.dtype)
  return jax.lax.fori_loop(0, q_CxD.shape[1], add, acc, unroll=_L1_UNROLL)


def _ranking(q_CxD, b_TxD, qn_C, bn_T, metric):
  """Distances that rank like the metric: L1, or squared L2."""
  if metric == "l2":
    return _sq_l2(q_CxD, b_TxD, qn_C, bn_T)
  return _l1(q_CxD, b_TxD)


def _finish(rank_MxK, metric, unit=1):
  """Ranking distances to metric distances (square root for L2), in multiples of `unit`."""
  if metric == "l2":
    return jnp.sqrt(jnp.maximum(rank_MxK, 0)) * unit
  return rank_MxK * unit


def _search(q_MxD, blocks_BxTxD, valid_BxT, block_ids_J, *, k, metric, chunk):
  """k nearest rows of the blocks `block_ids_J` (in that order) for every row of q.

  Returns (ranking distances (M, k), ids (M, k)) with id = block * T + row in block,
  sorted by distance, then by position in the concatenation of the visited blocks.
  M must be a multiple of `chunk`; invalid (padding) rows are never selected while
  enough valid rows exist.
  """
  m = q_MxD.shape[0]
  t = blocks_BxTxD.shape[1]
  qn_M = jnp.sum(q_MxD * q_MxD, axis=-1)
  inf = jnp.array(jnp.inf, q_MxD.dtype)

  def visit(best, block_id):
    b_TxD = blocks_BxTxD[block_id]
    bn_T = jnp.sum(b_TxD * b_TxD, axis=-1)
    ok_T = valid_BxT[block_id]
    ids_T = (block_id * t + jnp.arange(t)).astype(jnp.int32)

    def merge(args):
      q_CxD, qn_C, d_CxK, i_CxK = args
      new_CxT = _ranking(q_CxD, b_TxD, qn_C, bn_T, metric)
      neg_new_CxK, pos_CxK = jax.lax.top_k(jnp.where(ok_T[None, :], -new_CxT, -inf),
                                           min(k, t))
      # The running list comes first, so equal distances keep the lower id first.
      cand_d = jnp.concatenate([d_CxK, -neg_new_CxK], axis=1)
      cand_i = jnp.concatenate([i_CxK, ids_T[pos_CxK]], axis=1)
      _, keep_CxK = jax.lax.top_k(-cand_d, k)
      return (jnp.take_along_axis(cand_d, keep_CxK, axis=1),
              jnp.take_along_axis(cand_i, keep_CxK, axis=1))

    return chunked.map_rows(merge, (q_MxD, qn_M, *best), chunk), None

  init = (jnp.full((m, k), inf), jnp.full((m, k), -1, jnp.int32))
  (best_d, best_i), _ = jax.lax.scan(visit, init, block_ids_J)
  return best_d, best_i


def _check_pair(x_test_MxD, x_train_NxD):
  chex.assert_rank([x_test_MxD, x_train_NxD], 2,
                   custom_message="inputs 0, 1: x_test_MxD (M, D), x_train_NxD (N, D)")
  if x_test_MxD.shape[1] != x_train_NxD.shape[1]:
    raise ValueError(
        f"x_test and x_train must have the same number of features, got shapes "
        f"{x_test_MxD.shape} and {x_train_NxD.shape}")


def distances(x_test_MxD, x_train_NxD, metric: str = "l2") -> jax.Array:
  """All pairwise distances, (M, N): L1 `sum_d |a_d - b_d|` or L2 `|a - b|_2`.

  Holds the whole (M, N) table; `neighbours` and `predict` search in bounded memory.
  """
  check_name("metric", metric, METRICS)
  x_test_MxD = _as_float(x_test_MxD, "x_test")
  x_train_NxD = _as_float(x_train_NxD, "x_train")
  _check_pair(x_test_MxD, x_train_NxD)
  return _distances(x_test_MxD, x_train_NxD, metric)


@functools.partial(jax.jit, static_argnames="metric")
def _distances(x_test_MxD, x_train_NxD, metric):
  unit = 1
  if x_train_NxD.shape[0]:
    x_test_MxD, x_train_NxD, unit = _scaled(x_test_MxD, x_train_NxD, metric)
  qn_M = jnp.sum(x_test_MxD * x_test_MxD, axis=1)
  bn_N = jnp.sum(x_train_NxD * x_train_NxD, axis=1)
  return _finish(_ranking(x_test_MxD, x_train_NxD, qn_M, bn_N, metric), metric, unit)


@functools.partial(
    jax.jit, static_argnames=("k", "metric", "chunk", "test_pieces", "block", "blocks"))
def _neighbours(x_test_MxD, x_train_NxD, *, k, metric, chunk, test_pieces, block, blocks):
  m, n = x_test_MxD.shape[0], x_train_NxD.shape[0]
  dtype = jnp.result_type(x_test_MxD, x_train_NxD)
  x_test_MxD, x_train_NxD = x_test_MxD.astype(dtype), x_train_NxD.astype(dtype)
  x_test_MxD, x_train_NxD, unit = _scaled(x_test_MxD, x_train_NxD, metric)
  q = chunked.pad_rows(x_test_MxD, test_pieces * chunk, "zeros")
  b_BxTxD = chunked.chunks(x_train_NxD, block, "zeros")
  dist, ids = _search(q, b_BxTxD, chunked.valid(n, block), jnp.arange(blocks),
                      k=k, metric=metric, chunk=chunk)
  return _finish(dist[:m], metric, unit), ids[:m]


def neighbours(x_train_NxD, x_test_MxD, k: int = 1, metric: str = "l2", *,
               chunk_size: int | None = None,
               train_chunk_size: int | None = None) -> tuple[jax.Array, jax.Array]:
  """The k nearest training rows of every test row, nearest first.

  Equal distances are ordered by training index, the lower first.

  Args:
    x_train_NxD: training rows.
    x_test_MxD: test rows.
    k: number of neighbours, 1 <= k <= N.
    metric: "l1" or "l2".
    chunk_size: most test rows per step (default 512 for L2, 256 for L1).
    train_chunk_size: most training rows per step (default 16384 for L2, 2048 for L1).
      Memory is about chunk_size * train_chunk_size distances at a time.

  Returns:
    (distances (M, k), indices (M, k)) into x_train.
  """
  check_name("metric", metric, METRICS)
  x_train_NxD = _as_float(x_train_NxD, "x_train")
  x_test_MxD = _as_float(x_test_MxD, "x_test")
  _check_pair(x_test_MxD, x_train_NxD)
  m, n = x_test_MxD.shape[0], x_train_NxD.shape[0]
  check_count("k", k)
  if n == 0:
    raise ValueError("x_train has no rows; k-NN needs at least one training row")
  if k > n:
    raise ValueError(f"k={k} exceeds the number of training rows ({n}); use 1 <= k <= {n}")
  chunk_size = _CHUNK[metric] if chunk_size is None else chunk_size
  train_chunk_size = _TRAIN_BLOCK[metric] if train_chunk_size is None else train_chunk_size
  check_count("chunk_size", chunk_size)
  check_count("train_chunk_size", train_chunk_size)
  if m == 0:
    return jnp.zeros((0, k), x_test_MxD.dtype), jnp.zeros((0, k), jnp.int32)
  test_pieces, chunk = _split(m, chunk_size)
  blocks, block = _split(n, train_chunk_size)
  return _neighbours(x_test_MxD, x_train_NxD, k=k, metric=metric, chunk=chunk,
                     test_pieces=test_pieces, block=block, blocks=blocks)


@functools.partial(jax.jit, static_argnames=("ks", "num_classes", "tie_break"))
def _votes(labels_MxK, ks: tuple[int, ...], num_classes: int, tie_break: str):
  """Majority vote of the first k labels for every k in ks, (len(ks), M)."""
  m, kmax = labels_MxK.shape
  onehot_MxKxC = jax.nn.one_hot(labels_MxK, num_classes, dtype=jnp.int32)
  counts_MxKxC = jnp.cumsum(onehot_MxKxC, axis=1)
  if tie_break == "nearest":
    seen_MxC = jnp.any(onehot_MxKxC > 0, axis=1)
    first_MxC = jnp.where(seen_MxC, jnp.argmax(onehot_MxKxC, axis=1), kmax)
    penalty_MxC = first_MxC
  else:
    penalty_MxC = jnp.broadcast_to(jnp.arange(num_classes)[None, :], (m, num_classes))
  scale = max(kmax, num_classes) + 1
  preds = []
  for k in ks:
    score_MxC = counts_MxKxC[:, k - 1, :] * scale - penalty_MxC
    preds.append(jnp.argmax(score_MxC, axis=1))
  return jnp.stack(preds)


def vote(labels_MxK, num_classes: int, tie_break: str = "nearest") -> jax.Array:
  """Majority vote over each row of neighbour labels (nearest first), (M,).

  A tie between classes goes, with "nearest", to the class whose first member in the row
  comes earliest; with "smallest", to the smallest label.
  """
  check_name("tie_break", tie_break, TIE_BREAKS)
  check_count("num_classes", num_classes)
  if isinstance(labels_MxK, (list, tuple)):    # chex read a list as one input per entry
    labels_MxK = np.asarray(labels_MxK)
  chex.assert_rank(labels_MxK, 2, custom_message="labels_MxK must be (M, K)")
  chex.assert_type(labels_MxK, int, custom_message="labels_MxK must be integer classes")
  if labels_MxK.shape[1] < 1:
    raise ValueError(f"labels must have at least one neighbour per row (M, K >= 1), got "
                     f"shape {labels_MxK.shape}")
  if not isinstance(labels_MxK, jax.core.Tracer) and np.size(labels_MxK):
    lo, hi = int(np.min(labels_MxK)), int(np.max(labels_MxK))
    if lo < 0 or hi >= num_classes:
      raise ValueError(f"labels must be in [0, {num_classes - 1}] for num_classes="
                       f"{num_classes}, got {lo if lo < 0 else hi}")
  return _votes(labels_MxK, (labels_MxK.shape[1],), num_classes, tie_break)[0]


def _check_labels(y_N, n: int, num_classes: int | None) -> int:
  """Validates integer labels of length n in [0, num_classes); returns num_classes."""
  y = np.asarray(y_N)
  if y.shape != (n,):
    raise ValueError(f"labels must have shape ({n},), got {y.shape}")
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"labels must be integers, got dtype {y.dtype}")
  if n and y.min() < 0:
    raise ValueError(f"labels must be >= 0, got {y.min()}")
  top = int(y.max()) + 1 if n else 1
  if num_classes is None:
    return top
  check_count("num_classes", num_classes)
  if num_classes < top:
    raise ValueError(f"num_classes={num_classes} but labels go up to {top - 1}")
  return num_classes


def predict(x_train_NxD, y_train_N, x_test_MxD, k: int = 1, metric: str = "l2",
            num_classes: int | None = None, *, tie_break: str = "nearest",
            chunk_size: int | None = None,
            train_chunk_size: int | None = None) -> jax.Array:
  """Labels of the test rows by majority vote of their k nearest training rows, (M,).

  Args:
    x_train_NxD, y_train_N: training rows and their integer labels.
    x_test_MxD: rows to label.
    k: number of neighbours that vote, 1 <= k <= N.
    metric: "l1" or "l2".
    num_classes: number of classes (default: largest training label + 1).
    tie_break: "nearest" or "smallest" (see the module docstring).
    chunk_size, train_chunk_size: memory bounds, as for `neighbours`.
  """
  check_name("tie_break", tie_break, TIE_BREAKS)
  # The rows' rank before the labels' length, which is read from them: training rows of
  # shape (1, N, D) said the labels should have shape (1,). (np.ndim: rows may be a list.)
  if np.ndim(x_train_NxD) != 2:
    raise ValueError(f"x_train_NxD must be rows (N, D), got shape {np.shape(x_train_NxD)}")
  num_classes = _check_labels(y_train_N, np.shape(x_train_NxD)[0], num_classes)
  _, idx_MxK = neighbours(x_train_NxD, x_test_MxD, k, metric, chunk_size=chunk_size,
                          train_chunk_size=train_chunk_size)
  labels = jax.device_put(np.array(y_train_N))      # a copy, as `_as_float` makes of rows
  return _vote_neighbours(labels, idx_MxK, num_classes=num_classes, tie_break=tie_break)


@functools.partial(jax.jit, static_argnames=("num_classes", "tie_break"))
def _vote_neighbours(y_N, idx_MxK, num_classes: int, tie_break: str):
  """The vote of the labels of the neighbours `idx_MxK`, (M,): one program with the
  lookup (op by op, indexing compiled six)."""
  return _votes(y_N[idx_MxK], (idx_MxK.shape[1],), num_classes, tie_break)[0]
