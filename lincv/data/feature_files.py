"""Pre-extracted features as a dataset: read and write `.npz` files and folders of `.npy`.

    ds = lincv.data.load(features="feats.npz")      # or a folder DIR/ of .npy files
    x_train_NxD, y_train_N = ds["train"]             # float16/32 rows, int32 labels

(`lincv.features.export.write` writes them.)

The format: arrays `x_train`, `y_train`, `x_test`, `y_test` and, optionally, `class_names`
(strings) and `x_train_mirrored` (row i: the features of training image i mirrored
left-right, for `data.flip`), in an `.npz` (as `np.savez` writes it) or as `<name>.npy`
files in a folder. Rows are float (N, D), float16 or float32 (float64 is read as float32);
labels integer class indices (N,). Rows are memory-mapped: the `.npy` files of a folder and the stored (uncompressed) members of an
`.npz`, so a float16 file larger than memory costs only the rows a run takes from it.
`load` checks everything, a chunk of rows at a time, and raises `DataError` with one line
naming the array and the problem.
"""

import dataclasses
import os
import struct
import zipfile
from collections.abc import Mapping

import numpy as np

from lincv.data.dataset import DataError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("class_names", "x_train_mirrored")
ROW_DTYPES = (np.float16, np.float32, np.float64)
CHUNK_BYTES = 64 << 20  # bytes of rows checked or copied at a time
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip member's local header: its name and extra lengths
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}
_FORMAT = ("an .npz file or a folder of .npy files with arrays x_train, y_train, x_test, "
           "y_test (optional: class_names, x_train_mirrored)")


