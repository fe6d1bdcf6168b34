"""Classification metrics on predicted and true labels."""

import numpy as np

from lincv._checks import check_count


def accuracy(pred_N, labels_N) -> float:
  """Fraction of predictions equal to the labels.

  Raises ValueError unless both are vectors of one length (class scores (N, C) or one-hot
  labels would be compared entry by entry), and for no labels (a split without rows), whose
  accuracy is undefined."""
  pred_N, labels_N = np.asarray(pred_N), np.asarray(labels_N)
  if pred_N.ndim != 1 or pred_N.shape != labels_N.shape:
    raise ValueError(f"predictions {pred_N.shape} and labels {labels_N.shape} must be vectors "
                     "of one length: class indices (N,), e.g. scores.argmax(axis=1)")
  if not labels_N.size:
    raise ValueError("no labels to score: the accuracy of an empty split is undefined; "
                     "evaluate a split that has rows")
  return float(np.mean(pred_N == labels_N))


def confusion_matrix(pred_N, labels_N, num_classes: int) -> np.ndarray:
  """Counts (C, C): row = true class, column = predicted class.

  Raises ValueError unless both are integer vectors of one length with values in
  [0, num_classes) (a -1 would otherwise count as the last class)."""
  num_classes = check_count("num_classes", num_classes)
  pred_N, labels_N = np.asarray(pred_N), np.asarray(labels_N)
  if pred_N.ndim != 1 or pred_N.shape != labels_N.shape:
    raise ValueError(f"predictions {pred_N.shape} and labels {labels_N.shape} must be "
                     "vectors of one length")
  for name, v in (("predictions", pred_N), ("labels", labels_N)):
    if v.size and not np.issubdtype(v.dtype, np.integer):
      raise ValueError(f"{name} must be integer classes, got dtype {v.dtype}")
    lo, hi = (v.min(), v.max()) if v.size else (0, 0)
    if lo < 0 or hi >= num_classes:
      bad = lo if lo < 0 else hi
      raise ValueError(f"{name} hold class {bad}, out of range for {num_classes} classes; "
                       f"valid classes are 0..{num_classes - 1}")
  out = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(out, (labels_N, pred_N), 1)
  return out
