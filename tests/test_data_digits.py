"""Tests for the embedded `digits` dataset: prepared once into the tfds data dir, read back."""

import os
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lincv import data
from lincv.data import digits, records


pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  return data_dir, data.load("digits", data_dir=data_dir)


def test_digits_end_to_end(prepared):
  data_dir, ds = prepared
  assert ds.name == "digits"
  assert ds.class_names == tuple("0123456789") and ds.num_classes == 10
  assert ds.image_shape == (8, 8, 1)
  x_train, y_train = ds["train"]
  x_test, y_test = ds["test"]
  assert x_train.dtype == np.uint8 and x_train.shape == (1438, 8, 8, 1)
  assert y_train.dtype == np.int32 and x_test.shape == (359, 8, 8, 1)
  assert x_train.max() == 255 and x_train.min() == 0
  # Stratified 80/20: every class has about a fifth of its examples in test.
  test_counts = np.bincount(y_test, minlength=10)
  share = test_counts / (np.bincount(y_train, minlength=10) + test_counts)
  assert np.all(np.abs(share - 0.2) < 0.01)
  # Pixel values are sklearn's 0..16 counts scaled to 0..255; the split is the documented one.
  images, labels = digits.arrays()
  train_idx, test_idx = data.train_val_split(labels, 0.2, seed=0)
  np.testing.assert_array_equal(x_train, images[train_idx])
  np.testing.assert_array_equal(y_test, labels[test_idx])
  assert os.path.exists(os.path.join(data_dir, "lincv_digits", digits.split_key(), "1.0.0",
                                     "dataset_info.json"))
  out = data.prepare(ds, val_fraction=0.1, seed=0)
  assert out.x_train.shape == (1294, 64) and out.x_val.shape == (144, 64)


def test_digits_copy_is_a_tfds_dataset(prepared):
  data_dir, ds = prepared
  builder = tfds.builder_from_directory(os.path.join(data_dir, "lincv_digits", digits.split_key(),
                                                      "1.0.0"))
  source = builder.as_data_source(split="test")
  assert len(source) == 359
  example = source[5]
  np.testing.assert_array_equal(example["image"], ds["test"][0][5])
  assert example["label"] == ds["test"][1][5]


def test_second_load_reads_the_prepared_copy(prepared, monkeypatch):
  data_dir, ds = prepared

  def must_not_prepare(*args, **kwargs):
    raise AssertionError("prepared again")

  monkeypatch.setattr(digits.DigitsBuilder, "_split_generators", must_not_prepare)
  again = data.load("digits", data_dir=data_dir)
  np.testing.assert_array_equal(again["train"][0], ds["train"][0])


def test_tfds_data_dir_environment_is_honoured(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "from_env"))
  data.load("digits")
  assert (tmp_path / "from_env" / "lincv_digits" / digits.split_key() / "1.0.0"
          / "dataset_info.json").exists()


def test_interrupted_preparation_leaves_nothing_and_is_redone(tmp_path, monkeypatch):
  real_examples = records.examples

  def interrupted(*args, **kwargs):
    for i, example in enumerate(real_examples(*args, **kwargs)):
      if i == 100:
        raise KeyboardInterrupt
      yield example

  monkeypatch.setattr(records, "examples", interrupted)
  with pytest.raises(KeyboardInterrupt):
    data.load("digits", data_dir=tmp_path / "tfds")
  assert not (tmp_path / "tfds").exists() or not any((tmp_path / "tfds").rglob("*"))
  monkeypatch.setattr(records, "examples", real_examples)
  ds = data.load("digits", data_dir=tmp_path / "tfds")
  assert len(ds["train"][1]) == 1438


def test_command_line_summary(prepared, capsys):
  from lincv.data import __main__ as cli  # pylint: disable=g-import-not-at-top

  data_dir, _ = prepared
  cli.main(["digits", "--data_dir", str(data_dir)])
  out = capsys.readouterr().out
  assert "digits: 10 classes, images (8, 8, 1)" in out and "train: 1438 images" in out


def test_a_copy_that_other_code_split_is_not_read(prepared, tmp_path, monkeypatch):
  """The copy's name is a hash of the code that splits the digits: after an edit to it
  (here `lincv.data.splits` read from an edited file), the digits are prepared again."""
  data_dir, _ = prepared
  before = digits.split_key()
  splits = sys.modules["lincv.data.splits"]
  edited = tmp_path / "splits.py"
  with open(splits.__file__) as f:
    edited.write_text(f.read() + "\nSPLIT_NOTE = 'an edit'\n")
  monkeypatch.setattr(splits, "__file__", str(edited))
  assert digits.split_key() != before
  calls = []
  real = digits.DigitsBuilder._split_generators
  monkeypatch.setattr(digits.DigitsBuilder, "_split_generators",
                      lambda self, dl: calls.append(1) or real(self, dl))
  data.load("digits", data_dir=data_dir)
  assert calls and sorted(os.listdir(os.path.join(data_dir, "lincv_digits"))) == sorted(
      [before, digits.split_key()])
