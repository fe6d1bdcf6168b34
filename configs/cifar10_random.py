"""CIFAR-10, the lecture notes' gradient-free baselines for a linear classifier.

    python train.py --config configs/cifar10_random.py:random_search --config.data.folder=../shared/data/cifar10
    python train.py --config configs/cifar10_random.py:random_local_search --config.data.folder=...

Random search keeps the best of 1,000 random W by multiclass SVM loss on 5,000 training
images (the notes: about 15.5% test); random local search takes 1,000 greedy random steps
(the notes: about 21.4%). Measured here: 10.7% and
25.6% test, 20-30 s each on a 2-core CPU (README, Results); random search over seeds 0 to 6
(`--config.seed=N`) gives 9.7% to 14.4%.
"""

from lincv import config as config_lib


def get_config(arg: str | None = "random_search"):
  c = config_lib.base()
  c.data.name = "cifar10"
  c.data.center = "none"
  c.method = arg or "random_search"
  smoke = c.method == "smoke"
  if smoke:
    c.method = "random_search"
    c.data.limit = 300
    c.random.num_tries = 20
  elif c.method not in ("random_search", "random_local_search"):
    raise ValueError(f"unknown variant {arg!r} of configs/cifar10_random.py; expected one "
                     "of: random_search, random_local_search, smoke")
  c.loss = "svm"
  # Pixels are in [0, 1]: a scale of 0.025 here is the notes' 1e-4 on 0-255 pixels.
  c.random.scale = 0.025 if c.method == "random_search" else 1e-3
  c.random.step = 1e-3
  c.random.examples = 0 if smoke else 5000   # smoke: its 270 training rows, all of them
  return c
