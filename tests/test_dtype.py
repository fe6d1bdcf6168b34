"""config.dtype: a float64 run trains, saves and evaluates in float64; float32 stays float32."""

import io

import jax
import numpy as np
import pytest

from lincv import checkpoint, data as data_lib, experiment
from lincv import inputs as inputs_lib


def _run(tmp_path, monkeypatch, config):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  workdir = str(tmp_path / "run")
  summary = experiment.run(config, workdir, stream=io.StringIO())
  best = checkpoint.load_arrays(f"{workdir}/checkpoint/best.npz")
  return workdir, summary, best


def _smoke(**fields):
  from configs import default
  c = default.get_config("smoke")
  c.epochs = 1
  c.sweep = {"learning_rate": (1e-1,)}
  c.update(fields)
  return c


def test_float64_run_trains_and_evaluates_in_float64(tmp_path, monkeypatch):
  workdir, summary, best = _run(tmp_path, monkeypatch, _smoke(dtype="float64"))
  assert {k: v.dtype for k, v in best.items()} == {"W": np.float64, "b": np.float64}
  assert not jax.config.jax_enable_x64  # 64-bit mode ends with the run
  assert summary["best"]["test_accuracy"] > 0.5  # chance is 0.1
  evaluated = experiment.evaluate(workdir, "test")
  assert evaluated["accuracy"] == pytest.approx(summary["best"]["test_accuracy"])


def test_default_dtype_is_float32_even_where_jax_runs_64_bit(tmp_path, monkeypatch, x64):
  config = _smoke()
  assert config.dtype == "float32"
  _, _, best = _run(tmp_path, monkeypatch, config)
  assert {k: v.dtype for k, v in best.items()} == {"W": np.float32, "b": np.float32}
  assert jax.config.jax_enable_x64


def test_float64_random_search_saves_float64(tmp_path, monkeypatch):
  from configs import digits_baselines
  config = digits_baselines.get_config("random_search")
  config.dtype, config.random.num_tries = "float64", 20
  _, _, best = _run(tmp_path, monkeypatch, config)
  assert {k: v.dtype for k, v in best.items()} == {"W": np.float64, "b": np.float64}


def test_image_features_do_not_depend_on_the_run_dtype():
  # k-means draws other patches in 64-bit JAX; features are computed in float32 mode
  # whatever the run's dtype, so one cache serves runs of both.
  rng = np.random.default_rng(0)
  split = lambda n: (rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
                     np.arange(n, dtype=np.int32) % 2)
  ds = data_lib.Dataset("tiny", ("a", "b"), {"train": split(24), "test": split(6)})
  prepared = data_lib.prepare(ds, val_fraction=0.25)
  config = _smoke(features="kmeans")
  config.features_cfg.update({"kmeans_centroids": 4, "kmeans_patches": 64, "kmeans_iters": 2})
  f32 = inputs_lib.Inputs(config, prepared).arrays("kmeans")
  config.dtype = "float64"
  with jax.enable_x64(True):
    f64 = inputs_lib.Inputs(config, prepared).arrays("kmeans")
  for split_name in ("train", "val", "test"):
    assert f64[split_name].dtype == np.float64
    np.testing.assert_array_equal(f64[split_name], f32[split_name].astype(np.float64))
