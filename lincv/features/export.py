"""The features of a config, written as a features file that `data.features` reads back.

    python train.py --config configs/cifar10_kmeans.py --mode features --out feats.npz
    python -m lincv.features.export --config configs/cifar10_kmeans.py --out feats/
    export.write("feats.npz", {"x_train": x, "y_train": y, ...}, class_names)  # any rows

writes `x_train, y_train, x_test, y_test, class_names` (see `lincv.data.feature_files`):
the rows a run of the config trains on (its `features`, pixels included, with its
preprocessing, computed and cached by `lincv.inputs` as in training). `x_train` is the
whole training set before the validation split, in the dataset's order, so that a run on
the file (`--config.data.features=feats.npz`, the same `data.val_fraction`,
`data.split_seed` and `data.limit`) splits off the same validation rows, and trains,
validates and tests on the rows a run of the config itself uses (with `data.center` and
`data.scale` applied again: "none" keeps them exactly as they are). With `data.flip`
the file also holds `x_train_mirrored` (row i: x_train row i's image mirrored), and a
run on it with `data.flip` trains on the same rows, mirrored ones included.
"""

import argparse
import os
import shutil
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Mapping

import numpy as np

from lincv import checkpoint, compile_cache, distributed
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
  if config.data.get("flip") and config.data.get("features"):
    raise config_lib.ConfigError("data.flip with data.features: the file's mirrored rows "
                                 "cover its training rows only; export without data.flip")
  return names[0]


def export(config, out, *, cache_dir=None, stream=None) -> dict:
  """Computes the config's features and writes them to `out` (.npz or a folder/).

  With `data.flip`, also `x_train_mirrored`: row i the features of the image of x_train
  row i mirrored left-right, computed (and cached) as training with flip computes them.

  Returns:
    {"path", "features", "x_train", "x_test" (shapes), "classes"}, and "x_train_mirrored"
    (its shape) with `data.flip`.
  """
  out = check_out(out)
  _check_not_the_source(config, out)
  experiment.check_writable(out, "--out", folder=not out.endswith(".npz"))
  compile_cache.enable()
  name = features_name(config)
  d = config.data
  ds = inputs_lib.dataset(config)
  inputs = inputs_lib.load(config, cache_dir=cache_dir or inputs_lib.cache_dir(config), ds=ds)
  experiment.warn_limit(config, inputs)
  _, _, train_idx, val_idx = split_indices(ds["train"][1], ds["test"][1], d.val_fraction,
                                           d.split_seed, d.limit or None)
  xs, ys = inputs.arrays(name), inputs.labels()
  n, dim = len(train_idx) + len(val_idx), xs["train"].shape[1]
  source = np.empty(n, np.int64)  # row i of x_train: source[i] of (x_train; x_val)
  source[train_idx] = np.arange(len(train_idx))
  source[val_idx] = len(train_idx) + np.arange(len(val_idx))
  y_train = np.concatenate([inputs.prepared.y_train, ys["val"]])[source]
  arrays = {"x_train": _reordered(xs["train"][:len(train_idx)], xs["val"], source),
            "y_train": y_train, "x_test": xs["test"], "y_test": ys["test"]}
  if inputs.flip:
    arrays["x_train_mirrored"] = _reordered(inputs.mirrored(name, "train"),
                                            inputs.mirrored(name, "val"), source)
  write(out, arrays, inputs.prepared.class_names)
  summary = {"path": out, "features": name, "x_train": [n, dim],
             "x_test": list(xs["test"].shape), "classes": len(inputs.prepared.class_names)}
  if inputs.flip:
    summary["x_train_mirrored"] = [n, dim]
  if stream is not None:
    stream.write(f"wrote {out}: {name} features of {n} training rows (before the "
                 f"validation split{', and each mirrored' if inputs.flip else ''}) and "
                 f"{len(ys['test'])} test rows, {dim} values each, "
                 f"{summary['classes']} classes\n")
  return summary


