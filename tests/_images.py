"""Tiny image folders for tests: root/{train,test}/<class>/*.png."""

import numpy as np
from PIL import Image


def write_folder(root, classes=("cat", "dog", "ship"), train=12, test=6, size=8):
  """Noisy RGB images whose brightness tells the class (class k: 60 k + noise in [0, 60)).
  Returns root."""
  rng = np.random.default_rng(0)
  for split, n in (("train", train), ("test", test)):
    for k, name in enumerate(classes):
      folder = root / split / name
      folder.mkdir(parents=True)
      for i in range(n):
        pixels = rng.integers(0, 60, (size, size, 3)) + 60 * k
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
  return root
