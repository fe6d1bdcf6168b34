"""Accuracy and the confusion matrix: counts by hand, and bad input refused in one line."""

import numpy as np
import pytest

from lincv import metrics


def test_confusion_matrix_by_hand():
  m = metrics.confusion_matrix([0, 2, 2, 1], [0, 1, 2, 1], 3)
  np.testing.assert_array_equal(m, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
  assert m.sum() == 4 and metrics.accuracy([0, 2, 2, 1], [0, 1, 2, 1]) == 0.75


@pytest.mark.parametrize("pred, labels, message", [
    ([0, -1, 2], [0, 1, 2], r"predictions hold class -1, out of range for 3 classes; "
                            r"valid classes are 0\.\.2"),
    ([0, 1, 2], [0, 3, 2], r"labels hold class 3, out of range"),
    ([0, 1, 2], [[0], [1], [2]], r"must be vectors of one length"),
    ([0, 1], [0, 1, 2], r"must be vectors of one length"),
    ([0.0, 1.0, 2.0], [0, 1, 2], r"predictions must be integer classes, got dtype float64"),
])
def test_confusion_matrix_refuses_what_it_would_miscount(pred, labels, message):
  # np.add.at wrapped -1 round to the last class, and (N, 1) labels broadcast to N^2 counts.
  with pytest.raises(ValueError, match=message):
    metrics.confusion_matrix(np.asarray(pred), np.asarray(labels), 3)


@pytest.mark.parametrize("num_classes", [0, 3.0, -1, None])
def test_confusion_matrix_refuses_a_class_count_that_is_not_a_positive_integer(num_classes):
  # 0 classes said "class 0 out of range ... 0..-1"; 3.0 raised a TypeError from NumPy.
  with pytest.raises(ValueError, match="num_classes must be a positive integer, got"):
    metrics.confusion_matrix(np.zeros(0, np.int32), np.zeros(0, np.int32), num_classes)


def test_confusion_matrix_of_no_predictions_is_all_zeros():
  m = metrics.confusion_matrix(np.zeros(0, np.int32), np.zeros(0, np.int32), np.int64(2))
  np.testing.assert_array_equal(m, np.zeros((2, 2)))


def test_accuracy_of_no_labels_is_refused():
  # It was NaN: `Run.evaluate` of a split without rows returned accuracy NaN.
  with pytest.raises(ValueError, match="no labels to score: the accuracy of an empty split"):
    metrics.accuracy(np.zeros(0, np.int32), np.zeros(0, np.int32))


@pytest.mark.parametrize("pred, labels", [
    (np.roll(np.eye(3, dtype=np.int32), 1, axis=1), np.eye(3, dtype=np.int32)),   # one-hot
    (np.zeros((4, 1), np.int32), np.zeros((4, 1), np.int32)),
    (np.int32(1), np.int32(1)),
])
def test_accuracy_of_arrays_that_are_not_vectors_is_refused(pred, labels):
  # Three wrong one-hot predictions against one-hot labels scored 3/9: the zeros agree.
  with pytest.raises(ValueError, match=r"must be vectors of one length: class indices \(N,\)"):
    metrics.accuracy(pred, labels)


@pytest.mark.parametrize("pred, labels, message", [
    (np.array(["cat", "dog"]), np.array([0, 1]), r"predictions must be integer classes, got "
                                                 r"dtype <U3"),
    (np.array([0.7, 1.0]), np.array([1, 1]), r"predictions must be integer classes, got "
                                             r"dtype float64"),
    (np.array([np.nan, 1.0]), np.array([0, 1]), r"predictions must be integer classes"),
    (np.array([0, 1]), np.array([0.0, 1.0]), r"labels must be integer classes, got dtype "
                                             r"float64"),
])
def test_accuracy_refuses_predictions_that_are_not_integer_classes(pred, labels, message):
  # Class names against integer labels scored 0.0, and probabilities or NaN counted as
  # wrong predictions, with no message.
  with pytest.raises(ValueError, match=message):
    metrics.accuracy(pred, labels)


def test_confusion_matrix_of_empty_lists_is_all_zeros():
  # An empty list is a float64 array: NumPy raised "arrays used as indices must be of
  # integer (or boolean) type".
  np.testing.assert_array_equal(metrics.confusion_matrix([], [], 2), np.zeros((2, 2)))


@pytest.mark.parametrize("value,text", [
    (19999 / 20000, "0.99995"),       # not "1.0000": one example wrong
    (1 / 30000, "0.00003"),           # not "0.0000": one right
    (0.99994, "0.9999"), (1.0, "1.0000"), (0.0, "0.0000"), (0.9931, "0.9931"),
    (float("nan"), "nan")])
def test_an_accuracy_that_is_not_0_or_1_never_reads_as_either(value, text):
  assert metrics.accuracy_text(value) == text


def test_an_accuracy_takes_the_decimals_it_is_asked_for_past_9():
  # 10 decimals or more left the loop over 4..9 empty: an UnboundLocalError.
  assert metrics.accuracy_text(0.5, 10) == "0.5000000000"
  assert metrics.accuracy_text(0.75, 0) == "0.8"     # never "1"
