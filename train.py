"""Trains a lincv sweep from a config, or evaluates a finished run.

    python train.py                                    # configs/default.py, into runs/
    python train.py --config configs/cifar10_linear.py --config.data.folder=PATH
    python train.py --config configs/default.py --config.epochs=10 --workdir runs/x
    python train.py --workdir runs/x --mode eval [--split test]

A run killed at any point resumes when started again with the same --workdir. Bad input
(an unknown field, a wrong type, an unknown name, a missing folder) prints one line on
stderr and exits with status 2, writing nothing.
"""

import os
import sys
import time

from absl import flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path of a config file (default: configs/default.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory (default: runs/<config>-<time>).")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train a sweep or evaluate a run.")
flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split for --mode eval.")
flags.DEFINE_string("coordinator", None,
                    "host:port of process 0, to run across hosts with jax.distributed.")
flags.DEFINE_integer("num_processes", None, "Number of processes (hosts) of a distributed run.")
flags.DEFINE_integer("process_id", None, "This process's index in a distributed run.")


def _fail(message: str) -> None:
  sys.stderr.write(f"train.py: error: {message}\n")
  sys.exit(2)


def main(argv) -> None:
  here = os.path.dirname(os.path.abspath(__file__))
  if not any(a == "--config" or a.startswith("--config=") for a in argv[1:]):
    argv = [argv[0], f"--config={os.path.join(here, 'configs', 'default.py')}", *argv[1:]]
  try:
    FLAGS(argv)
  except (flags.Error, ValueError, TypeError, AttributeError, KeyError) as e:
    _fail(str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__)

  if FLAGS.coordinator:
    import jax
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator,
                               num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)

  from lincv import experiment
  from lincv.data import DataError

  if FLAGS.mode == "train":
    try:
      config = FLAGS.config
      config.to_dict()  # the config file loads lazily: surface its errors here
    except Exception as e:  # noqa: BLE001 - any failure to load the user's config file
      cause = e.__cause__ or e
      detail = [l.strip() for l in str(cause).splitlines() if l.strip()]
      _fail(f"cannot load --config {FLAGS['config'].config_filename}: "
            f"{detail[-1] if detail else type(cause).__name__}")

  try:
    if FLAGS.mode == "eval":
      if not FLAGS.workdir:
        _fail("--mode eval needs --workdir of a finished run")
      experiment.evaluate(FLAGS.workdir, FLAGS.split, stream=sys.stdout)
      return
    workdir = FLAGS.workdir
    if not workdir:
      name = os.path.splitext(os.path.basename(FLAGS["config"].config_filename.split(":")[0]))[0]
      workdir = os.path.join("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    experiment.check(config)
    experiment.run(config, workdir, stream=sys.stdout)
  except (experiment.ConfigError, DataError) as e:
    _fail(str(e))


if __name__ == "__main__":
  main(sys.argv)
