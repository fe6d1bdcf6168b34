"""Atomic, pickle-free checkpoints: pytrees of arrays as .npz, metadata as JSON.

Every write goes to a temporary file in the target's folder, is flushed to disk and then
renamed over the target, so a reader sees the old file or the new one, never half of
one. Pytrees are stored as their list of leaves; reading needs a pytree of the same
structure (`like`) to rebuild them, so no code is ever unpickled.
"""

import json
import math
import os
import tempfile

import jax
import numpy as np


def atomic_write(path: str, write) -> None:
  """Calls `write(f)` on a temporary file beside `path`, then renames it over `path`."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


NONFINITE = ("refuse", "null")


def save_json(path: str, obj, *, nonfinite: str = "refuse") -> None:
  """Writes `obj` as indented, strict JSON (no NaN or Infinity), atomically.

  Args:
    path: the file to write.
    obj: dicts, lists, strings, numbers, None, NumPy or JAX arrays and scalars.
    nonfinite: what a NaN or infinite number becomes: "refuse" raises ValueError naming
      the file and the field; "null" writes null (the reader maps null back if it needs
      NaN, e.g. `np.asarray(values, float)`).
  """
  if nonfinite not in NONFINITE:
    raise ValueError(f"nonfinite must be one of {', '.join(NONFINITE)}, got {nonfinite!r}")
  obj = strict(obj, nonfinite, path)
  text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
  atomic_write(path, lambda f: f.write(text.encode()))


def dumps_line(obj) -> str:
  """`obj` as one line of strict JSON (for .jsonl files); NaN and infinities become null."""
  return json.dumps(strict(obj, "null"), allow_nan=False)


def strict(obj, nonfinite: str = "refuse", path: str = "", where: str = ""):
  """`obj` as plain JSON values: arrays as lists, non-finite floats refused or made None.

  Args:
    obj: the value to convert.
    nonfinite: "refuse" raises ValueError naming `path` and the field; "null" gives None.
    path: the file it is for, named in errors.
    where: the field path of `obj` (e.g. "best.val_accuracy"), named in errors.
  """
  if isinstance(obj, jax.Array):
    obj = np.asarray(obj)
  if isinstance(obj, (np.ndarray, np.generic)):
    obj = obj.tolist()
  if isinstance(obj, dict):
    return {k: strict(v, nonfinite, path, f"{where}.{k}" if where else str(k))
            for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [strict(v, nonfinite, path, f"{where}[{i}]") for i, v in enumerate(obj)]
  if isinstance(obj, float) and not math.isfinite(obj):
    if nonfinite == "null":
      return None
    raise ValueError(f"{_field(path, where)} is {obj}; JSON holds only finite numbers")
  if obj is None or isinstance(obj, (str, int, float)):
    return obj
  raise TypeError(f"{_field(path, where)} is not JSON serialisable: {type(obj).__name__}")


def _field(path: str, where: str) -> str:
  return f"{path + ': ' if path else ''}field {where or '(top level)'}"


def load_json(path: str):
  with open(path) as f:
    return json.load(f)


def save_tree(path: str, tree) -> None:
  """Writes the leaves of a pytree of arrays to `path` (.npz), atomically."""
  leaves = [np.asarray(x) for x in jax.tree.leaves(tree)]
  atomic_write(path, lambda f: np.savez(f, *leaves))


def load_tree(path: str, like):
  """Reads a pytree written by `save_tree`, with the structure of `like`."""
  leaves_like, treedef = jax.tree.flatten(like)
  with np.load(path, allow_pickle=False) as z:
    leaves = [z[f"arr_{i}"] for i in range(len(z.files))]
  if len(leaves) != len(leaves_like):
    raise ValueError(
        f"checkpoint {path} holds {len(leaves)} arrays, expected {len(leaves_like)}; "
        "it was written by a different configuration")
  for got, want in zip(leaves, leaves_like):
    if got.shape != np.shape(want):
      raise ValueError(f"checkpoint {path} holds an array of shape {got.shape}, "
                       f"expected {np.shape(want)}")
  return jax.tree.unflatten(treedef, leaves)


def save_arrays(path: str, arrays: dict) -> None:
  """Writes a flat dict of named arrays (e.g. a model's parameters) as .npz, atomically."""
  arrays = {k: np.asarray(v) for k, v in arrays.items()}
  atomic_write(path, lambda f: np.savez(f, **arrays))


def load_arrays(path: str) -> dict:
  """Reads a flat dict of named arrays written by `save_arrays` (no pickle)."""
  with np.load(path, allow_pickle=False) as z:
    return {k: z[k] for k in z.files}
