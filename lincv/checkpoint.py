"""Atomic, pickle-free checkpoints: pytrees of arrays as .npz, metadata as JSON.

Every write goes to a temporary file in the target's folder, is flushed to disk and then
renamed over the target, so a reader sees the old file or the new one, never half of
one. Pytrees are stored as their list of leaves; reading needs a pytree of the same
structure (`like`) to rebuild them, so no code is ever unpickled.
"""

import json
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


def save_json(path: str, obj) -> None:
  """Writes `obj` as indented JSON, atomically."""
  text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
  atomic_write(path, lambda f: f.write(text.encode()))


def load_json(path: str):
  with open(path) as f:
    return json.load(f)


def _json_default(obj):
  if isinstance(obj, (np.generic, np.ndarray)):
    return obj.tolist()
  if isinstance(obj, jax.Array):
    return np.asarray(obj).tolist()
  raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


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
