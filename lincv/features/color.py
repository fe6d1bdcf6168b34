"""Colour features: the hue of every pixel and a hue histogram per image.

Every function takes a batch of RGB images (N, H, W, 3), uint8 or float in the 0-255
scale, is pure and jittable, and returns float32.
"""

import chex
import jax
import jax.numpy as jnp


def as_rgb(images) -> jax.Array:
  """Images as float32 (N, H, W, 3), after checking their rank and channels."""
  images = jnp.asarray(images)
  chex.assert_rank(images, 4)
  if images.shape[-1] != 3:
    raise ValueError(f"images must be RGB (N, H, W, 3), got shape {images.shape}")
  return images.astype(jnp.float32)


def hue(images_NxHxWx3) -> jax.Array:
  """Hue of every pixel in [0, 1), as in HSV (`colorsys.rgb_to_hsv`), (N, H, W).

  With M = max(r, g, b), m = min(r, g, b), c = M - m:

    h = ((g - b) / c mod 6) / 6   if M = r
        ((b - r) / c + 2) / 6     if M = g
        ((r - g) / c + 4) / 6     if M = b

  and h = 0 for grey pixels (c = 0). Hue does not depend on the intensity scale.
  """
  x = as_rgb(images_NxHxWx3)
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  top = jnp.max(x, axis=-1)
  c = top - jnp.min(x, axis=-1)
  safe_c = jnp.where(c > 0, c, 1.0)
  h = jnp.where(top == r, jnp.mod((g - b) / safe_c, 6.0),
                jnp.where(top == g, (b - r) / safe_c + 2.0, (r - g) / safe_c + 4.0))
  h = jnp.where(c > 0, h / 6.0, 0.0)
  return jnp.where(h >= 1.0, h - 1.0, h)


def color_histogram(images_NxHxWx3, bins: int = 10) -> jax.Array:
  """Fraction of each image's pixels in each of `bins` equal hue bins over [0, 1), (N, bins).

  Bin b holds hues in [b / bins, (b + 1) / bins); grey pixels have hue 0 (bin 0), as in
  `colorsys` and `matplotlib.colors.rgb_to_hsv`. Each row sums to 1; a pure-red image
  puts all its mass in bin 0.
  """
  if not isinstance(bins, int) or bins < 1:
    raise ValueError(f"bins must be a positive integer, got {bins!r}")
  h_NxHxW = hue(images_NxHxWx3)
  n = h_NxHxW.shape[0]
  idx = jnp.clip(jnp.floor(h_NxHxW * bins).astype(jnp.int32), 0, bins - 1).reshape(n, -1)
  counts_NxB = jnp.sum(idx[:, :, None] == jnp.arange(bins)[None, None, :], axis=1)
  return counts_NxB.astype(jnp.float32) / idx.shape[1]
