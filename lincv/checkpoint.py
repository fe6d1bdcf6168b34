"""Atomic, pickle-free checkpoints: pytrees of arrays as .npz, metadata as JSON.

Every write goes to a temporary file in the target's folder, is flushed to disk and then
renamed over the target, so a reader sees the old file or the new one, never half of
one; the temporary files a killed write left of the same target go when a write of it
succeeds. Files get the permissions of an ordinary file (0666 less the process's umask).
Pytrees are stored as their list of leaves; reading needs a pytree of the same structure
(`like`) to rebuild them, so no code is ever unpickled.

Arrays of the dtypes JAX adds to NumPy (ml_dtypes: bfloat16, the float8 family, int4,
...), which an .npz holds only as raw bytes (a `|V2` array of b'\\x80?' for bfloat16's 1),
are written as their bits (unsigned integers of their width) beside a JSON field,
`DTYPES_KEY`, naming their dtypes, and read back as the arrays they were, bit for bit.
Arrays that an .npz holds only pickled (Python objects) are refused when written:
nothing pickled is ever read.

`Store` commits several files at once: a state made of many files changes in one step.
"""

import json
import math
import os
import re
import secrets
import shutil
import zipfile

import jax
import numpy as np

TMP_PREFIX = ".tmp-"
DTYPES_KEY = "__lincv_dtypes__"   # in an .npz: {name: dtype} of its ml_dtypes arrays


def atomic_write(path: str, write, check=None) -> None:
  """Calls `write(f)` on a temporary file beside `path`, then (after `check(tmp_path)`,
  which may raise to keep `path` as it was) renames it over `path`."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  while True:
    tmp = os.path.join(folder, temporary_name(path, secrets.token_hex(4)))
    try:
      # 0o666 as open() uses: the kernel applies the umask, as for any file the user writes.
      fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
      break
    except FileExistsError:
      continue
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    if check is not None:
      check(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  remove_stale_temporaries(path)


def temporary_name(path: str, tag: str) -> str:
  """The name of a temporary copy of `path` beside it: `TMP_PREFIX`, an 8-character
  `tag`, the target's name (`remove_stale_temporaries` finds it by them)."""
  return f"{TMP_PREFIX}{tag}-{os.path.basename(os.path.normpath(path))}"


def remove_stale_temporaries(path: str) -> None:
  """Removes the temporary copies of `path` (files or folders) that a killed write left
  beside it. Called once a write of `path` succeeded: lincv writes a target from one
  process at a time."""
  folder = os.path.dirname(os.path.abspath(os.path.normpath(path)))
  pattern = (re.escape(TMP_PREFIX) + r"[0-9a-z_]{8}-"
             + re.escape(os.path.basename(os.path.normpath(path))))
  for name in os.listdir(folder):
    if re.fullmatch(pattern, name):
      stale = os.path.join(folder, name)
      if os.path.isdir(stale) and not os.path.islink(stale):
        shutil.rmtree(stale, ignore_errors=True)
      else:
        remove(stale)


def remove(path: str) -> None:
  """Deletes `path` if it exists."""
  try:
    os.remove(path)
  except FileNotFoundError:
    pass


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


class Damaged(ValueError):
  """A run's file that cannot be read as lincv wrote it: truncated, overwritten, foreign."""


def damaged(path: str, what: str, why: str) -> Damaged:
  """The Damaged error of `path`: not the `what` (e.g. "JSON") lincv wrote, because `why`."""
  return Damaged(f"{path} is damaged: not the {what} lincv wrote ({why}); remove the run "
                 "(or use a new --workdir) and run it again")


def load_json(path: str, keys=()) -> dict:
  """Reads a JSON file holding an object with at least the fields `keys`; Damaged if it
  is not JSON, or not such an object (a missing file raises as usual)."""
  try:
    with open(path, encoding="utf-8") as f:
      obj = json.load(f)
  except ValueError as e:          # JSONDecodeError, UnicodeDecodeError
    raise damaged(path, "JSON", f"{type(e).__name__}: {e}") from None
  if not isinstance(obj, dict):
    raise damaged(path, "JSON", "not a JSON object")
  missing = [k for k in keys if k not in obj]
  if missing:
    raise damaged(path, "JSON", f"no field {missing[0]!r}")
  return obj


def save_tree(path: str, tree) -> None:
  """Writes the leaves of a pytree of arrays to `path` (.npz), atomically."""
  save_arrays(path, tree_arrays(tree, "arr_"))    # the names np.savez(f, *leaves) gives


