"""Linear probe as DINOv2's: SGD with momentum 0.9, cosine schedule, a grid of heads at once.

    python train.py --config configs/cifar10_kmeans.py \
        --config.data.folder=../shared/data/cifar10 --mode features --out feats.npz
    python train.py --config configs/probe_sgd.py --config.data.features=feats.npz
    python train.py --config configs/probe_sgd.py:smoke --config.data.features=feats.npz

DINOv2 evaluates its features by training many linear heads side by side over a grid of
learning rates, with SGD, momentum 0.9 and a cosine schedule, and keeps the best on
validation. Here every head is a member of one population (one compiled program, every
minibatch shared): 6 learning rates (1e-4 to 3e-2, two a decade) x 4 weight decays
(`reg_strength` 1e-5 to 1e-2, l2), 24 heads, softmax, minibatches of 256, 30 epochs.
The values are chosen for standardised features such as the k-means ones, not taken
from DINOv2. `reg_strength` is a penalty on the mean loss: optax's (and PyTorch SGD's)
weight decay wd = 2 reg_strength gives the same updates (README, Linear probes).

Rows are standardised (`data.scale="std"`), as for `probe_clip.py`. `data.features` has
no default: pass --config.data.features=PATH. `:smoke` is 2 x 2 heads for 2 epochs.

Measured on the CIFAR-10 k-means features, 1,600 centroids (README, Results): 70.8% test
(val 70.8%, learning rate 3e-2 and reg_strength 1e-3) in 2 min 12 s on the 2-core CPU,
72.8% (val 73.0%, the same member) in 2 min 10 s with `--config.data.flip=True`; 4,000
centroids: 70.5% (val 71.2%, 3e-3 and 1e-3) in 1 min 50 s, 73.0% (val 73.0%, the same)
in 3 min 11 s with mirrored rows. On 1,600 centroids the selected learning rate is the
grid's largest: a grid for these features could go higher.
"""

from lincv import config as config_lib

VARIANTS = ("smoke",)


def get_config(arg: str | None = None):
  if arg and arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of configs/probe_sgd.py; expected one "
                     f"of: {', '.join(VARIANTS)}")
  c = config_lib.base()
  c.data.name = ""               # the features come from --config.data.features
  c.data.center, c.data.scale = "image", "std"
  c.model, c.loss, c.reg = "linear", "softmax", "l2"
  c.optimizer, c.momentum = "momentum", 0.9
  c.schedule = "cosine"
  c.batch_size, c.epochs = 256, 30
  c.shuffle_seed = 0             # every head sees the same minibatches, gathered once
  c.sweep = {"learning_rate": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
             "reg_strength": (1e-5, 1e-4, 1e-3, 1e-2)}
  if arg == "smoke":
    c.batch_size, c.epochs = 64, 2
    c.sweep = {"learning_rate": (1e-2, 1e-1), "reg_strength": (1e-4, 1e-2)}
  return c
