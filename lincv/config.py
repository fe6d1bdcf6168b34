"""The configuration schema: every field a run understands, its default and its kind.

Configs in `configs/` start from `base()` and override a few fields. Training fields are
flat so that a sweep names them directly (`config.sweep = {"learning_rate": [...]}`).
Fields are of two kinds:

  structural  change the compiled program; a sweep over them makes separate groups;
  numeric     plain numbers; a sweep stacks them along the population axis of a group.
"""

import dataclasses

import ml_collections

from lincv import training

STRUCTURAL = tuple(f.name for f in dataclasses.fields(training.Structure)) + ("features",)
NUMERIC = tuple(training.HPARAM_DEFAULTS)
SWEEPABLE = STRUCTURAL + NUMERIC
FEATURES = ("pixels", "hog_color", "kmeans")


def base() -> ml_collections.ConfigDict:
  """Every field with its default value."""
  c = ml_collections.ConfigDict()
  for f in dataclasses.fields(training.Structure):
    setattr(c, f.name, f.default)
  c.features = "pixels"
  for name, value in training.HPARAM_DEFAULTS.items():
    setattr(c, name, float(value) if name != "seed" else int(value))
  # `seed` draws a member's initial weights and its data order (see lincv/seeds.py);
  # shuffle_seed = N gives every member the data order of seed N instead.
  c.shuffle_seed = ml_collections.config_dict.placeholder(int)
  c.dtype = "float32"                    # float32 | float64 (the whole run in 64-bit JAX)

  c.sweep = ml_collections.ConfigDict()  # field -> list of values or {"log_uniform": [lo, hi]} ...
  c.search = "grid"                      # grid | random
  c.num_samples = 16                     # members drawn by a random search
  c.search_seed = 0
  c.halving = ml_collections.ConfigDict({"rungs": (), "eta": 2})

  c.data = ml_collections.ConfigDict({
      "name": "digits",
      "folder": "",           # an image folder root/{train,test}/<class>/*; overrides name
      "data_dir": "",         # where tfds keeps prepared data; "" = TFDS_DATA_DIR or default
      "val_fraction": 0.1,
      "split_seed": 0,
      "center": "image",      # image | channel | none
      "scale": "none",        # none | std
      "limit": 0,             # cap on training examples (0 = all), for smoke runs
      "flip": False,          # also train on every training image mirrored left-right
  })
  c.features_cfg = ml_collections.ConfigDict({
      "hist_bins": 10,
      "kmeans_centroids": 1600,
      "kmeans_patches": 400000,
      "kmeans_iters": 10,
  })
  c.checkpoint_every = 1       # epochs between sweep checkpoints
  c.eval_split = "test"
  return add_method_fields(c)


METHODS = ("sweep", "knn", "random_search", "random_local_search")


def add_method_fields(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Fields of the non-sweep methods: k-NN and the random-search baselines."""
  c.method = "sweep"
  c.knn = ml_collections.ConfigDict({
      "metrics": ("l1", "l2"),
      "ks": (1, 3, 5, 8, 10, 12, 15, 20, 50, 100),
      "num_folds": 5,
      "cv_limit": 5000,      # training rows used for cross-validation over k (0 = all)
  })
  c.random = ml_collections.ConfigDict({
      "num_tries": 1000,     # random search: candidates; local search: steps
      "scale": 1e-4,         # std of the random W (in units of preprocessed pixels)
      "step": 1e-4,          # local search step size
      "examples": 5000,      # training rows the loss is measured on (0 = all)
  })
  return c