def _check_not_the_source(config, out: str) -> None:
  """Refuses an `out` that is the features file the config reads (`data.features`, the
  same file by any path or link): the export writes the rows as the config prepares
  them (centred, scaled), which would replace the file's own rows, held nowhere else."""
  source = config.data.get("features")
  if (source and os.path.isfile(out) and os.path.isfile(source)
      and os.path.samefile(out, source)):
    raise data_lib.DataError(
        f"--out {out} is the features file the config reads (data.features={source}): its "
        "rows would be replaced by the rows as the config prepares them; name another file")


def _reordered(x_train, x_val, source) -> tuple:
  """(shape, chunks): rows `source` of x_train stacked on x_val, a chunk at a time."""
  n, step = len(source), feature_files.chunk_rows(x_train)
  chunks = (_rows(x_train, x_val, source[i:i + step]) for i in range(0, max(n, 1), step))
  return (n, x_train.shape[1]), chunks


def _rows(x_train, x_val, source) -> np.ndarray:
  """Rows `source` of x_train stacked on x_val, without stacking them."""
  out = np.empty((len(source), x_train.shape[1]), x_train.dtype)
  in_train = source < len(x_train)
  out[in_train] = x_train[source[in_train]]
  out[~in_train] = x_val[source[~in_train] - len(x_train)]
  return out


def check_out(out) -> str:
  """`out` if it names an output `write` takes (an .npz file, or a folder ending in /)."""
  out = os.fspath(out)
  if not (out.endswith(".npz") or out.endswith(("/", os.sep)) or os.path.isdir(out)):
    raise data_lib.DataError(f"--out {out}: expected a path ending in .npz (one file) or in / (a "
                    "folder of .npy files)")
  if not out.endswith(".npz") and os.path.isdir(out) and os.listdir(out):
    raise data_lib.DataError(f"--out {out}: this folder is not empty; name a new or empty folder")
  return out


def write(out, arrays: Mapping[str, object], class_names=None) -> str:
  """Writes features atomically: an .npz (`out` ends in .npz) or a folder of .npy files.

  The format is `lincv.data.feature_files`'s, its `.npz` members stored uncompressed (so
  that they are memory-mapped when read). Each value of `arrays` is an array, or a pair
  (shape, chunks): its dtype-carrying chunks of rows, written one after another, so rows
  never need to be in memory at once. `class_names` (or an array of that name in
  `arrays`, not both) is optional, as in the format. What is written is read back by
  `lincv.data.feature_files.load` before it takes `out`'s place, so a file that `load`
  would refuse (rows and labels of different lengths, a NaN, ...) is never written:
  `DataError` names the array, as `load` does (and ValueError chunks that hold other rows
  than their shape says). Nothing half-written stays behind: the file (or folder) appears complete, or not
  at all, and folders made for it are removed again.

  Returns:
    `out`.
  """
  out = check_out(out)
  arrays = dict(arrays)
  if class_names is not None:
    if "class_names" in arrays:
      raise ValueError("class_names given twice: as an argument and in arrays; give one")
    arrays["class_names"] = np.asarray([str(c) for c in class_names])
  made = _missing_folders(os.path.dirname(os.path.abspath(os.path.normpath(out))))
  try:
    if out.endswith(".npz"):
      checkpoint.atomic_write(out, lambda f: _write_npz(f, arrays),
                              check=lambda tmp: _check_written(tmp, out))
    else:
      _write_folder(out, arrays)
  except BaseException:
    for folder in made:      # deepest first; only if still empty
      try:
        os.rmdir(folder)
      except OSError:
        break
    raise
  return out


def _missing_folders(folder: str) -> list[str]:
  """The folders above and including `folder` that do not exist yet, deepest first."""
  made = []
  while folder and not os.path.exists(folder):
    made.append(folder)
    folder = os.path.dirname(folder)
  return made


