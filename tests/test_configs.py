"""Every config loads and validates; the smoke variants run end to end on a tiny folder."""

import importlib
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from lincv import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "configs"))
                 if f.endswith(".py") and not f.startswith("_"))


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_and_validates(name):
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config()
  experiment.check(config)
  assert "python train.py" in module.__doc__
  with pytest.raises(ValueError, match="unknown variant"):
    module.get_config("no_such_variant")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  root = tmp_path_factory.mktemp("images")
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:32, :32]
  stripes = [(xx // 4) % 2, (yy // 4) % 2, ((xx + yy) // 4) % 2]  # per class: an orientation
  for split, n in (("train", 40), ("test", 12)):
    for k, name in enumerate(("plane", "car", "bird")):
      (root / split / name).mkdir(parents=True)
      for i in range(n):
        img = rng.integers(0, 60, (32, 32, 3))
        img[..., k] += 120 + 60 * stripes[k]                        # and a dominant colour
        Image.fromarray(img.astype(np.uint8)).save(root / split / name / f"{i}.png")
  return root


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
