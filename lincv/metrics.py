"""Classification metrics on predicted and true labels."""

import numpy as np


def accuracy(pred_N, labels_N) -> float:
  """Fraction of predictions equal to the labels."""
  pred_N, labels_N = np.asarray(pred_N), np.asarray(labels_N)
  if pred_N.shape != labels_N.shape:
    raise ValueError(f"predictions {pred_N.shape} and labels {labels_N.shape} differ in shape")
  return float(np.mean(pred_N == labels_N)) if labels_N.size else float("nan")


def confusion_matrix(pred_N, labels_N, num_classes: int) -> np.ndarray:
  """Counts (C, C): row = true class, column = predicted class."""
  pred_N, labels_N = np.asarray(pred_N), np.asarray(labels_N)
  out = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(out, (labels_N, pred_N), 1)
  return out
