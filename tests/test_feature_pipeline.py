"""The feature pipeline: `compute` and the fitted `Featurizer` it returns."""

import os
import sys

import jax
import numpy as np
import pytest

import lincv.experiment
import lincv.inputs
from lincv import config as config_lib, data as data_lib, features
from lincv.features import pipeline


def _prepared(size=32, channels=3, train=8, test=4, seed=0):
  """4 train, 4 val and 4 test images: one batch shape, so each feature compiles once."""
  rng = np.random.default_rng(seed)
  split = lambda n: (rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8),
                     np.arange(n, dtype=np.int32) % 2)
  ds = data_lib.Dataset("tiny", ("a", "b"), {"train": split(train), "test": split(test)})
  return data_lib.prepare(ds, val_fraction=0.5)


def _cfg():
  cfg = config_lib.base().features_cfg
  cfg.update({"hist_bins": 6, "kmeans_centroids": 4, "kmeans_patches": 200, "kmeans_iters": 3})
  return cfg


@pytest.fixture(scope="module")
def prepared():
  return _prepared()


@pytest.fixture(scope="module", params=features.NAMES)
def fitted(request, prepared, tmp_path_factory):
  cache = str(tmp_path_factory.mktemp("cache"))
  return features.compute(request.param, prepared, _cfg(), cache, seed=3)


def test_featurizer_on_the_test_images_equals_the_computed_arrays(fitted, prepared):
  featurizer, arrays = fitted
  assert set(arrays) == {"train", "val", "test"}
  got = featurizer(prepared.images["test"])
  assert got.dtype == np.float32 and got.shape == arrays["test"].shape
  np.testing.assert_array_equal(got, arrays["test"])  # bit-exact: the same code path
  np.testing.assert_array_equal(featurizer(prepared.images["val"]), arrays["val"])
  # the standardisation is the training split's
  np.testing.assert_allclose(arrays["train"].mean(axis=0), 0, atol=1e-5)


def test_round_trip_through_an_npz(fitted, prepared, tmp_path):
  featurizer, arrays = fitted
  path = tmp_path / "featurizer.npz"
  np.savez(path, W=np.zeros(3), **featurizer.to_arrays())  # beside other arrays
  with np.load(path, allow_pickle=False) as saved:
    loaded = features.Featurizer.from_arrays(saved)
  assert (loaded.name, loaded.settings, loaded.image_shape) == (
      featurizer.name, featurizer.settings, featurizer.image_shape)
  assert (loaded.model is None) == (featurizer.name == "hog_color")
  np.testing.assert_array_equal(loaded(prepared.images["test"]), arrays["test"])
  assert "\n" not in repr(loaded) and featurizer.name in repr(loaded)


def test_compute_reads_its_cache_and_the_alias_gives_its_arrays(prepared, tmp_path):
  cache = str(tmp_path)
  first = features.image_features("kmeans", prepared, _cfg(), cache, seed=1)
  files = sorted(os.listdir(cache))
  assert len([f for f in files if f.endswith(".npy")]) == 4  # the model, 3 splits
  featurizer, again = features.compute("kmeans", prepared, _cfg(), cache, seed=1)
  assert sorted(os.listdir(cache)) == files
  for split in ("train", "val", "test"):
    np.testing.assert_array_equal(again[split], first[split])
  np.testing.assert_array_equal(featurizer(prepared.images["test"]), first["test"])


@pytest.fixture
def fresh_fingerprint():
  pipeline.code_fingerprint.cache_clear()
  yield
  pipeline.code_fingerprint.cache_clear()


def test_features_that_other_code_cached_are_computed_again(prepared, tmp_path, monkeypatch,
                                                           fresh_fingerprint):
  """An edit to a feature module (hog.py here) changes the cache keys: the entries the
  code before it wrote are not served as this code's features."""
  cache = str(tmp_path / "cache")
  features.compute("hog_color", prepared, _cfg(), cache)
  files = set(os.listdir(cache))
  hog = sys.modules["lincv.features.hog"]
  edited = tmp_path / "hog.py"
  with open(hog.__file__) as f:
    edited.write_text(f.read() + "\nCELL_NOTE = 'an edit'\n")
  monkeypatch.setattr(hog, "__file__", str(edited))
  pipeline.code_fingerprint.cache_clear()
  features.compute("hog_color", prepared, _cfg(), cache)
  assert len(set(os.listdir(cache)) - files) == len(files)   # every split computed again


def test_the_code_fingerprint_names_the_versions_of_jax_and_numpy(monkeypatch,
                                                                   fresh_fingerprint):
  before = pipeline.code_fingerprint()
  for module in (jax, np):
    monkeypatch.setattr(module, "__version__", "0.0.0")
    pipeline.code_fingerprint.cache_clear()
    assert pipeline.code_fingerprint() != before
    monkeypatch.undo()
    pipeline.code_fingerprint.cache_clear()
    assert pipeline.code_fingerprint() == before


