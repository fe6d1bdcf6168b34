"""MNIST, linear softmax and SVM on raw pixels (the tfds catalog's `mnist`).

    python train.py --config configs/mnist_linear.py
    python train.py --config configs/mnist_linear.py --config.data.folder=PATH  # an image folder

The catalog dataset must be prepared beforehand (the error without it says how). Grid:
loss {softmax, svm} x learning rate (3) x regularization strength (3), Adam, 10 epochs of
batch 256. Linear classifiers reach about 92% test accuracy on MNIST (LeCun et al., 1998:
12% error for a plain linear classifier on raw pixels, about 8% with preprocessing); this
config has not been run here, where the catalog cannot be downloaded.
"""

from lincv import config as config_lib


def get_config(arg: str | None = None):
  c = config_lib.base()
  c.data.name = "mnist"
  c.model = "linear"
  c.optimizer = "adam"
  c.batch_size = 256
  c.epochs = 10
  c.sweep = {
      "loss": ("softmax", "svm"),
      "learning_rate": (1e-4, 3e-4, 1e-3),
      "reg_strength": (1e-4, 1e-3, 1e-2),
  }
  if arg == "smoke":
    c.data.limit = 60
    c.batch_size = 9     # its 54 training rows: 6 full batches, none left out
    c.epochs = 2
    c.sweep = {"loss": ("softmax", "svm")}
  elif arg:
    raise ValueError(f"unknown variant {arg!r} of configs/mnist_linear.py; expected: smoke")
  return c
