"""The features of a config, written as a features file that `data.features` reads back.

    python train.py --config configs/cifar10_kmeans.py --mode features --out feats.npz
    python -m lincv.features.export --config configs/cifar10_kmeans.py --out feats/

writes `x_train, y_train, x_test, y_test, class_names` (see `lincv.data.feature_files`):
the rows a run of the config trains on (its `features`, pixels included, with its
preprocessing, computed and cached by `lincv.inputs` as in training). `x_train` is the
whole training set before the validation split, in the dataset's order, so that a run on
the file (`--config.data.features=feats.npz`, the same `data.val_fraction`,
`data.split_seed` and `data.limit`) splits off the same validation rows, and trains,
validates and tests on the rows a run of the config itself uses (with `data.center` and
`data.scale` applied again: "none" keeps them exactly as they are).
"""

import argparse
import sys

import numpy as np

from lincv import config as config_lib
from lincv import data as data_lib
from lincv import experiment
from lincv import inputs as inputs_lib
from lincv.data import feature_files
from lincv.data.preprocess import split_indices


def features_name(config) -> str:
  """The one feature family of the config's members; ConfigError if it is not one."""
  names = sorted({m["features"] for m in experiment.check(config)})
  if len(names) != 1:
    raise config_lib.ConfigError(f"the sweep varies features ({', '.join(names)}); export one: "
                                 "--config.sweep.features and --config.features=NAME")
  if config.data.get("flip"):
    raise config_lib.ConfigError("data.flip adds mirrored training rows, which a features "
                                 "file does not keep apart; export without it")
  return names[0]


def export(config, out, *, cache_dir=None, stream=None) -> dict:
  """Computes the config's features and writes them to `out` (.npz or a folder/).

  Returns:
    {"path", "features", "x_train", "x_test" (shapes), "classes"}.
  """
  out = feature_files.check_out(out)
  name = features_name(config)
  d = config.data
  ds = inputs_lib.dataset(config)
  inputs = inputs_lib.load(config, cache_dir=cache_dir or inputs_lib.cache_dir(config), ds=ds)
  _, _, train_idx, val_idx = split_indices(ds["train"][1], ds["test"][1], d.val_fraction,
                                           d.split_seed, d.limit or None)
  xs, ys = inputs.arrays(name), inputs.labels()
  n, dim = len(train_idx) + len(val_idx), xs["train"].shape[1]
  source = np.empty(n, np.int64)  # row i of x_train: source[i] of (x_train; x_val)
  source[train_idx] = np.arange(len(train_idx))
  source[val_idx] = len(train_idx) + np.arange(len(val_idx))
  y_train = np.concatenate([ys["train"], ys["val"]])[source]
  step = feature_files.chunk_rows(xs["train"])
  chunks = (_rows(xs["train"], xs["val"], source[i:i + step]) for i in range(0, max(n, 1), step))
  feature_files.write(out, {"x_train": ((n, dim), chunks), "y_train": y_train,
                            "x_test": xs["test"], "y_test": ys["test"]},
                      inputs.prepared.class_names)
  summary = {"path": out, "features": name, "x_train": [n, dim],
             "x_test": list(xs["test"].shape), "classes": len(inputs.prepared.class_names)}
  if stream is not None:
    stream.write(f"wrote {out}: {name} features of {n} training rows (before the "
                 f"validation split) and {len(ys['test'])} test rows, {dim} values each, "
                 f"{summary['classes']} classes\n")
  return summary


def _rows(x_train, x_val, source) -> np.ndarray:
  """Rows `source` of x_train stacked on x_val, without stacking them."""
  out = np.empty((len(source), x_train.shape[1]), x_train.dtype)
  in_train = source < len(x_train)
  out[in_train] = x_train[source[in_train]]
  out[~in_train] = x_val[source[~in_train] - len(x_train)]
  return out


def main(argv=None) -> None:
  """The module's command line (arguments without the program name); exits 2 with one
  line on bad input."""
  argv = sys.argv[1:] if argv is None else list(argv)
  parser = argparse.ArgumentParser(prog="python -m lincv.features.export",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--config", metavar="FILE[:VARIANT]", help="the config file, as for "
                      "train.py; --config.FIELD=VALUE overrides a field")
  parser.add_argument("--out", help="the features file to write: PATH.npz or DIR/")
  try:
    spec, overrides, rest = config_lib.split_args(argv)
  except config_lib.OverrideError as e:
    parser.exit(2, f"{parser.prog}: error: {e}\n")
  args = parser.parse_args(rest)
  if spec is None or not args.out:
    parser.print_usage(sys.stderr)
    parser.exit(2, f"{parser.prog}: error: give --config FILE and --out PATH.npz or DIR/\n")
  try:
    config = config_lib.load(spec)
    for path, text in overrides:
      config_lib.override(config, path, text)
    config_lib.swept_overrides(config, [path for path, _ in overrides])
    from lincv.data.records import quiet_tfds  # pylint: disable=import-outside-toplevel
    with quiet_tfds():
      export(config, args.out, stream=sys.stdout)
  except (config_lib.OverrideError, config_lib.ConfigError, data_lib.DataError) as e:
    parser.exit(2, f"{parser.prog}: error: {e}\n")


if __name__ == "__main__":
  main()