def load_tree(path: str, like):
  """Reads a pytree written by `save_tree`, with the structure of `like`."""
  return from_arrays(load_arrays(path), like, "arr_", f"checkpoint {path}")


def save_arrays(path: str, arrays: dict) -> None:
  """Writes a flat dict of named arrays (e.g. a model's parameters) as .npz, atomically.
  ml_dtypes arrays (bfloat16, ...) are written as their bits (see the module's docstring);
  arrays an .npz would pickle are a ValueError naming them."""
  arrays = _encode({k: np.asarray(v) for k, v in arrays.items()}, path)
  atomic_write(path, lambda f: np.savez(f, **arrays))


def _extension(dtype: np.dtype) -> bool:
  """Whether `dtype` is one that ml_dtypes adds to NumPy (bfloat16, float8_*, int4, ...)."""
  return dtype.type.__module__.split(".")[0] == "ml_dtypes"


def _encode(arrays: dict, path: str) -> dict:
  names = {}
  out = {}
  for k, a in arrays.items():
    if _extension(a.dtype):
      names[k] = a.dtype.name
      a = a.view(np.dtype(f"u{a.dtype.itemsize}"))
    elif a.dtype.hasobject:
      raise ValueError(f"{path}: array {k!r} has dtype {a.dtype}, which an .npz holds only "
                       "pickled (lincv reads no pickle); store numbers: a bool, integer, "
                       "float, complex or string dtype, or one of ml_dtypes' (bfloat16, ...)")
    out[k] = a
  if names:
    if DTYPES_KEY in out:
      raise ValueError(f"{path}: {DTYPES_KEY!r} is lincv's own name in an .npz; rename that "
                       "array")
    out[DTYPES_KEY] = np.asarray(json.dumps(names, sort_keys=True))
  return out


def _decode(arrays: dict, path: str) -> dict:
  """The arrays `_encode` wrote, ml_dtypes arrays as they were; Damaged if its
  `DTYPES_KEY` field does not name them."""
  if DTYPES_KEY not in arrays:
    return arrays
  import ml_dtypes  # pylint: disable=import-outside-toplevel  (JAX's own dependency)
  arrays = dict(arrays)
  field = arrays.pop(DTYPES_KEY)
  try:
    names = json.loads(str(field)) if field.dtype.kind == "U" and not field.shape else None
  except ValueError:
    names = None
  if not isinstance(names, dict):
    raise damaged(path, ".npz", f"its {DTYPES_KEY} is not the JSON object of dtypes lincv "
                   "writes")
  for k, name in names.items():
    kind = getattr(ml_dtypes, name, None) if isinstance(name, str) else None
    a = arrays.get(k)
    if (a is None or not isinstance(kind, type) or not _extension(np.dtype(kind))
        or a.dtype != np.dtype(f"u{np.dtype(kind).itemsize}")):
      raise damaged(path, ".npz", f"{DTYPES_KEY} names {k!r} as {name!r}, which its "
                     f"array{'' if a is None else f' of dtype {a.dtype}'} cannot be")
    arrays[k] = a.view(kind)
  return arrays


def load_arrays(path: str) -> dict:
  """Reads a flat dict of named arrays written by `save_arrays` (no pickle), ml_dtypes
  arrays (bfloat16, ...) in their dtypes; Damaged if the file is not such an .npz (a
  missing file raises as usual)."""
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
  except FileNotFoundError:
    raise
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise damaged(path, ".npz", "truncated, or not an .npz of arrays") from None
  return _decode(arrays, path)


