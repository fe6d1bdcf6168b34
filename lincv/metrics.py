"""Classification metrics on predicted and true labels."""

import numpy as np

from lincv._checks import check_count


def accuracy(pred_N, labels_N) -> float:
  """Fraction of predictions equal to the labels.

  Raises ValueError unless both are integer vectors of one length (class scores (N, C) or
  one-hot labels would be compared entry by entry; class names, probabilities or a NaN
  never equal an integer label), and for no labels (a split without rows), whose accuracy
  is undefined."""
  pred_N, labels_N = np.asarray(pred_N), np.asarray(labels_N)
  if pred_N.ndim != 1 or pred_N.shape != labels_N.shape:
    raise ValueError(f"predictions {pred_N.shape} and labels {labels_N.shape} must be vectors "
                     "of one length: class indices (N,), e.g. scores.argmax(axis=1)")
  if not labels_N.size:
    raise ValueError("no labels to score: the accuracy of an empty split is undefined; "
                     "evaluate a split that has rows")
  _check_integer(pred_N, labels_N)
  return float(np.mean(pred_N == labels_N))


def accuracy_text(value: float, places: int = 4) -> str:
  """An accuracy as text with `places` decimals, or as many more (up to 9) as keep one
  that is neither 0 nor 1 from reading as either: 19,999 of 20,000 is "0.99995", not
  "1.0000", and 1 of 30,000 "0.00003", not "0.0000"."""
  value = float(value)
  for p in range(places, max(places, 9) + 1):
    text = f"{value:.{p}f}"
    if not ((float(text) == 1 and value < 1) or (float(text) == 0 and value > 0)):
      break
  return text


def _check_integer(pred_N, labels_N) -> None:
  # String predictions against integer labels scored 0.0, and probabilities (0.7) or
  # NaN never matched, with no message.
  for name, v in (("predictions", pred_N), ("labels", labels_N)):
    if v.size and not np.issubdtype(v.dtype, np.integer):
      raise ValueError(f"{name} must be integer classes, got dtype {v.dtype}; convert class "
                       "scores with argmax(axis=1)")


def confusion_matrix(pred_N, labels_N, num_classes: int) -> np.ndarray:
  """Counts (C, C): row = true class, column = predicted class.

  Raises ValueError unless both are integer vectors of one length with values in
  [0, num_classes) (a -1 would otherwise count as the last class)."""
  num_classes = check_count("num_classes", num_classes)
  pred_N, labels_N = np.asarray(pred_N), np.asarray(labels_N)
  if pred_N.ndim != 1 or pred_N.shape != labels_N.shape:
    raise ValueError(f"predictions {pred_N.shape} and labels {labels_N.shape} must be "
                     "vectors of one length")
  _check_integer(pred_N, labels_N)
  for name, v in (("predictions", pred_N), ("labels", labels_N)):
    lo, hi = (v.min(), v.max()) if v.size else (0, 0)
    if lo < 0 or hi >= num_classes:
      bad = lo if lo < 0 else hi
      raise ValueError(f"{name} hold class {bad}, out of range for {num_classes} classes; "
                       f"valid classes are 0..{num_classes - 1}")
  out = np.zeros((num_classes, num_classes), np.int64)
  # As intp: an empty list is a float64 array, which NumPy refused as indices (IndexError).
  np.add.at(out, (labels_N.astype(np.intp), pred_N.astype(np.intp)), 1)
  return out
