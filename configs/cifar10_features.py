"""CIFAR-10, linear classifiers on HOG + hue-histogram features.

    python train.py --config configs/cifar10_features.py --config.data.folder=../shared/data/cifar10

HOG (8x8 cells, 9 orientations, on grey levels) and a 10-bin hue histogram, standardised
with training statistics (cached in the tfds data directory). Grid: loss {softmax, svm} x
learning rate (4) x regularization strength (4), Adam, cosine schedule, 20 epochs of
batch 256. The lecture notes' linear classifier on these features: about 44-46% test.
Measured here: 51.1% test in
30 s on a 2-core CPU (README, Results).
"""

from lincv import config as config_lib


def get_config(arg: str | None = None):
  c = config_lib.base()
  c.data.name = "cifar10"
  c.features = "hog_color"
  c.model = "linear"
  c.optimizer = "adam"
  c.schedule = "cosine"
  c.batch_size = 256
  c.epochs = 20
  c.sweep = {
      "loss": ("softmax", "svm"),
      "learning_rate": (1e-4, 3e-4, 1e-3, 3e-3),
      "reg_strength": (1e-4, 1e-3, 1e-2, 1e-1),
  }
  if arg == "smoke":
    c.data.limit = 300
    c.batch_size = 32
    c.epochs = 3
    c.sweep = {"loss": ("softmax", "svm"), "learning_rate": (1e-3, 1e-2)}
  elif arg:
    raise ValueError(f"unknown variant {arg!r} of configs/cifar10_features.py; expected: smoke")
  return c
