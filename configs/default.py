"""Default: softmax and SVM sweep on the embedded 8x8 digits (offline, under a minute).

    python train.py                               # this config, into runs/<name>-<time>/
    python train.py --config configs/default.py:smoke   # seconds, for tests

Grid: loss {softmax, svm} x learning rate (4) x regularization strength (4) x seed (2),
Adam, 40 epochs: one group of 64 members, compiled once (the two losses share the
program: each member's loss is picked inside the step). Reaches 94.7% test accuracy in
about 8 s on a 2-core CPU (see the README's results table).
"""

from lincv import config as config_lib


def get_config(arg: str | None = None):
  c = config_lib.base()
  c.data.name = "digits"
  c.model = "linear"
  c.optimizer = "adam"
  c.batch_size = 64
  c.epochs = 40
  c.sweep = {
      "loss": ("softmax", "svm"),
      "learning_rate": (1e-3, 3e-3, 1e-2, 3e-2),
      "reg_strength": (1e-4, 1e-3, 1e-2, 1e-1),
      "seed": (0, 1),
  }
  if arg == "smoke":
    c.epochs = 3
    c.sweep = {"loss": ("softmax", "svm"), "learning_rate": (1e-2, 1e-1)}
  elif arg:
    raise ValueError(f"unknown variant {arg!r} of configs/default.py; expected: smoke")
  return c