def chunk_rows(x) -> int:
  """Rows of `x` per chunk: about CHUNK_BYTES, at least one."""
  row_bytes = max(1, int(np.prod(x.shape[1:], dtype=np.int64)) * x.dtype.itemsize)
  return max(1, CHUNK_BYTES // row_bytes)


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureDataset:
  """Rows and labels per split ("train", "test"), with class names; `load` builds it.

  `x_NxD, y_N = ds["train"]`: float rows (memory-mapped where the file allows) and int32
  labels in [0, num_classes). `mirrored`: the file's `x_train_mirrored` (row i: training
  row i's image mirrored left-right, label `y_N[i]`), or None; `path`: where it was read.
  """

  name: str
  class_names: tuple[str, ...]
  splits: Mapping[str, tuple[np.ndarray, np.ndarray]]
  mirrored: np.ndarray | None = None
  path: str = ""

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def dim(self) -> int:
    """D, the width of every row."""
    return int(self.splits["train"][0].shape[1])

  @property
  def image_shape(self) -> tuple:
    """() : rows, not images."""
    return ()

  def __getitem__(self, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
      return self.splits[split]
    except KeyError:
      raise KeyError(f"features {self.name!r} have no split {split!r}; splits: "
                     f"{', '.join(self.splits)}") from None

  def __repr__(self) -> str:
    sizes = ", ".join(f"{s}={len(y)}" for s, (_, y) in self.splits.items())
    return (f"FeatureDataset(name={self.name!r}, num_classes={self.num_classes}, "
            f"dim={self.dim}, dtype={self.splits['train'][0].dtype}, {sizes}"
            f"{', mirrored' if self.mirrored is not None else ''})")


def load(path) -> FeatureDataset:
  """Reads and checks the features at `path` (an .npz file or a folder of .npy files).

  Raises:
    DataError: one line naming the path, the array and the problem: a path of another
      kind, a missing or corrupt array, wrong rank or dtype, rows and labels of different
      lengths, train and test rows of different widths, x_train_mirrored of another shape
      than x_train, non-finite values, labels that are not class indices in range.
  """
  path = os.fspath(path)
  arrays = _read(path)
  missing = [k for k in REQUIRED if k not in arrays]
  if missing:
    raise DataError(f"features {path}: no {', '.join(missing)}; required arrays: "
                    f"{', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})")
  for split in ("train", "test"):
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    _check_rows(path, f"x_{split}", x)
    if y.ndim != 1:
      raise DataError(f"features {path}: y_{split} must be labels of shape (N,), got shape "
                      f"{y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
      raise DataError(f"features {path}: y_{split} must be integer class indices, got dtype "
                      f"{y.dtype}")
    if len(x) != len(y):
      raise DataError(f"features {path}: x_{split} has {len(x)} rows but y_{split} has "
                      f"{len(y)} labels")
  if len(arrays["x_train"]) == 0:
    raise DataError(f"features {path}: x_train has no rows")
  d_train, d_test = arrays["x_train"].shape[1], arrays["x_test"].shape[1]
  if d_train != d_test:
    raise DataError(f"features {path}: x_train rows have {d_train} values but x_test rows "
                    f"have {d_test}; both need the same width")
  mirrored = arrays.get("x_train_mirrored")
  if mirrored is not None:
    _check_rows(path, "x_train_mirrored", mirrored)
    if mirrored.shape != arrays["x_train"].shape:
      raise DataError(f"features {path}: x_train_mirrored has shape {mirrored.shape} but "
                      f"x_train has shape {arrays['x_train'].shape}; row i of x_train_mirrored "
                      "is row i of x_train mirrored, so the shapes must match")
  class_names = _class_names(path, arrays)
  ys = {}
  for split in ("train", "test"):
    y = np.asarray(arrays[f"y_{split}"])
    if y.size and int(y.min()) < 0:
      raise DataError(f"features {path}: y_{split} holds label {int(y.min())}; labels are "
                      "class indices >= 0")
    ys[split] = y
  top = max(int(y.max()) for y in ys.values() if y.size)
  if class_names is None:
    rows = sum(len(y) for y in ys.values())
    if top >= rows:  # top + 1 classes, most of them empty: not class indices
      split = "train" if int(ys["train"].max()) == top else "test"
      raise DataError(f"features {path}: y_{split} holds label {top}, but without class_names "
                      f"the classes are 0..{top}, more than the {rows} labelled rows; labels "
                      "are class indices 0..C-1: renumber them, or add class_names (C names)")
    class_names = tuple(str(k) for k in range(max(top + 1, 2)))
  for split, y in ys.items():
    if y.size and int(y.max()) >= len(class_names):
      raise DataError(f"features {path}: y_{split} holds label {int(y.max())}, out of range "
                      f"for {len(class_names)} class_names; valid labels are "
                      f"0..{len(class_names) - 1}")
  for name in ("x_train", "x_test", "x_train_mirrored"):
    if name in arrays:
      _check_finite(path, name, arrays[name])
  splits = {s: (arrays[f"x_{s}"], ys[s].astype(np.int32)) for s in ("train", "test")}
  return FeatureDataset(os.path.basename(os.path.normpath(path)), class_names, splits,
                        mirrored, path)


def _check_rows(path, name, x) -> None:
  if x.ndim != 2:
    raise DataError(f"features {path}: {name} must be rows of shape (N, D), got shape "
                    f"{x.shape}")
  if x.dtype.newbyteorder("=") not in ROW_DTYPES:  # either byte order; read as float32
    raise DataError(f"features {path}: {name} must be float16, float32 or float64 rows, got dtype "
                    f"{x.dtype}")
  if x.shape[1] == 0:
    raise DataError(f"features {path}: {name} rows have no values (shape {x.shape})")


def _check_finite(path, name, x) -> None:
  """Raises DataError at the first value that is not finite, or (float64 rows, which are
  read as float32) beyond float32's range, reading `x` a chunk at a time."""
  step = chunk_rows(x)
  top = float(np.finfo(np.float32).max)
  for i in range(0, len(x), step):
    part = x[i:i + step]
    bad = ~np.isfinite(part)
    if bad.any():
      r, c = np.argwhere(bad)[0]
      raise DataError(f"features {path}: {name} holds a non-finite value "
                      f"({x[i + r, c]}) at row {i + r}, column {c}; all values must be finite")
    if part.dtype.itemsize == 8 and (np.abs(part) > top).any():
      r, c = np.argwhere(np.abs(part) > top)[0]
      raise DataError(f"features {path}: {name} holds {x[i + r, c]:.3g} at row {i + r}, "
                      f"column {c}, beyond float32's range (+-{top:.3g}); rows are read as "
                      "float32")


def _class_names(path, arrays) -> tuple[str, ...] | None:
  if "class_names" not in arrays:
    return None
  names = np.asarray(arrays["class_names"])
  if names.ndim != 1 or names.dtype.kind not in "US":
    raise DataError(f"features {path}: class_names must be strings of shape (C,), got "
                    f"{names.dtype} of shape {names.shape}")
  names = tuple(str(n.decode() if isinstance(n, bytes) else n) for n in names)
  if len(names) < 2:
    raise DataError(f"features {path}: class_names has {len(names)} class(es); a classifier "
                    "needs at least 2")
  if len(set(names)) != len(names):
    raise DataError(f"features {path}: class_names repeats a name: {list(names)}")
  return names


def _read(path) -> dict[str, np.ndarray]:
  """The arrays at `path`, memory-mapped where possible; DataError if it cannot be read."""
  if os.path.isdir(path):
    names = [k for k in REQUIRED + OPTIONAL if os.path.isfile(os.path.join(path, k + ".npy"))]
    if not names:
      raise DataError(f"features {path}: this folder has none of x_train.npy, y_train.npy, "
                      f"x_test.npy, y_test.npy; expected {_FORMAT}")
    out = {}
    for k in names:
      file = os.path.join(path, k + ".npy")
      try:
        with open(file, "rb") as f:
          if _holds_objects(f):
            raise _objects(path, k)
        out[k] = np.load(file, mmap_mode="r", allow_pickle=False)
      except DataError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        raise DataError(f"features {path}: {k}.npy cannot be read ({_first_line(e)}); it "
                        "is not an .npy file, or it is damaged") from None
    return out
  if not os.path.exists(path):
    raise DataError(f"features {path}: not found; expected {_FORMAT}")
  if not path.endswith(".npz"):
    raise DataError(f"features {path}: neither an .npz file nor a folder; expected {_FORMAT}")
  try:
    with zipfile.ZipFile(path) as z:
      members = {m.filename[:-4]: m for m in z.infolist() if m.filename.endswith(".npy")}
    out = {}
    for k in REQUIRED + OPTIONAL:
      if k in members:
        out[k] = _member(path, members[k])
    return out
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"features {path}: cannot be read ({_first_line(e)}); it is not an "
                    ".npz file, or it is damaged") from None


def _member(path, info: zipfile.ZipInfo) -> np.ndarray:
  """One array of an .npz: memory-mapped if stored uncompressed, else read whole."""
  name, read_header = info.filename[:-4], None
  try:
    with zipfile.ZipFile(path) as z, z.open(info) as f:
      if _holds_objects(f):
        raise _objects(path, name)
    if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1:
      with open(path, "rb") as f:
        f.seek(info.header_offset)
        magic, name_len, extra_len = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
        if magic != b"PK\x03\x04":
          raise ValueError("bad zip member header")
        f.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = _NPY_HEADERS.get(version)
        if read_header is not None:
          shape, fortran, dtype = read_header(f)
          offset = f.tell()
    if info.compress_type == zipfile.ZIP_STORED and read_header is not None:
      if offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > os.path.getsize(path):
        raise ValueError(f"shorter than its header says ({shape}, {dtype})")
      return np.memmap(path, dtype, "r", offset, shape, "F" if fortran else "C")
    with np.load(path, allow_pickle=False) as z:
      return z[name]
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"features {path}: {name} cannot be read ({_first_line(e)}); the file is "
                    "damaged") from None


def _holds_objects(f) -> bool:
  """Whether the .npy stream `f`, at its start, declares Python objects (dtype object)."""
  try:
    read_header = _NPY_HEADERS.get(np.lib.format.read_magic(f))
    return read_header is not None and read_header(f)[2].hasobject
  except Exception:  # pylint: disable=broad-except  # not a header: reading the array says so
    return False


def _objects(path, name) -> DataError:
  return DataError(f"features {path}: {name} holds Python objects (dtype object), which are "
                   "not read; save numbers, and names as strings: np.array(names, str)")


def _first_line(e: Exception) -> str:
  return (str(e).strip().splitlines() or [type(e).__name__])[0]
