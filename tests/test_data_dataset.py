"""Tests for lincv.data.Dataset: the checks every loaded dataset passes, and data-dir resolution."""

import os

import numpy as np
import pytest

from lincv import data


def _split(n=4, shape=(3, 3, 1), num_classes=2):
  return np.zeros((n,) + shape, np.uint8), np.arange(n) % num_classes


def test_dataset_properties_and_splits():
  ds = data.Dataset("toy", ["a", "b"], {"train": _split(4), "test": _split(2)})
  assert ds.class_names == ("a", "b") and ds.num_classes == 2 and ds.image_shape == (3, 3, 1)
  images, labels = ds["train"]
  assert images.shape == (4, 3, 3, 1) and labels.dtype == np.int32
  assert "train=4" in repr(ds)
  with pytest.raises(KeyError, match="no split 'validation'; splits: train, test"):
    ds["validation"]


@pytest.mark.parametrize("class_names, splits, match", [
    (["a", "b"], {"train": (np.zeros((2, 3, 3, 1), np.uint8), [0, 2])},
     "label 2 is out of range; valid labels are 0..1"),
    (["a", "b"], {"train": (np.zeros((2, 3, 3, 1), np.uint8), [-1, 0])},
     "label -1 is out of range"),
    (["a"], {"train": _split(2, num_classes=1)},
     r"1 class\(es\) \['a'\]; a classifier needs at least 2"),
    (["a", "a"], {"train": _split(2)}, "repeated class names"),
    (["a", "b"], {"test": _split(2)}, "no 'train' split"),
    (["a", "b"], {"train": (np.zeros((2, 3, 3), np.uint8), [0, 1])}, r"uint8 \(N, H, W, C\)"),
    (["a", "b"], {"train": (np.zeros((2, 3, 3, 1), np.float32), [0, 1])}, "uint8"),
    (["a", "b"], {"train": (np.zeros((2, 3, 3, 1), np.uint8), [0, 1, 1])}, "2 images but 3 labels"),
    (["a", "b"], {"train": _split(2), "test": _split(2, shape=(4, 4, 1))}, "images of shape"),
    (["a", "b"], {"train": (np.zeros((2, 3, 3, 1), np.uint8), [0.0, 1.0])},
     "integer class indices"),
])
def test_bad_datasets(class_names, splits, match):
  with pytest.raises(data.DataError, match=match):
    data.Dataset("toy", class_names, splits)


def test_data_dir_argument_then_environment_then_home(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env"))
  assert data.resolve_data_dir(tmp_path / "arg") == str(tmp_path / "arg")
  assert data.resolve_data_dir() == str(tmp_path / "env")
  monkeypatch.delenv("TFDS_DATA_DIR")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert data.resolve_data_dir() == os.path.join(str(tmp_path / "home"), "tensorflow_datasets")


def test_data_error_is_a_value_error():
  assert issubclass(data.DataError, ValueError)
