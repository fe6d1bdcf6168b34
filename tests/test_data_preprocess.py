"""Tests for lincv.data.preprocess: statistics fitted on train only, rows, the bias trick."""

import re
import warnings

import numpy as np
import pytest

from lincv import data, seeds
from lincv.data import preprocess


def _images(n, shape=(4, 3, 3), seed=0, low=0, high=256):
  return np.random.default_rng(seed).integers(low, high, (n,) + shape, dtype=np.uint8)


def _dataset(n_train=200, n_test=50, num_classes=4, shape=(4, 3, 3)):
  rng = np.random.default_rng(1)
  return data.Dataset(
      "toy", tuple(f"c{i}" for i in range(num_classes)),
      {"train": (_images(n_train, shape, 2), rng.integers(0, num_classes, n_train)),
       "test": (_images(n_test, shape, 3, 100, 200), rng.integers(0, num_classes, n_test))})


def test_center_image_subtracts_mean_image_and_flattens():
  x = _images(10)
  pre = data.Preprocessor.fit(x, center="image")
  rows = pre(x)
  assert rows.dtype == np.float32 and rows.shape == (10, 36) and pre.dim == 36
  expected = x.reshape(10, -1) / 255.0 - (x.reshape(10, -1) / 255.0).mean(axis=0)
  np.testing.assert_allclose(rows, expected, atol=1e-6)
  np.testing.assert_allclose(rows.mean(axis=0), 0, atol=1e-6)


def test_center_channel_and_std_give_zero_mean_unit_variance_per_channel():
  x = _images(50)
  pre = data.Preprocessor.fit(x, center="channel", scale="std")
  per_channel = pre(x).reshape(50, 4, 3, 3).transpose(3, 0, 1, 2).reshape(3, -1)
  np.testing.assert_allclose(per_channel.mean(axis=1), 0, atol=1e-5)
  np.testing.assert_allclose(per_channel.std(axis=1), 1, atol=1e-5)
  raw = x.reshape(-1, 3) / 255.0
  np.testing.assert_allclose(pre.mean_D[:3], raw.mean(axis=0), atol=1e-6)
  np.testing.assert_allclose(pre.std_D[:3], raw.std(axis=0), atol=1e-6)


def test_center_none_bias_trick():
  x = _images(5)
  pre = data.Preprocessor.fit(x, center="none", bias_trick=True)
  rows = pre(x)
  assert rows.shape == (5, 37)
  np.testing.assert_allclose(rows[:, :36], x.reshape(5, -1) / 255.0, atol=1e-7)
  np.testing.assert_array_equal(rows[:, 36], 1.0)


def test_chunked_fit_and_transform_match_unchunked(monkeypatch):
  x = _images(23)
  full = data.Preprocessor.fit(x, center="image", scale="std")
  monkeypatch.setattr(preprocess, "_CHUNK", 4)
  chunked = data.Preprocessor.fit(x, center="image", scale="std")
  np.testing.assert_allclose(chunked.mean_D, full.mean_D, rtol=1e-6)
  np.testing.assert_allclose(chunked.std_D, full.std_D, rtol=1e-6)
  np.testing.assert_allclose(chunked(x), full(x), atol=1e-6)


def test_constant_channel_std_does_not_divide_by_zero():
  x = np.zeros((4, 2, 2, 1), np.uint8)
  rows = data.Preprocessor.fit(x, center="channel", scale="std")(x)
  assert np.all(np.isfinite(rows))


def test_prepare_fits_statistics_on_train_part_only():
  ds = _dataset()
  out = data.prepare(ds, val_fraction=0.25, seed=0, center="image")
  images, labels = ds["train"]
  train_idx, val_idx = data.train_val_split(labels, 0.25, seeds.integer(0, "split"))
  np.testing.assert_array_equal(out.y_train, labels[train_idx])
  np.testing.assert_array_equal(out.y_val, labels[val_idx])
  train_mean = images[train_idx].reshape(len(train_idx), -1).mean(axis=0) / 255.0
  np.testing.assert_allclose(out.preprocessor.mean_D, train_mean, atol=1e-6)
  all_mean = images.reshape(len(images), -1).mean(axis=0) / 255.0
  assert not np.allclose(out.preprocessor.mean_D, all_mean, atol=1e-6)
  np.testing.assert_allclose(out.x_train.mean(axis=0), 0, atol=1e-5)
  test_images, _ = ds["test"]
  np.testing.assert_allclose(out.x_test, test_images.reshape(50, -1) / 255.0 - train_mean,
                             atol=1e-6)
  for x in (out.x_train, out.x_val, out.x_test):
    assert x.dtype == np.float32 and x.shape[1] == 36
  for y in (out.y_train, out.y_val, out.y_test):
    assert y.dtype == np.int32
  assert out.class_names == ds.class_names and out.image_shape == (4, 3, 3)
  assert out.num_classes == 4


