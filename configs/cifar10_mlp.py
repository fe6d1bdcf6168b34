"""CIFAR-10, the two-layer net (ReLU hidden layer) on raw pixels, hand-derived backprop.

    python train.py --config configs/cifar10_mlp.py --config.data.folder=../shared/data/cifar10

Softmax loss, L2 on both weight matrices, Adam with a cosine schedule, batch 256,
hidden 512; sweep: learning rate (2) x regularization strength (2), 4 members in one
group. The lecture notes' two-layer net reaches about 50% test. Measured here: 56.1% test
in 13 min on a shared 2-core CPU (README, Results).
"""

from lincv import config as config_lib


def get_config(arg: str | None = None):
  c = config_lib.base()
  c.data.name = "cifar10"
  c.model = "mlp"
  c.hidden = 512
  c.loss = "softmax"
  c.optimizer = "adam"
  c.schedule = "cosine"
  c.batch_size = 256
  c.epochs = 20
  c.sweep = {"learning_rate": (3e-4, 1e-3), "reg_strength": (1e-4, 1e-3)}
  if arg == "smoke":
    c.data.limit = 300
    c.hidden = 16
    c.batch_size = 32
    c.epochs = 2
  elif arg:
    raise ValueError(f"unknown variant {arg!r} of configs/cifar10_mlp.py; expected: smoke")
  return c
