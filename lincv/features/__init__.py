"""Image features: a hue histogram, HOG, and k-means patch features (Coates, Lee and Ng, 2011).

Every feature function takes a batch of RGB images (N, H, W, 3), uint8 or float in the
0-255 scale, is pure and jittable, and returns float32 rows (N, F).

  module      owns
  color       `hue`, `color_histogram` (and `as_rgb`, the input check they all share)
  hog         `grayscale`, `gradients`, `hog`
  kmeans      patches, contrast normalisation, ZCA, `kmeans`, `triangle`,
              `KMeansFeatures`, `kmeans_fit`, `kmeans_encode`
  extraction  `extract` (a feature function over many images in jitted batches),
              `fit_standardize`, `standardize`
  cache       `cached` arrays on disk keyed by `fingerprint`s and `CACHE_VERSION`
  pipeline    a run's features: `compute` fits, extracts, caches and standardises them;
              the fitted `Featurizer` applies the same to new images

Every public name of the submodules is available here, e.g. `features.hog(images)`.
"""

from lincv.features.cache import CACHE_VERSION, cache_path, cached, fingerprint
from lincv.features.color import as_rgb, color_histogram, hue
from lincv.features.extraction import extract, fit_standardize, standardize
from lincv.features.hog import BLOCK_NORMS, GRAY_WEIGHTS, gradients, grayscale, hog
from lincv.features.kmeans import (KMeansFeatures, fit_zca, kmeans, kmeans_encode,
                                   kmeans_fit, normalize_patches, patches, sample_patches,
                                   triangle)
from lincv.features.pipeline import (NAMES, Featurizer, compute, feature_settings,
                                     features_of, hog_color, image_features)

__all__ = [
    "BLOCK_NORMS", "CACHE_VERSION", "Featurizer", "GRAY_WEIGHTS", "KMeansFeatures", "NAMES",
    "as_rgb", "cache_path", "cached", "color_histogram", "compute", "extract",
    "feature_settings", "features_of", "fingerprint", "fit_standardize", "fit_zca", "gradients",
    "grayscale", "hog", "hog_color", "hue", "image_features", "kmeans", "kmeans_encode",
    "kmeans_fit", "normalize_patches", "patches", "sample_patches", "standardize", "triangle",
]