def _write_folder(out, arrays) -> None:
  folder = os.path.normpath(out)
  parent = os.path.dirname(os.path.abspath(folder))
  os.makedirs(parent, exist_ok=True)
  # mkdtemp's random part is 8 characters of [a-z0-9_]: a `checkpoint.temporary_name`
  tmp = tempfile.mkdtemp(prefix=checkpoint.TMP_PREFIX, suffix="-" + os.path.basename(folder),
                         dir=parent)
  try:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # as any folder the user makes, not mkdtemp's 0o700
    for k, v in arrays.items():
      with open(os.path.join(tmp, k + ".npy"), "wb") as f:
        _write_npy(f, v, k)
    _check_written(tmp, out)
    os.replace(tmp, folder)  # onto an absent or empty folder
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  checkpoint.remove_stale_temporaries(folder)


def _check_written(tmp: str, out: str) -> None:
  """`feature_files.load` of the temporary copy `tmp`; its DataError and warnings name
  `out`."""
  rename = lambda message: message.replace(f"features {tmp}", f"features {out}", 1)
  try:
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      feature_files.load(tmp)
  except data_lib.DataError as e:
    raise data_lib.DataError(rename(str(e))) from None
  for w in caught:
    warnings.warn(rename(str(w.message)), w.category, stacklevel=4)


def _write_npz(f, arrays) -> None:
  with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
    for k, v in arrays.items():
      with z.open(k + ".npy", "w", force_zip64=True) as member:
        _write_npy(member, v, k)


def _is_stream(value) -> bool:
  """Whether `value` is a (shape, chunks) pair: a tuple of a shape (a tuple of integers)
  and an iterable of chunks. Any other value, a tuple of class names among them, is an
  array (a tuple of names was read as a pair: "too many values to unpack")."""
  return (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], tuple)
          and all(isinstance(s, (int, np.integer)) for s in value[0])
          and not isinstance(value[1], (str, bytes)))


def _write_npy(f, value, name: str) -> None:
  """An .npy of an array, or of (shape, chunks of rows), to the open file `f`;
  ValueError if the chunks do not hold the rows `shape` says."""
  if _is_stream(value):
    shape, chunks = value
    chunks = iter(chunks)
    first = np.asarray(next(chunks))
    pieces = ([first], chunks)
  else:
    value = np.ascontiguousarray(value)
    shape, first, pieces = value.shape, value, ([value],)
  shape = tuple(int(s) for s in shape)
  header = {"descr": np.lib.format.dtype_to_descr(first.dtype), "fortran_order": False,
            "shape": shape}
  np.lib.format.write_array_header_1_0(f, header)
  rows = 0
  for part in pieces:
    for chunk in part:
      chunk = np.ascontiguousarray(chunk, first.dtype)
      if chunk.shape[1:] != shape[1:]:
        raise ValueError(f"{name}: a chunk of shape {chunk.shape} in rows of shape {shape}")
      rows += len(chunk)
      f.write(chunk.tobytes())
  if shape and rows != shape[0]:
    raise ValueError(f"{name}: the chunks hold {rows} rows, its shape {shape} says "
                     f"{shape[0]}")


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
    # As train.py --mode features: an override this mode does not read is refused.
    config_lib.refuse_idle(config, [path for path, _ in overrides], "features",
                           experiment.check)
    from lincv.data.records import quiet_tfds  # pylint: disable=import-outside-toplevel
    with quiet_tfds():
      export(config, args.out, stream=sys.stdout)
  except (config_lib.OverrideError, config_lib.ConfigError, data_lib.DataError) as e:
    parser.exit(2, f"{parser.prog}: error: {e}\n")
  except KeyboardInterrupt:
    sys.stderr.write(f"{parser.prog}: interrupted; nothing written to --out {args.out}\n")
    sys.exit(130)


if __name__ == "__main__":
  try:
    main()
  except SystemExit as e:
    if e.code == 130:   # Ctrl-C: XLA may still be running the program it cut short
      distributed.exit_without_teardown(130)
    raise
