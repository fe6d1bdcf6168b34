"""Colour features: the hue of every pixel and a hue histogram per image.

Every function takes a batch of RGB images (N, H, W, 3), uint8 or float in the 0-255
scale, is pure and jittable, and returns float32.
"""

import jax
import jax.numpy as jnp

from lincv._checks import check_count, wide_ints_as_float32


def check_rgb(images) -> None:
  """Raises a ValueError unless `images` has shape (N, H, W, 3), none of them 0."""
  shape = jnp.shape(images)
  if len(shape) != 4 or shape[-1] != 3:
    hint = ("; a single image needs a batch axis, images[None]"
            if len(shape) == 3 and shape[-1] == 3 else "")
    raise ValueError(f"images must be RGB (N, H, W, 3), got shape {shape}{hint}")
  if 0 in shape:
    raise ValueError(f"images must have N, H, W >= 1, got shape {shape}")


def as_rgb(images) -> jax.Array:
  """Images as float32 (N, H, W, 3), after checking their rank and channels."""
  images = jnp.asarray(wide_ints_as_float32(images))   # int64 pixels wrapped to 32 bits
  check_rgb(images)
  return images.astype(jnp.float32)


def hue(images_NxHxWx3) -> jax.Array:
  """Hue of every pixel in [0, 1), as in HSV (`colorsys.rgb_to_hsv`), (N, H, W).

  With M = max(r, g, b), m = min(r, g, b), c = M - m:

    h = ((g - b) / c mod 6) / 6   if M = r
        ((b - r) / c + 2) / 6     if M = g
        ((r - g) / c + 4) / 6     if M = b

  and h = 0 for grey pixels (c = 0), NaN for a pixel with a NaN channel. Hue does not
  depend on the intensity scale.
  """
  v, c = _hue_parts(images_NxHxWx3)
  h = jnp.where(c > 0, v / (6 * jnp.where(c > 0, c, 1.0)),
                jnp.where(c == 0, 0.0, jnp.nan))          # NaN pixel: NaN hue
  return jnp.where(h >= 1.0, h - 1.0, h)


def _hue_parts(images_NxHxWx3) -> tuple[jax.Array, jax.Array]:
  """(v, c) with hue = v / (6 c), v in [0, 6c): v = (g - b) mod 6c, b - r + 2c or
  r - g + 4c as M is r, g or b. For integer pixels both are exact integers, so a hue's
  bin can be found without rounding (`color_histogram`)."""
  x = as_rgb(images_NxHxWx3)
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  top = jnp.max(x, axis=-1)
  c = top - jnp.min(x, axis=-1)
  v = jnp.where(top == r, jnp.where(g < b, g - b + 6 * c, g - b),
                jnp.where(top == g, b - r + 2 * c, r - g + 4 * c))
  return v, c


def color_histogram(images_NxHxWx3, bins: int = 10) -> jax.Array:
  """Fraction of each image's pixels in each of `bins` equal hue bins over [0, 1), (N, bins).

  Bin b holds hues in [b / bins, (b + 1) / bins); grey pixels have hue 0 (bin 0), as in
  `colorsys` and `matplotlib.colors.rgb_to_hsv`. Each row sums to 1; a pure-red image
  puts all its mass in bin 0. An image with a NaN pixel has a row of NaN.
  """
  bins = check_count("bins", bins)     # a NumPy integer too, as `hog`'s cell and orientations
  v_NxHxW, c_NxHxW = _hue_parts(images_NxHxWx3)
  n = v_NxHxW.shape[0]
  # floor(bins * v / 6c), not floor(bins * hue): for integer pixels the quotient of two
  # exact integers rounds onto a bin edge only when it lies on one (hue itself, rounded
  # once more, put 10,795 uint8 colours on an edge one bin low for 9, 18, 36 or 72 bins).
  six_c = 6 * jnp.where(c_NxHxW > 0, c_NxHxW, 1.0)
  idx = jnp.clip(jnp.floor(v_NxHxW * bins / six_c).astype(jnp.int32), 0, bins - 1)
  idx = jnp.where(c_NxHxW > 0, idx, 0).reshape(n, -1)   # grey: hue 0, bin 0
  counts_NxB = jnp.sum(idx[:, :, None] == jnp.arange(bins)[None, None, :], axis=1)
  nan_N = jnp.any(jnp.isnan(c_NxHxW.reshape(n, -1)), axis=1)
  return jnp.where(nan_N[:, None], jnp.nan, counts_NxB.astype(jnp.float32) / idx.shape[1])
