"""Every config loads and validates; the smoke variants run end to end on a tiny folder."""

import csv
import importlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

from lincv import experiment
from lincv import inputs as inputs_lib
from lincv.features import export

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "configs"))
                 if f.endswith(".py") and not f.startswith("_"))


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_and_validates(name):
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config()
  if not config.data.name:   # a probe of pre-extracted features: no default file
    with pytest.raises(experiment.ConfigError, match=r"pass --config.data.features=PATH"):
      experiment.check(config)
    config.data.features = "feats.npz"
  experiment.check(config)
  assert "python train.py" in module.__doc__
  with pytest.raises(ValueError, match="unknown variant"):
    module.get_config("no_such_variant")


@pytest.fixture
def folder(image_folder):
  return image_folder


@pytest.mark.parametrize("name", [n for n in CONFIGS if n.startswith("cifar10")])
def test_cifar_smoke_variants_run(name, folder, tmp_path, monkeypatch):
  module = importlib.import_module(f"configs.{name}")
  try:
    config = module.get_config("smoke")
  except ValueError:
    pytest.fail(f"configs/{name}.py has no smoke variant")
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  config.data.folder = str(folder)
  summary = experiment.run(config, str(tmp_path / "run"), stream=io.StringIO())
  saved = json.loads((tmp_path / "run" / "summary.json").read_text())
  assert saved["best"]["test_accuracy"] == summary["best"]["test_accuracy"]
  assert saved["best"]["test_accuracy"] > 0.6   # colour and stripes tell the classes apart


def test_flip_adds_mirrored_training_rows(folder, tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  config = importlib.import_module("configs.cifar10_features").get_config("smoke")
  config.data.folder = str(folder)
  config.data.flip = True
  inputs = inputs_lib.load(config, cache_dir=str(tmp_path / "cache"))
  p = inputs.prepared
  n = len(p.y_train)
  images = p.images["train"]
  np.testing.assert_array_equal(inputs.labels()["train"], np.concatenate([p.y_train] * 2))
  assert len(inputs.labels()["val"]) == len(p.y_val)

  pixels = inputs.arrays("pixels")["train"]
  assert pixels.shape == (2 * n, p.x_train.shape[1])
  np.testing.assert_array_equal(pixels[:n], p.x_train)
  np.testing.assert_array_equal(pixels[n:], p.preprocessor(images[:, :, ::-1]))

  feats = inputs.arrays("hog_color")["train"]
  assert feats.shape[0] == 2 * n
  bins = config.features_cfg.hist_bins
  # Mirroring moves no pixel's hue: each image and its mirror share the hue histogram...
  np.testing.assert_allclose(feats[n:, -bins:], feats[:n, -bins:], atol=1e-5)
  # ...but not its HOG: a diagonal edge turns to the other diagonal.
  assert not np.allclose(feats[n:, :-bins], feats[:n, :-bins], atol=1e-3)
  assert inputs.arrays("hog_color")["val"].shape[0] == len(p.y_val)


def test_flip_trains_end_to_end(folder, tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  config = importlib.import_module("configs.cifar10_kmeans").get_config("smoke")
  config.data.folder = str(folder)
  config.data.flip = True
  summary = experiment.run(config, str(tmp_path / "run"), stream=io.StringIO())
  assert summary["data"]["mirrored"] is True
  assert summary["best"]["test_accuracy"] > 0.6


@pytest.mark.parametrize("variant,centroids,flip", [
    (None, 1600, False), ("4000", 4000, False), ("flip", 1600, True), ("4000_flip", 4000, True)])
def test_kmeans_variants(variant, centroids, flip):
  config = importlib.import_module("configs.cifar10_kmeans").get_config(variant)
  experiment.check(config)
  assert config.features_cfg.kmeans_centroids == centroids
  assert bool(config.data.flip) is flip


PROBES = [n for n in CONFIGS if n.startswith("probe_")]


def test_every_protocol_has_a_probe_config():
  assert PROBES == ["probe_clip", "probe_ridge", "probe_sgd"]


@pytest.fixture(scope="module")
def digits_features(tmp_path_factory):
  """The digits as a features file: 1,200 training rows of 64 columns, 597 test rows."""
  x, y = load_digits(return_X_y=True)
  x, y = x.astype(np.float32), y.astype(np.int32)
  path = str(tmp_path_factory.mktemp("features") / "digits.npz")
  return export.write(path, {"x_train": x[:1200], "y_train": y[:1200],
                             "x_test": x[1200:], "y_test": y[1200:]}, range(10))


@pytest.mark.parametrize("name", PROBES)
def test_probe_smoke_variants_run_through_train_py(name, digits_features, tmp_path):
  workdir = tmp_path / "run"
  out = subprocess.run(
      [sys.executable, os.path.join(ROOT, "train.py"), "--config", f"configs/{name}.py:smoke",
       f"--config.data.features={digits_features}", f"--workdir={workdir}"],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"), XLA_FLAGS=""))
  assert out.returncode == 0, out.stderr
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["best"]["test_accuracy"] > 0.8
  rows = list(csv.DictReader(open(workdir / "results.csv")))
  config = importlib.import_module(f"configs.{name}").get_config("smoke")
  if config.refine.field:      # CLIP's: a coarse grid, then strengths refined around the best
    stages = [r["stage"] for r in rows]
    assert stages.count("coarse") == len(config.sweep["reg_strength"]) and "refine" in stages
    logged = {json.loads(l)["member"] for l in open(workdir / "metrics.jsonl")}
    assert logged == {int(r["member"]) for r in rows}
