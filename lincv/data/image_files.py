"""Image files (PNG or JPEG, 8-bit) decoded into uint8 pixel arrays, with Pillow.

`decode` is what an image folder (`lincv.data.folder`) is prepared from; `read_images`
decodes any list of files the same way, for classifying new images with a finished run
(`lincv.Run.predict`). All files of one call must have the same width and height.
Grayscale files keep one channel; palette and alpha images are converted to RGB (alpha
dropped); 16-bit and float images are refused.
"""

from concurrent import futures
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from lincv.data.dataset import DataError

_GRAY_MODES = frozenset({"1", "L", "LA", "La"})
_COLOR_MODES = frozenset({"RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})
_PARALLEL_MIN_FILES = 4096  # below this, one thread decodes as fast as several
_CHUNK_FILES = 256


def read_images(paths, channels: int = 3) -> np.ndarray:
  """Decodes image files (PNG/JPEG, all of one size) into uint8 (N, H, W, channels).

  Grayscale files become three equal channels when `channels` is 3, as in an image
  folder that mixes grayscale and colour images; with `channels` 1 every file must be
  grayscale.

  Raises:
    DataError: no paths, a file that cannot be decoded, sizes that differ, or a colour
      file where grayscale is required.
  """
  paths = [os.fspath(p) for p in paths]
  if not paths:
    raise DataError("no image files given")
  if channels not in (1, 3):
    raise DataError(f"channels must be 1 or 3, got {channels}")
  rgb, gray = decode("", paths)
  if channels == 1:
    if not gray.all():
      raise DataError(f"{paths[int(np.argmin(gray))]}: a colour image, but grayscale "
                      "images are required (the run was trained on grayscale images)")
    return np.ascontiguousarray(rgb[..., :1])
  return gray_to_rgb(rgb, gray)


def gray_to_rgb(rgb_NxHxWx3: np.ndarray, gray_N: np.ndarray) -> np.ndarray:
  """`decode`'s output with each grayscale image copied into all three channels, in place."""
  rgb_NxHxWx3[gray_N, :, :, 1] = rgb_NxHxWx3[gray_N, :, :, 0]
  rgb_NxHxWx3[gray_N, :, :, 2] = rgb_NxHxWx3[gray_N, :, :, 0]
  return rgb_NxHxWx3


def decode(root: str, relpaths: list[str], reference: str | None = None,
           workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Decodes images under `root` into uint8 (N, H, W, 3) plus a grayscale mask (N,).

  Decoding runs on threads of this process (Pillow releases the GIL while it decodes),
  so it needs no `if __name__ == "__main__":` guard and works the same from a script, a
  notebook or a test.

  Args:
    root: the folder the relative paths start from.
    relpaths: image paths relative to root.
    reference: path of an image of the required size; default the first one.
    workers: threads to decode with; default twice the cores (at most 8) for 4,096 files
      or more, else none (decode in the calling thread).

  Returns:
    (images_NxHxWx3, gray_N): grayscale images have their pixels in channel 0 and
    True in gray_N.
  """
  paths = [os.path.join(root, p) for p in relpaths]
  reference = reference or paths[0]
  try:
    with Image.open(reference) as im:
      size = im.size
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise DataError(f"{reference}: not a readable PNG/JPEG image, or corrupt ({e})") from None
  if workers is None:
    workers = min(2 * (os.cpu_count() or 1), 8) if len(paths) >= _PARALLEL_MIN_FILES else 0
  chunks = [paths[i:i + _CHUNK_FILES] for i in range(0, len(paths), _CHUNK_FILES)]
  if workers <= 1 or len(chunks) <= 1:
    parts = [_decode_chunk(c, size, reference) for c in chunks]
  else:
    pool = futures.ThreadPoolExecutor(max_workers=min(workers, len(chunks)),
                                      thread_name_prefix="lincv-decode")
    try:  # in order, so the first bad file in the listing is the one reported
      parts = list(pool.map(lambda c: _decode_chunk(c, size, reference), chunks))
    finally:
      pool.shutdown(wait=True, cancel_futures=True)
  images = np.concatenate([p[0] for p in parts])
  gray = np.concatenate([p[1] for p in parts])
  return images, gray


def _sixteen_bit(im) -> bool:
  """Whether the file behind `im` (opened, not loaded) stores 16 bits per sample."""
  return any(";16" in str(tile[3]) for tile in im.tile)


def _decode_chunk(paths: list[str], size: tuple[int, int], reference: str):
  """Decodes images to (n, H, W, 3) uint8 with a grayscale mask (n,); gray sits in channel 0."""
  width, height = size
  out = np.zeros((len(paths), height, width, 3), np.uint8)
  gray = np.zeros(len(paths), bool)
  for i, path in enumerate(paths):
    try:
      with Image.open(path) as im:
        if im.size != (width, height):
          raise DataError(
              f"{path}: image is {im.size[0]}x{im.size[1]} (width x height), but {reference} "
              f"is {width}x{height}; all images must have the same size")
        mode = im.mode
        if mode in _GRAY_MODES | _COLOR_MODES and _sixteen_bit(im):
          # Pillow opens 16-bit colour (and grey with alpha) PNGs as 8-bit RGB(A), silently.
          raise DataError(
              f"{path}: 16-bit pixels ({im.tile[0][3]!s}), which would be cut to 8 bits; save "
              "it as 8-bit grayscale or RGB")
        if mode in _GRAY_MODES:
          out[i, :, :, 0] = np.asarray(im.convert("L") if mode != "L" else im)
          gray[i] = True
        elif mode in _COLOR_MODES:
          out[i] = np.asarray(im.convert("RGB") if mode != "RGB" else im)
        else:
          raise DataError(
              f"{path}: unsupported image mode {mode!r} (16-bit or float pixels); "
              "save it as 8-bit grayscale or RGB")
    except DataError:
      raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as e:
      raise DataError(f"{path}: not a readable PNG/JPEG image, or corrupt ({e})") from None
  return out, gray