def test_flip_appends_the_mirrored_training_images(prepared):
  featurizer, arrays = features.compute("hog_color", prepared, _cfg(), None, flip=True)
  train = prepared.images["train"]
  assert len(arrays["train"]) == 2 * len(train)
  np.testing.assert_array_equal(featurizer(data_lib.mirror(train)),
                                arrays["train"][len(train):])
  np.testing.assert_array_equal(featurizer(train), arrays["train"][:len(train)])


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 32, 32, 3), np.float32), r"take uint8 images \(N, 32, 32, 3\); got float32"),
    (np.zeros((32, 32, 3), np.uint8), r"take uint8 images .* of shape \(32, 32, 3\)"),
    (np.zeros((2, 16, 16, 3), np.uint8), r"fitted on 32x32x3 images .* got shape \(2, 16, 16"),
    (np.zeros((2, 32, 32, 1), np.uint8), r"fitted on 32x32x3 images .* got shape \(2, 32, 32, 1"),
    (np.zeros((0, 32, 32, 3), np.uint8), r"no images"),
])
def test_bad_images_get_one_line(fitted, images, message):
  featurizer, _ = fitted
  with pytest.raises(ValueError, match=message) as e:
    featurizer(images)
  assert "\n" not in str(e.value)


def test_compute_refuses_grey_images_and_unknown_names():
  grey = _prepared(size=16, channels=1, train=4, test=2)
  with pytest.raises(ValueError, match=r"features 'hog_color' need RGB images; .* \(16, 16, 1\)"):
    features.compute("hog_color", grey, _cfg(), None)
  with pytest.raises(ValueError, match="unknown features 'sift'; expected one of: hog_color"):
    features.compute("sift", grey, _cfg(), None)


def test_from_arrays_names_what_is_missing(fitted):
  featurizer, _ = fitted
  arrays = featurizer.to_arrays()
  with pytest.raises(ValueError, match="no saved featurizer: 'featurizer_mean_F' is missing"):
    features.Featurizer.from_arrays({k: v for k, v in arrays.items() if "mean" not in k})


@pytest.mark.parametrize("size, name, message", [
    (6, "hog_color", r"features 'hog_color' need images of at least 8x8 pixels \(one HOG cell\); "
                     r"this dataset's are 6x6"),
    (5, "kmeans", r"features 'kmeans' need images of at least 6x6 pixels \(one k-means patch\); "
                  r"this dataset's are 5x5"),
])
def test_a_run_refuses_images_too_small_for_its_features(size, name, message):
  # These were a traceback from inside the jitted feature function, the workdir left behind.
  config = config_lib.base()
  config.features_cfg = _cfg()
  inputs = lincv.inputs.Inputs(config, _prepared(size=size, train=4, test=2))
  with pytest.raises(config_lib.ConfigError, match=message):
    inputs.arrays(name)


@pytest.mark.parametrize("features_name, field, value, message", [
    ("hog_color", "hist_bins", 0, "features_cfg.hist_bins must be >= 1, got 0"),
    ("kmeans", "kmeans_centroids", 0, "features_cfg.kmeans_centroids must be >= 1, got 0"),
    ("kmeans", "kmeans_patches", 3,
     r"features_cfg.kmeans_patches must be at least kmeans_centroids \(4\), got 3"),
    ("kmeans", "kmeans_iters", -1, "features_cfg.kmeans_iters must be >= 0, got -1"),
])
def test_feature_settings_that_cannot_work_are_refused_before_any_data(features_name, field,
                                                                       value, message):
  config = config_lib.base()
  config.features, config.features_cfg = features_name, _cfg()
  config.features_cfg[field] = value
  with pytest.raises(config_lib.ConfigError, match=message):
    lincv.experiment.check(config)
  config.features = "pixels"  # settings of features no member uses are not checked here
  lincv.experiment.check(config)


def test_a_model_fitted_with_another_norm_eps_keeps_it_saved_and_cached(prepared, tmp_path):
  """The patch normalisation is part of a k-means model: a reloaded featurizer, and the
  cache of `features_of`, gave the codes of the pipeline's norm_eps of 10."""
  import dataclasses   # pylint: disable=import-outside-toplevel
  import jax   # pylint: disable=import-outside-toplevel
  featurizer, _ = features.compute("kmeans", prepared, _cfg(), None, seed=3)
  images = prepared.images["test"]
  model = features.kmeans_fit(jax.random.key(0), prepared.images["train"], 4,
                              num_patches=200, iterations=2, norm_eps=50.0)
  own = dataclasses.replace(featurizer, model=model)
  reloaded = features.Featurizer.from_arrays(own.to_arrays())
  assert reloaded.model.norm_eps == 50.0
  np.testing.assert_array_equal(reloaded(images), own(images))
  cache = str(tmp_path)
  other = dataclasses.replace(own, model=model._replace(norm_eps=10.0))   # the same arrays
  assert not np.array_equal(other(images), own(images))
  np.testing.assert_array_equal(features.features_of(other, images, cache), other(images))
  np.testing.assert_array_equal(features.features_of(own, images, cache), own(images))
