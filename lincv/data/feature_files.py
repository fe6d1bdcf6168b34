"""Pre-extracted features as a dataset: read and write `.npz` files and folders of `.npy`.

    ds = lincv.data.load(features="feats.npz")      # or a folder DIR/ of .npy files
    x_train_NxD, y_train_N = ds["train"]             # float16/32 rows, int32 labels

(`lincv.features.export.write` writes them.)

The format: arrays `x_train`, `y_train`, `x_test`, `y_test` and, optionally, `class_names`
(strings) and `x_train_mirrored` (row i: the features of training image i mirrored
left-right, for `data.flip`), in an `.npz` (as `np.savez` writes it) or as `<name>.npy`
files in a folder. Rows are float (N, D), float16 or float32 (float64 rows are accepted;
`prepare` keeps them as float32, and warns of columns that become constant there);
labels integer class indices (N,), every class with training rows. Rows are memory-mapped: the `.npy` files of a folder and the stored
(uncompressed) members of an `.npz`, so a float16 file larger than memory costs only the
rows a run takes from it. `load` checks everything, a chunk of rows at a time (a stored
member's checksum too, as `np.load` would), and raises `DataError` with one line naming
the array and the problem; arrays of other names are ignored with a warning.
"""

import dataclasses
import os
import struct
import warnings
import zipfile
import zlib
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
  arrays, stored = _read(path)
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
  counts = np.bincount(ys["train"], minlength=len(class_names))
  if np.count_nonzero(counts) < 2:
    raise DataError(f"features {path}: y_train holds one class ({int(np.argmax(counts))}); "
                    "a classifier needs training rows of at least 2")
  empty = np.flatnonzero(counts == 0)
  if empty.size:   # as an image folder's empty class folder: the classifier cannot learn it
    shown = ", ".join(f"{k} ({class_names[k]!r})" for k in empty[:5])
    raise DataError(f"features {path}: class{'es' * (empty.size > 1)} {shown}"
                    f"{' ...' if empty.size > 5 else ''} of 0..{len(class_names) - 1} "
                    f"ha{'ve' if empty.size > 1 else 's'} no rows in y_train; every class "
                    "needs training rows: renumber the labels 0..C-1 over the classes "
                    "present (and class_names to match)")
  for name in ("x_train", "x_test", "x_train_mirrored"):
    if name in arrays:
      _check_finite(path, name, arrays[name], stored.get(name))
  for name, check in stored.items():
    if name not in ("x_train", "x_test", "x_train_mirrored"):
      _verify(path, name, arrays[name], check)
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


def _check_finite(path, name, x, stored=None) -> None:
  """Raises DataError at the first value that is not finite, or (float64 rows, which are
  read as float32) beyond float32's range, reading `x` a chunk at a time; with `stored`
  (an .npz member's `_Stored`), also if its checksum does not match."""
  step = chunk_rows(x)
  top = float(np.finfo(np.float32).max)
  crc = stored.crc if stored is not None and stored.in_order else None
  for i in range(0, len(x), step):
    part = x[i:i + step]
    if crc is not None:
      crc = zlib.crc32(memoryview(np.ascontiguousarray(part)).cast("B"), crc)
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
  if stored is not None:
    _verify(path, name, x, stored, crc)


class _Stored:
  """What a memory-mapped .npz member must hash to: the zip's CRC-32 of the member, and
  the CRC-32 of its bytes before the array (the .npy header); `in_order` if the array's
  bytes in the file follow its rows (C order)."""

  def __init__(self, expected: int, header_crc: int, in_order: bool):
    self.expected, self.crc, self.in_order = expected, header_crc, in_order


