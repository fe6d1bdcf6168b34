"""k-NN cross-validation over k: every fold searched at once, every k voted from one search.

Cross-validation uses every example: each is assigned to one of F folds at random (fold
sizes differ by at most one; with `groups`, the rows of a group, such as an image and its
mirror image, go to one fold together), and all folds are searched at once, vmapped over the fold
axis; each fold's test rows see only the other folds' rows. One search per fold finds the
max(ks) nearest neighbours and every k in `ks` is voted from that single sorted list.
"""

import functools
from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from lincv._checks import check_count, check_name
from lincv.data.splits import fold_indices
from lincv.knn.search import (DEFAULT_KS, METRICS, TIE_BREAKS, _CHUNK, _TRAIN_BLOCK, _as_float,
                              _check_labels, _offset, _search, _split, _unit, _votes)


@functools.partial(
    jax.jit, static_argnames=("ks", "metric", "chunk", "blocks", "num_classes", "tie_break"))
def _cross_validate(x_NxD, idx_FxS, y_FxS, valid_FxS, *, ks, metric, chunk, blocks,
                    num_classes, tie_break):
  x_NxD = x_NxD / _unit(x_NxD)     # in [-2, 2): nothing over- or underflows (see search)
  if metric == "l2":   # one shift for every fold: the same distances (see search)
    x_NxD = x_NxD - _offset(x_NxD)
    x_NxD = x_NxD / _unit(x_NxD)
  x_FxSxD = x_NxD[idx_FxS]
  num_folds, s, d = x_FxSxD.shape
  t = s // blocks
  others_FxJ = jnp.array([[g * blocks + i for g in range(num_folds) if g != f
                           for i in range(blocks)] for f in range(num_folds)])
  x_BxTxD = x_FxSxD.reshape(num_folds * blocks, t, d)
  valid_BxT = valid_FxS.reshape(num_folds * blocks, t)

  def fold(q_SxD, others_J):
    _, ids_SxK = _search(q_SxD, x_BxTxD, valid_BxT, others_J, k=max(ks), metric=metric,
                         chunk=chunk)
    return _votes(y_FxS.reshape(-1)[ids_SxK], ks, num_classes, tie_break)

  preds_FxKsxS = jax.vmap(fold)(x_FxSxD, others_FxJ)
  hits = (preds_FxKsxS == y_FxS[:, None, :]) & valid_FxS[:, None, :]
  return jnp.sum(hits, axis=2)    # counts: divided on the host, in float64


def cross_validate(x_NxD, y_N, ks: Sequence[int] = DEFAULT_KS, num_folds: int = 5,
                   metric: str = "l2", seed: int = 0, num_classes: int | None = None, *,
                   groups=None, tie_break: str = "nearest", chunk_size: int | None = None,
                   train_chunk_size: int | None = None) -> dict:
  """F-fold cross-validated accuracy of k-NN for every k in ks, all folds at once.

  Folds come from `fold_indices(N, num_folds, seed, groups)`: rows of one group (copies
  of one image, such as its mirror image) are never split between a fold and the rows
  that label it. For fold f, the training rows are
  the other folds' rows in fold order (and, within a fold, in `fold_indices` order), the
  order that breaks distance ties. The folds are vmapped; each searches the max(ks)
  nearest neighbours once and votes every k from that list. `chunk_size` and
  `train_chunk_size` bound memory per fold, as for `neighbours`.

  Returns:
    {"ks": [k, ...], "accuracy": [mean over folds, ...],
     "fold_accuracy": (num_folds, len(ks)) array, "best_k": k of highest mean accuracy
     (the smallest such k)}.
  """
  check_name("metric", metric, METRICS)
  check_name("tie_break", tie_break, TIE_BREAKS)
  x_NxD = _as_float(x_NxD, "x")
  chex.assert_rank(x_NxD, 2, custom_message="x_NxD must be rows (N, D)")
  n = x_NxD.shape[0]
  num_classes = _check_labels(y_N, n, num_classes)
  if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
    # ks=3 raised "TypeError: 'int' object is not iterable".
    raise ValueError(f"ks must be a sequence of k's, such as (1, 3, 5), got {ks!r}")
  ks = tuple(ks)
  if not ks:
    raise ValueError("ks must name at least one k")
  for k in ks:
    check_count("k", k)
  ks = tuple(int(k) for k in ks)
  folds = fold_indices(n, num_folds, seed, groups)
  smallest_train = n - max(len(f) for f in folds)
  for k in ks:
    if k > smallest_train:
      raise ValueError(
          f"k={k} exceeds the smallest training set of {num_folds}-fold cross-validation "
          f"({smallest_train} rows); use k <= {smallest_train}")
  chunk_size = _CHUNK[metric] if chunk_size is None else chunk_size
  train_chunk_size = _TRAIN_BLOCK[metric] if train_chunk_size is None else train_chunk_size
  check_count("chunk_size", chunk_size)
  check_count("train_chunk_size", train_chunk_size)
  blocks, rows = _split(max(len(f) for f in folds), train_chunk_size)
  pieces, chunk = _split(rows, chunk_size)
  s = blocks * pieces * chunk
  idx_FxS = np.zeros((num_folds, s), np.int64)
  valid_FxS = np.zeros((num_folds, s), bool)
  for f, fold in enumerate(folds):
    idx_FxS[f, :len(fold)] = fold
    valid_FxS[f, :len(fold)] = True
  # The shift and the gather of the folds' rows run in the one program: op by op they
  # compiled twenty.
  hits_FxK = np.asarray(_cross_validate(
      x_NxD, *jax.device_put((idx_FxS, np.asarray(y_N)[idx_FxS], valid_FxS)), ks=ks,
      metric=metric, chunk=chunk, blocks=blocks, num_classes=num_classes,
      tie_break=tie_break))
  # In float64: a float32 quotient put 7 of 10 in results.csv as 0.699999988079071.
  acc_FxK = hits_FxK / np.array([[len(f)] for f in folds], np.float64)
  mean = acc_FxK.mean(axis=0)
  best_k = min(k for k, a in zip(ks, mean) if a == mean.max())
  return {"ks": list(ks), "accuracy": [float(a) for a in mean],
          "fold_accuracy": acc_FxK, "best_k": best_k}
