"""A small sweep run in a subprocess by the tests: prints progress, then the rows as JSON.

Usage: python _sweep_main.py WORKDIR_OR_DASH [LEARNING_RATES [SEEDS]]
(LEARNING_RATES: how many of 8, default 5; SEEDS: sweep seeds 0..SEEDS-1 too)
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from lincv import config as config_lib
from lincv import sweep, training


def blobs(n, d=12, c=4, seed=0):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(c, d)).astype(np.float32)
  y = rng.integers(0, c, n).astype(np.int32)
  x = centers[y] + 0.8 * rng.normal(size=(n, d)).astype(np.float32)
  return x, y


def run(workdir, num_lrs=5, seeds=None, progress=None) -> list[dict]:
  """The sweep's rows (without their seconds), also called by the tests in their own
  process; `seeds`: sweep seeds 0..seeds-1 too."""
  lrs = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0][:num_lrs]
  x, y = blobs(600)
  data = training.Data(jnp.asarray(x[:500]), jnp.asarray(y[:500]),
                       jnp.asarray(x[500:]), jnp.asarray(y[500:]))
  c = config_lib.base()
  c.epochs, c.batch_size, c.optimizer = 12, 32, "momentum"
  c.checkpoint_seconds = 0       # a commit after every epoch, so that a kill lands past one
  c.sweep = {"learning_rate": lrs, "loss": ["softmax", "svm"]}
  if seeds:    # their members train in seed blocks
    c.sweep["seed"] = list(range(seeds))
  result = sweep.run(c, lambda f: data, 4, workdir=workdir, progress=progress)
  return [{k: v for k, v in r.items() if k != "seconds"} for r in result.rows]


def main():
  workdir = None if sys.argv[1] == "-" else sys.argv[1]
  rows = run(workdir, int(sys.argv[2]) if len(sys.argv) > 2 else 5,
             int(sys.argv[3]) if len(sys.argv) > 3 else None,
             lambda p: print("progress", json.dumps(p), flush=True))
  print("devices", jax.device_count())
  # Through JSON, as a test reads them: the rows of a run in the test's process compare.
  print("rows", json.dumps(rows))


if __name__ == "__main__":
  main()