def _verify(path, name, x, stored: _Stored, crc: int | None = None) -> None:
  """DataError unless the member's bytes hash to the zip's CRC-32 (`crc`: their hash if
  the caller already read them)."""
  if crc is None:
    crc = stored.crc
    flat = x.reshape(-1, order="C" if stored.in_order else "F") if x.size else x.reshape(-1)
    step = max(1, CHUNK_BYTES // max(1, x.dtype.itemsize))
    for i in range(0, flat.size, step):
      crc = zlib.crc32(memoryview(np.ascontiguousarray(flat[i:i + step])).cast("B"), crc)
  if crc != stored.expected:
    raise DataError(f"features {path}: {name} is damaged (its bytes do not match the "
                    "checksum the .npz stores for them); write the file again")


def _class_names(path, arrays) -> tuple[str, ...] | None:
  if "class_names" not in arrays:
    return None
  names = np.asarray(arrays["class_names"])
  if names.ndim != 1 or names.dtype.kind not in "US":
    raise DataError(f"features {path}: class_names must be strings of shape (C,), got "
                    f"{names.dtype} of shape {names.shape}")
  try:
    names = tuple(str(n.decode() if isinstance(n, bytes) else n) for n in names)
  except UnicodeDecodeError as e:
    raise DataError(f"features {path}: class_names holds bytes that are not UTF-8 text "
                    f"({e.object!r}); save the names as strings: np.array(names, str)") from None
  if len(names) < 2:
    raise DataError(f"features {path}: class_names has {len(names)} class(es); a classifier "
                    "needs at least 2")
  if len(set(names)) != len(names):
    raise DataError(f"features {path}: class_names repeats a name: {list(names)}")
  return names


def _read(path) -> tuple[dict[str, np.ndarray], dict[str, "_Stored"]]:
  """The arrays at `path`, memory-mapped where possible, and the checksums of the .npz
  members that are memory-mapped; DataError if it cannot be read."""
  if os.path.isdir(path):
    names = [k for k in REQUIRED + OPTIONAL if os.path.isfile(os.path.join(path, k + ".npy"))]
    if not names:
      raise DataError(f"features {path}: this folder has none of x_train.npy, y_train.npy, "
                      f"x_test.npy, y_test.npy; expected {_FORMAT}")
    _ignored(path, [f[:-4] for f in os.listdir(path) if f.endswith(".npy")])
    out = {}
    for k in names:
      file = os.path.join(path, k + ".npy")
      try:
        with open(file, "rb") as f:
          if _holds_objects(f):
            raise _objects(path, k)
        out[k] = x = np.load(file, mmap_mode="r", allow_pickle=False)
        size = os.path.getsize(file)
        if isinstance(x, np.memmap) and x.offset + x.nbytes != size:
          # numpy reads the header's shape and dtype and ignores bytes past them: rows
          # written as float64 under a float32 header came back as other numbers, silently.
          raise ValueError(f"its header says {x.shape} {x.dtype}, {x.nbytes} bytes, but the "
                           f"file holds {size - x.offset}")
      except DataError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        raise DataError(f"features {path}: {k}.npy cannot be read ({_first_line(e)}); it "
                        "is not an .npy file, or it is damaged") from None
    return out, {}
  if not os.path.exists(path):
    raise DataError(f"features {path}: not found; expected {_FORMAT}")
  if not path.lower().endswith(".npz"):
    raise DataError(f"features {path}: neither an .npz file nor a folder; expected {_FORMAT}")
  try:
    with zipfile.ZipFile(path) as z:
      names = [m.filename for m in z.infolist() if m.filename.endswith(".npy")]
      members = {m.filename[:-4]: m for m in z.infolist() if m.filename.endswith(".npy")}
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:   # the last one was read, silently
      raise DataError(f"features {path}: holds {twice[0]} more than once; an .npz holds one "
                      "array of each name: write it again (numpy.savez)")
    _ignored(path, list(members))
    out, stored = {}, {}
    for k in REQUIRED + OPTIONAL:
      if k in members:
        out[k], check = _member(path, members[k])
        if check is not None:
          stored[k] = check
    return out, stored
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"features {path}: cannot be read ({_first_line(e)}); it is not an "
                    ".npz file, or it is damaged") from None


def _ignored(path, names) -> None:
  """Warns about arrays of names the format does not have (a typo of an optional one, or a
  validation split of the user's own, which lincv does not read)."""
  unknown = sorted(set(names) - set(REQUIRED + OPTIONAL))
  if unknown:
    warnings.warn(f"features {path}: ignored array{'s' * (len(unknown) > 1)} "
                  f"{', '.join(unknown)}: the format's arrays are {', '.join(REQUIRED)} and "
                  f"optionally {', '.join(OPTIONAL)} (validation rows are split from "
                  "x_train, data.val_fraction)", UserWarning, stacklevel=4)


def _member(path, info: zipfile.ZipInfo) -> tuple[np.ndarray, "_Stored | None"]:
  """One array of an .npz: memory-mapped if stored uncompressed (with the checksum its
  bytes must have, which reading them whole would check), else read whole."""
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
          start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
          shape, fortran, dtype = read_header(f)
          offset = f.tell()
          f.seek(start)
          header_crc = zlib.crc32(f.read(offset - start))
    if info.compress_type == zipfile.ZIP_STORED and read_header is not None:
      nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
      if offset - start + nbytes != info.file_size:
        raise ValueError(f"its header says {shape} {dtype}, {nbytes} bytes, but the member "
                         f"holds {info.file_size - (offset - start)}")
      if offset + nbytes > os.path.getsize(path):
        raise ValueError(f"shorter than its header says ({shape}, {dtype})")
      x = np.memmap(path, dtype, "r", offset, shape, "F" if fortran else "C")
      return x, _Stored(info.CRC, header_crc, not fortran or len(shape) < 2)
    with np.load(path, allow_pickle=False) as z:
      return z[name], None
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
