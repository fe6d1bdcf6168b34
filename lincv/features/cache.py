"""A disk cache for features: `cached` stores an expensive array under a key of
everything it depends on (`CACHE_VERSION`, the images, the settings, and the fitted model
it was computed with), each part identified by its `fingerprint`.
"""

import hashlib
import json
import os
import warnings
import zlib
from collections.abc import Callable, Mapping

import numpy as np

from lincv import checkpoint

# Part of every cache key of lincv's features: raise it when a feature function gives
# other numbers for the same inputs and settings (a new algorithm, another random stream).
# 3: float32 products on every device (`lincv.precision`); a GPU or TPU used its reduced
# precision before. 4: `color_histogram` bins the hues on a bin edge exactly (with 9, 18,
# 36 or 72 bins, some fell one bin low).
CACHE_VERSION = 4


def fingerprint(array) -> str:
  """A short hash of an array's shape, dtype and bytes: an identity for `cached` keys.

  Fingerprint whatever a cached value depends on: the images, and fitted models (the
  arrays of a `KMeansFeatures`, the statistics of `fit_standardize`).
  """
  a = np.ascontiguousarray(array)
  h = hashlib.sha256(f"{a.shape}|{a.dtype}|".encode())
  h.update(a.reshape(-1).view(np.uint8))  # memoryview's cast refuses an empty array
  return h.hexdigest()[:16]


CRC_FIELD = "array_crc32"   # in the JSON beside a cached array: the CRC-32 of its bytes


def _crc(value: np.ndarray) -> int:
  return zlib.crc32(np.ascontiguousarray(value).reshape(-1).view(np.uint8))


def _stored_crc(path: str) -> int | None:
  """The checksum the JSON beside `path` holds; None if it has none (written before
  checksums were, or unreadable: the array's own read decides then)."""
  try:
    with open(path[:-4] + ".json") as f:
      crc = json.load(f).get(CRC_FIELD)
  except (OSError, ValueError, AttributeError):
    return None
  return crc if isinstance(crc, int) else None


def cache_path(key: Mapping, cache_dir: str, name: str = "features") -> str:
  """Where `cached` keeps the array for `key`: `<cache_dir>/<name>-<hash of key>.npy`.

  The key is hashed as strict JSON; a value JSON cannot hold exactly (an object, NaN)
  raises instead of being hashed by its printed form.
  """
  text = json.dumps(checkpoint.strict(dict(key), path="cache key"), sort_keys=True,
                    allow_nan=False)
  digest = hashlib.sha256(text.encode()).hexdigest()[:20]
  return os.path.join(cache_dir, f"{name}-{digest}.npy")


def cached(fn: Callable[[], np.ndarray], key: Mapping, cache_dir: str,
           name: str = "features") -> np.ndarray:
  """`fn()`, computed once per `key` and then read from `cache_dir`.

  `key` names everything the result depends on: the dataset (e.g. its `fingerprint`
  and split), the feature settings and any fitted model the result is computed with
  (its `fingerprint`); it must be JSON-serialisable. The array is written to a
  temporary file in `cache_dir` and renamed into place, so an interrupted run leaves
  either no file or a whole one; the key is written beside it as JSON, with the CRC-32
  of the array's bytes. A file that cannot be read back, or whose bytes no longer match
  that checksum (damaged on disk), is recomputed and replaced, with a warning.
  """
  path = cache_path(key, cache_dir, name)
  if os.path.exists(path):
    try:
      value = np.load(path, allow_pickle=False)
      expected = _stored_crc(path)
      if expected is not None and _crc(value) != expected:
        raise ValueError("its bytes do not match the checksum stored beside it")
      return value
    except (ValueError, OSError, EOFError) as e:
      warnings.warn(f"{path}: unreadable cached features ({e}); computing them again",
                    stacklevel=2)
  value = np.asarray(fn())
  checkpoint.save_json(path[:-4] + ".json", dict(key, **{CRC_FIELD: _crc(value)}))
  try:
    checkpoint.atomic_write(path, lambda f: np.save(f, value))
  except BaseException:
    checkpoint.remove(path[:-4] + ".json")  # no key file for an array that is not there
    raise
  return value