def test_prepare_limit_caps_train_and_test_proportionally():
  ds = _dataset(n_train=200, n_test=50)
  out = data.prepare(ds, val_fraction=0.1, limit=40, bias_trick=True)
  assert len(out.y_train) + len(out.y_val) == 40
  assert len(out.y_val) == 4
  assert len(out.y_test) == 10
  assert out.x_train.shape[1] == 37
  again = data.prepare(ds, val_fraction=0.1, limit=40, bias_trick=True)
  np.testing.assert_array_equal(out.x_val, again.x_val)


@pytest.mark.parametrize("kwargs, match", [
    ({"center": "pixel"}, "unknown center 'pixel'; valid: image, channel, none"),
    ({"scale": "minmax"}, "unknown scale 'minmax'; valid: none, std"),
    ({"center": "none", "scale": "std"}, "needs centering"),
])
def test_bad_preprocessing_options(kwargs, match):
  with pytest.raises(data.DataError, match=match):
    data.Preprocessor.fit(_images(3), **kwargs)


def test_bad_images_for_preprocessor():
  pre = data.Preprocessor.fit(_images(3))
  with pytest.raises(data.DataError, match="uint8"):
    pre(_images(2).astype(np.float32))
  with pytest.raises(data.DataError, match="fitted on"):
    pre(_images(2, shape=(3, 4, 3)))
  with pytest.raises(data.DataError, match="uint8"):
    data.Preprocessor.fit(_images(2)[0])
  with pytest.raises(data.DataError, match="limit"):
    data.prepare(_dataset(), limit=0)


def test_repr_is_one_line_of_shapes_and_dtypes_not_values():
  out = data.prepare(_dataset(n_train=200, n_test=50, shape=(8, 8, 3)), val_fraction=0.25,
                     scale="std", center="channel")
  text = repr(out)
  assert "\n" not in text and len(text) < 600, text
  assert "x_train=float32(150, 192)" in text and "y_train=int32(150,)" in text
  assert "x_test=float32(50, 192)" in text and "num_classes=4" in text
  assert "image_shape=(8, 8, 3)" in text and "train=uint8(150, 8, 8, 3)" in text
  pre = repr(out.preprocessor)
  assert pre in text and "mean_D=float32(192,)" in pre and "scale='std'" in pre
  assert "[" not in text and "array(" not in text     # no values


def test_mirror_refuses_one_image_without_its_batch_axis():
  # Its channels were reversed instead: red came back blue.
  red = np.zeros((4, 4, 3), np.uint8)
  red[..., 0] = 255
  with pytest.raises(ValueError, match=r"mirror takes images \(N, H, W, C\), got shape "
                                       r"\(4, 4, 3\); a single image needs a batch axis"):
    data.mirror(red)
  np.testing.assert_array_equal(data.mirror(red[None])[0], red)


def test_std_scales_a_small_spread_and_leaves_a_constant_column_alone():
  # A spread of 5e-9 around 0 is signal (an absolute cutoff of 1e-8 left it unscaled); a
  # column of one value, 1000, has a centred spread of rounding only, and stays put.
  rng = np.random.default_rng(0)
  x = np.stack([rng.normal(size=1000), rng.normal(size=1000) * 5e-9,
                np.full(1000, 1000.0), rng.normal(size=1000) * 1e-3 + 1.0], 1)
  x = x.astype(np.float32)
  pre = data.RowPreprocessor.fit(x, center="image", scale="std")
  std = np.asarray(pre(x)).std(axis=0)
  np.testing.assert_allclose(std[[0, 1, 3]], 1, rtol=1e-3)
  assert pre.std_D[2] == 1 and np.all(np.abs(np.asarray(pre(x))[:, 2]) < 1e-3)


def test_std_scales_a_spread_of_a_few_float32_steps_of_a_large_level():
  # 1e9 + 900 N(0, 1) in float32 moves in steps of 64: 14 of them, signal, not rounding.
  # Within 8 eps of the level it counted as constant and kept its std of 900 beside
  # columns of std 1.
  rng = np.random.default_rng(1)
  x = np.stack([rng.normal(size=1000), 1e9 + 900 * rng.normal(size=1000)], 1)
  pre = data.RowPreprocessor.fit(x.astype(np.float32), center="image", scale="std")
  np.testing.assert_allclose(np.asarray(pre(x.astype(np.float32))).std(axis=0), 1, rtol=1e-2)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_row_statistics_refuse_a_non_finite_value(value):
  # The column's mean and std were NaN; applying them raised an error about float32's
  # range that named a clean row.
  x = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
  x[7, 2] = value
  for scale in ("none", "std"):
    with pytest.raises(data.DataError, match="column 2 of the training rows holds a NaN or "
                                             "infinite value; rows must be finite"):
      data.RowPreprocessor.fit(x, center="image", scale=scale)


