"""Baselines on the embedded digits: k-NN (cross-validated k) and random search over W.

    python train.py --config configs/digits_baselines.py:knn
    python train.py --config configs/digits_baselines.py:random_search
    python train.py --config configs/digits_baselines.py:random_local_search

Seconds each on a 2-core CPU; these are the smoke tests of the baseline methods too.
"""

from lincv import config as config_lib


def get_config(arg: str | None = "knn"):
  c = config_lib.base()
  c.data.name = "digits"
  c.method = arg or "knn"
  if c.method not in config_lib.METHODS[1:]:
    raise ValueError(f"unknown variant {arg!r} of configs/digits_baselines.py; expected one "
                     f"of: {', '.join(config_lib.METHODS[1:])}")
  c.loss = "svm"
  c.knn.ks = (1, 3, 5, 10)
  c.knn.cv_limit = 0
  c.random.num_tries = 200
  c.random.scale = 1e-2
  c.random.step = 1e-2
  c.random.examples = 0
  return c
