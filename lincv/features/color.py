"""Colour features: the hue of every pixel and a hue histogram per image.

Every function takes a batch of RGB images (N, H, W, 3), uint8 or float in the 0-255
scale, is pure and jittable, and returns float32.
"""

import jax
import jax.numpy as jnp


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
  images = jnp.asarray(images)
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
  x = as_rgb(images_NxHxWx3)
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  top = jnp.max(x, axis=-1)
  c = top - jnp.min(x, axis=-1)
  safe_c = jnp.where(c > 0, c, 1.0)
  h = jnp.where(top == r, jnp.mod((g - b) / safe_c, 6.0),
                jnp.where(top == g, (b - r) / safe_c + 2.0, (r - g) / safe_c + 4.0))
  h = jnp.where(c > 0, h / 6.0, jnp.where(c == 0, 0.0, jnp.nan))  # NaN pixel: NaN hue
  return jnp.where(h >= 1.0, h - 1.0, h)


def color_histogram(images_NxHxWx3, bins: int = 10) -> jax.Array:
  """Fraction of each image's pixels in each of `bins` equal hue bins over [0, 1), (N, bins).

  Bin b holds hues in [b / bins, (b + 1) / bins); grey pixels have hue 0 (bin 0), as in
  `colorsys` and `matplotlib.colors.rgb_to_hsv`. Each row sums to 1; a pure-red image
  puts all its mass in bin 0. An image with a NaN pixel has a row of NaN.
  """
  if not isinstance(bins, int) or bins < 1:
    raise ValueError(f"bins must be a positive integer, got {bins!r}")
  h_NxHxW = hue(images_NxHxWx3)
  n = h_NxHxW.shape[0]
  idx = jnp.clip(jnp.floor(h_NxHxW * bins).astype(jnp.int32), 0, bins - 1).reshape(n, -1)
  counts_NxB = jnp.sum(idx[:, :, None] == jnp.arange(bins)[None, None, :], axis=1)
  nan_N = jnp.any(jnp.isnan(h_NxHxW.reshape(n, -1)), axis=1)
  return jnp.where(nan_N[:, None], jnp.nan, counts_NxB.astype(jnp.float32) / idx.shape[1])