def tree_arrays(tree, prefix: str) -> dict:
  """The leaves of a pytree as named arrays `{prefix}0, {prefix}1, ...` (see `from_arrays`)."""
  return {f"{prefix}{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}


def from_arrays(arrays: dict, like, prefix: str, source: str = "checkpoint"):
  """The pytree of `like`'s structure whose leaves `tree_arrays(tree, prefix)` named."""
  leaves_like, treedef = jax.tree.flatten(like)
  count = sum(1 for k in arrays if re.fullmatch(re.escape(prefix) + r"\d+", k))
  if count != len(leaves_like):
    raise ValueError(f"{source} holds {count} arrays, expected {len(leaves_like)}; it was "
                     "written by a different configuration")
  leaves = [arrays[f"{prefix}{i}"] for i in range(count)]
  for i, (got, want) in enumerate(zip(leaves, leaves_like)):
    if got.shape != np.shape(want):
      raise ValueError(f"{source} holds an array of shape {got.shape}, expected "
                       f"{np.shape(want)}")
    kind = np.dtype(want.dtype if hasattr(want, "dtype") else np.result_type(want))
    if got.dtype.kind == "V" and _extension(kind) and got.dtype.itemsize == kind.itemsize:
      leaves[i] = got.view(kind)    # an ml_dtypes leaf as np.savez wrote it: raw bytes
    if leaves[i].dtype != kind:     # came back as the file's: float64 for float32, 3.9 for 0
      raise ValueError(f"{source} holds an array of dtype {leaves[i].dtype}, expected "
                       f"{kind}; it was written by a different configuration")
  return jax.tree.unflatten(treedef, leaves)


class Store:
  """A folder of array files and one JSON manifest naming them, changed in one atomic step.

  `commit(meta, files)` writes each new file under a name of its own (`<slot>-<n>.npz`,
  n counting commits), then the manifest (meta, and which file holds each slot), then
  removes the files the manifest no longer names. The manifest's rename is the commit:
  killed at any point, the folder holds the last committed manifest and every file it
  names; what a killed commit left behind (temporary files, files no manifest names) is
  removed by the next `load`.
  """

  MANIFEST_KEYS = ("commit", "files")

  def __init__(self, folder: str, manifest: str = "manifest.json"):
    self.folder = folder
    self.path = os.path.join(folder, manifest)
    self.commits = 0
    self.files: dict[str, str] = {}

  def load(self, clean: bool = True) -> dict | None:
    """The committed meta (None if nothing was committed); cleans up a killed commit
    (unless `clean` is False: a reader beside the writer, e.g. another process of a run)."""
    meta = None
    if os.path.exists(self.path):
      saved = load_json(self.path)
      if not all(k in saved for k in self.MANIFEST_KEYS):
        raise ValueError(f"{self.path} was not written by this version of lincv")
      commit, files = saved["commit"], saved["files"]
      if isinstance(commit, bool) or not isinstance(commit, int) or commit < 0:
        raise damaged(self.path, "JSON", f"its commit is {commit!r}, not a count")
      if not isinstance(files, dict) or not all(
          isinstance(v, str) and re.fullmatch(r"\w+-\d+\.npz", v) for v in files.values()):
        raise damaged(self.path, "JSON", "its files are not the slot -> <slot>-<n>.npz "
                      "names a commit writes")
      self.commits, self.files = commit, dict(files)
      meta = {k: v for k, v in saved.items() if k not in self.MANIFEST_KEYS}
    if clean:
      self._clean()
    return meta

  def file(self, slot: str) -> str:
    """The path of `slot`'s committed file; Damaged if the manifest names none."""
    if slot not in self.files:
      raise damaged(self.path, "JSON", f"it names no file of {slot}")
    return os.path.join(self.folder, self.files[slot])

  def read(self, slot: str) -> dict:
    """The named arrays of `slot`'s committed file; Damaged if it is missing."""
    path = self.file(slot)
    if not os.path.exists(path):
      raise damaged(path, ".npz", f"missing, though {os.path.basename(self.path)} names it")
    return load_arrays(path)

  def commit(self, meta: dict, files: dict) -> None:
    """Replaces the slots in `files` (slot -> dict of named arrays) and the meta, atomically."""
    n = self.commits + 1
    new = {}
    for slot, arrays in files.items():
      if not re.fullmatch(r"\w+", slot):
        raise ValueError(f"slot names are letters, digits and _, got {slot!r}")
      new[slot] = f"{slot}-{n}.npz"
      save_arrays(os.path.join(self.folder, new[slot]), arrays)
    save_json(self.path, {**meta, "commit": n, "files": {**self.files, **new}})
    self.commits, self.files = n, {**self.files, **new}
    self._clean()

  def clear(self) -> None:
    """Removes the manifest and every file of the store (the folder too, once empty)."""
    remove(self.path)
    self.commits, self.files = 0, {}
    self._clean()
    if os.path.isdir(self.folder) and not os.listdir(self.folder):
      os.rmdir(self.folder)

  def _clean(self) -> None:
    if not os.path.isdir(self.folder):
      return
    named = set(self.files.values())
    for name in sorted(os.listdir(self.folder)):
      if name.startswith(TMP_PREFIX) or (re.fullmatch(r"\w+-\d+\.npz", name)
                                         and name not in named):
        remove(os.path.join(self.folder, name))
