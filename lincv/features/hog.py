"""Histograms of oriented gradients (Dalal and Triggs, 2005) of RGB images.

The images are turned to grey (`grayscale`), differentiated (`gradients`) and binned by
gradient orientation per cell (`hog`), optionally normalised in blocks of 2 x 2 cells.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from lincv import precision
from lincv._checks import check_name, wide_ints_as_float32
from lincv.features.color import as_rgb

GRAY_WEIGHTS = (0.299, 0.587, 0.114)
BLOCK_NORMS = ("none", "l2-hys")


def grayscale(images_NxHxWx3) -> jax.Array:
  """Luma `0.299 r + 0.587 g + 0.114 b`, (N, H, W), in the scale of the input."""
  x = as_rgb(images_NxHxWx3)
  with precision.exact():     # float32 on every device (lincv.precision)
    return jnp.einsum("nhwc,c->nhw", x, jnp.asarray(GRAY_WEIGHTS, jnp.float32))


def gradients(gray_NxHxW) -> tuple[jax.Array, jax.Array]:
  """Centred differences (gx, gy) = ((I[y, x+1] - I[y, x-1]) / 2, (I[y+1, x] - I[y-1, x]) / 2).

  x runs along columns and y down the rows; the image edge is replicated beyond the
  border, so border pixels take half a one-sided difference.
  """
  chex.assert_rank(gray_NxHxW, 3, custom_message="gray_NxHxW must be grayscale images (N, H, W)")
  # Integers as float32: uint8 differences wrapped (a falling edge 20, 10, 0 gave 123).
  gray = jnp.asarray(wide_ints_as_float32(gray_NxHxW))
  if not jnp.issubdtype(gray.dtype, jnp.floating):
    gray = gray.astype(jnp.float32)
  p = jnp.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="edge")
  gx = (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) / 2
  gy = (p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) / 2
  return gx, gy


def _l2_hys(v, eps=1e-5, clip=0.2):
  """Dalal and Triggs' L2-Hys over the last axis: L2-normalise, clip at 0.2, renormalise."""
  v = v / jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True) + eps**2)
  v = jnp.minimum(v, clip)
  return v / jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True) + eps**2)


def hog(images_NxHxWx3, cell: int = 8, orientations: int = 9,
        block_norm: str = "none") -> jax.Array:
  """Histograms of oriented gradients (Dalal and Triggs, 2005), (N, F).

  The image is turned to grey (`grayscale`) and differentiated (`gradients`). Each pixel
  has magnitude sqrt(gx^2 + gy^2) and unsigned orientation atan2(gy, gx) mod 180 degrees;
  it adds its magnitude to bin floor(angle / (180 / orientations)) of its cell's
  histogram, which is then divided by the cell's area. A vertical edge (intensity
  changing along x) has a horizontal gradient, angle 0: bin 0; a horizontal edge has
  angle 90: bin 4 of 9. Rows and columns beyond the last whole cell are ignored.

  Args:
    images_NxHxWx3: RGB images, H and W at least `cell`.
    cell: cell side in pixels.
    orientations: number of bins over [0, 180).
    block_norm: "none" returns the cell histograms, (N, H/cell * W/cell * orientations);
      "l2-hys" groups 2 x 2 cells into overlapping blocks (stride one cell) normalised
      by L2-Hys, (N, (H/cell - 1) * (W/cell - 1) * 4 * orientations).
  """
  check_name("block_norm", block_norm, BLOCK_NORMS)
  for name, value in (("cell", cell), ("orientations", orientations)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  gray = grayscale(images_NxHxWx3)
  n, h, w = gray.shape
  hc, wc = h // cell, w // cell
  if hc < 1 or wc < 1:
    raise ValueError(f"images of {h}x{w} pixels are smaller than one {cell}x{cell} cell")
  if block_norm == "l2-hys" and (hc < 2 or wc < 2):
    raise ValueError(f"l2-hys blocks need at least 2x2 cells, got {hc}x{wc}")
  gx, gy = gradients(gray)
  magnitude = jnp.sqrt(gx * gx + gy * gy)[:, :hc * cell, :wc * cell]
  angle = jnp.arctan2(gy, gx)[:, :hc * cell, :wc * cell]
  angle = jnp.where(angle < 0, angle + jnp.pi, angle)
  angle = jnp.where(angle >= jnp.pi, angle - jnp.pi, angle)
  idx = jnp.clip(jnp.floor(angle * (orientations / jnp.pi)).astype(jnp.int32),
                 0, orientations - 1)
  votes = jnp.where(idx[..., None] == jnp.arange(orientations)[None, None, None, :],
                    magnitude[..., None], 0.0)
  cells = votes.reshape(n, hc, cell, wc, cell, orientations).sum(axis=(2, 4)) / cell**2
  if block_norm == "none":
    return cells.reshape(n, -1)
  blocks = jnp.stack([cells[:, :-1, :-1], cells[:, :-1, 1:],
                      cells[:, 1:, :-1], cells[:, 1:, 1:]], axis=3)
  blocks = _l2_hys(blocks.reshape(n, hc - 1, wc - 1, 4 * orientations))
  return blocks.reshape(n, -1)