def test_a_constant_channel_at_a_nonzero_level_is_left_unscaled():
  x = np.full((4, 2, 2, 2), 200, np.uint8)
  x[..., 1] = np.arange(16, dtype=np.uint8).reshape(4, 2, 2)
  pre = data.Preprocessor.fit(x, center="image", scale="std")
  assert pre.std_D.reshape(2, 2, 2)[..., 0].tolist() == [[1, 1], [1, 1]]
  assert np.all(pre.std_D.reshape(2, 2, 2)[..., 1] != 1)


def test_a_validation_split_without_a_class_is_warned_of():
  # val_fraction 0.1 of a class of 4 examples rounds to none of them: the validation
  # accuracy that selects a member did not measure that class, silently.
  labels = np.repeat(np.arange(3), [100, 100, 4])
  ds = data.Dataset("toy", ("cat", "dog", "ship"), {
      "train": (_images(204), labels), "test": (_images(3), np.arange(3))})
  with pytest.warns(UserWarning, match=re.escape(
      "lincv: the validation split (20 of 204 training examples, val_fraction=0.1) has no "
      "example of 1 class of 3: 2 ('ship'), of 4 examples; the validation accuracy that "
      "selects the best member does not measure it: raise val_fraction")):
    out = data.prepare(ds, val_fraction=0.1)
  assert 2 in out.y_train and 2 not in out.y_val
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    out = data.prepare(ds, val_fraction=0.25)    # 1 of the 4 validates
    assert 2 in out.y_val
    data.prepare(ds, val_fraction=0.0)           # no validation split: nothing to warn of


def test_a_limit_keeps_a_rare_class_in_training():
  labels = np.repeat(np.arange(3), [300, 300, 3])
  ds = data.Dataset("toy", ("cat", "dog", "ship"), {
      "train": (_images(603), labels), "test": (_images(3), np.arange(3))})
  with pytest.warns(UserWarning, match="has no example of 1 class of 3: 2 \\('ship'\\)"):
    out = data.prepare(ds, val_fraction=0.1, limit=60)
  assert np.count_nonzero(out.y_train == 2) == 1


def test_a_limit_below_the_number_of_classes_is_warned_of():
  # data.limit=5 of 10 classes trained a classifier that had never seen half of them,
  # silently.
  labels = np.arange(100) % 10
  ds = data.Dataset("toy", tuple(f"c{k}" for k in range(10)), {
      "train": (_images(100), labels), "test": (_images(10), np.arange(10))})
  with pytest.warns(UserWarning, match=re.escape(
      "lincv: the training part has no example of 5 of the 10 classes: ")) as record:
    out = data.prepare(ds, val_fraction=0.0, limit=5)
  assert len(np.unique(out.y_train)) == 5
  assert record[0].message.args[0].endswith(
      "the classifier never learns them: data.limit=5 keeps 5 examples of 10 classes; "
      "raise data.limit to at least 10")
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    data.prepare(ds, val_fraction=0.0, limit=10)   # one of each class: nothing to warn of


def test_a_split_prepare_does_not_read_is_warned_of():
  # A validation split of the user's own was dropped without a word: the selection was
  # made on rows split from train.
  labels = np.arange(40) % 2
  ds = data.Dataset("mine", ("cat", "dog"), {
      "train": (_images(40), labels), "val": (_images(10), labels[:10]),
      "test": (_images(4), labels[:4])})
  with pytest.warns(UserWarning, match=re.escape(
      "lincv: dataset 'mine': split 'val' not read: prepare reads 'train' and 'test' only, "
      "and splits the validation rows from 'train' (val_fraction)")):
    out = data.prepare(ds, val_fraction=0.25)
  assert len(out.y_val) == 10 and len(out.y_train) == 30      # from train's 40 rows
  train_and_test = data.Dataset("mine", ("cat", "dog"), {
      "train": ds["train"], "test": ds["test"]})
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    data.prepare(train_and_test, val_fraction=0.25)


def test_a_dataset_whose_train_split_lacks_a_class_is_warned_of():
  ds = data.Dataset("toy", ("cat", "dog", "ship"), {
      "train": (_images(20), np.arange(20) % 2), "test": (_images(3), np.arange(3))})
  with pytest.warns(UserWarning, match=re.escape(
      "the training part has no example of 1 of the 3 classes: 2 ('ship'); the classifier "
      "never learns it")):
    data.prepare(ds, val_fraction=0.0)
