"""Host arrays on 64-byte boundaries, which JAX's CPU backend uses without copying.

    x = aligned.empty((n, d), np.float32)     # fill it, then
    x_dev = jax.device_put(x)                 # on CPU: shares x's memory, no copy

XLA's CPU client aliases a host buffer that starts on a 64-byte boundary and copies any
other; NumPy's own allocations start on 16-byte ones. So lincv allocates its rows here,
and a run on CPU holds them once, not once in NumPy and again in JAX. Imports NumPy only.
"""

import numpy as np

ALIGNMENT = 64  # bytes


def empty(shape, dtype) -> np.ndarray:
  """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
  dtype = np.dtype(dtype)
  size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  raw = np.empty(size + ALIGNMENT, np.uint8)
  start = -raw.ctypes.data % ALIGNMENT
  return raw[start:start + size].view(dtype).reshape(shape)


def is_aligned(x: np.ndarray) -> bool:
  """Whether `x` is C-contiguous and starts on a 64-byte boundary."""
  return bool(x.flags.c_contiguous) and x.ctypes.data % ALIGNMENT == 0


def asarray(x, dtype=None) -> np.ndarray:
  """`x` as an aligned C-contiguous array of `dtype`: `x` itself when it is one, else one
  copy."""
  x = np.asarray(x)
  dtype = x.dtype if dtype is None else np.dtype(dtype)
  if x.dtype == dtype and is_aligned(x):
    return x
  out = empty(x.shape, dtype)
  out[...] = x
  return out


def stacked(*parts) -> np.ndarray:
  """The rows of `parts` one after another, in one aligned array (one copy)."""
  out = empty((sum(len(p) for p in parts),) + np.shape(parts[0])[1:], np.result_type(*parts))
  start = 0
  for p in parts:
    out[start:start + len(p)] = p
    start += len(p)
  return out


def read_npy(path: str) -> np.ndarray:
  """A .npy file (as `np.save` writes it) read straight into an aligned array."""
  headers = {(1, 0): np.lib.format.read_array_header_1_0,
             (2, 0): np.lib.format.read_array_header_2_0}
  with open(path, "rb") as f:
    version = np.lib.format.read_magic(f)
    if version not in headers:
      raise ValueError(f"{path}: .npy format version {version}; readable: 1.0, 2.0")
    shape, fortran, dtype = headers[version](f)
    out = empty(shape[::-1] if fortran else shape, dtype)
    if out.nbytes and f.readinto(out.reshape(-1).view(np.uint8)) != out.nbytes:
      raise ValueError(f"{path}: shorter than its header says ({shape}, {dtype})")
  return out.T if fortran else out
