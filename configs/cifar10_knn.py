"""CIFAR-10, k-nearest neighbours on raw pixels.

    python train.py --config configs/cifar10_knn.py --config.data.folder=../shared/data/cifar10
    python train.py --config configs/cifar10_knn.py:1nn_l1 --config.data.folder=...
    python train.py --config configs/cifar10_knn.py:1nn_l2 --config.data.folder=...

Default: k and the metric chosen by 5-fold cross-validation on 5,000 training images
(k in 1..100, L1 and L2), then the 10,000 test images labelled by their nearest
neighbours among all 50,000 training images (the train and validation parts). The
`1nn_*` variants skip the selection: plain 1-NN with one metric, as in the lecture notes
(38.6% L1, 35.4% L2 on the original images). Measured here: 1-NN L1
38.5% (68 s), L2 35.3% (55 s); cross-validated (L1, k = 12) 38.4% (171 s) on a 2-core CPU.
"""

from lincv import config as config_lib


def get_config(arg: str | None = None):
  c = config_lib.base()
  c.data.name = "cifar10"
  c.data.center = "none"
  c.method = "knn"
  c.knn.metrics = ("l1", "l2")
  c.knn.ks = (1, 3, 5, 8, 10, 12, 15, 20, 50, 100)
  c.knn.num_folds = 5
  c.knn.cv_limit = 5000
  if arg in ("1nn_l1", "1nn_l2"):
    c.knn.metrics = (arg[-2:],)
    c.knn.ks = (1,)
  elif arg == "smoke":
    c.data.limit = 300
    c.knn.ks = (1, 3)
    c.knn.num_folds = 3
  elif arg:
    raise ValueError(f"unknown variant {arg!r} of configs/cifar10_knn.py; expected one of: "
                     "1nn_l1, 1nn_l2, smoke")
  return c
