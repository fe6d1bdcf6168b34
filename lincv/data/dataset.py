"""The in-memory dataset every loader returns, its error type, and where prepared data lives."""

from collections.abc import Mapping
import dataclasses
import os

import numpy as np

TFDS_DATA_DIR_ENV = "TFDS_DATA_DIR"


class DataError(ValueError):
  """Bad input data: a missing path, a bad image, an unknown name, labels out of range."""


def resolve_data_dir(data_dir=None) -> str:
  """Where prepared tfds data lives: `data_dir`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets.

  The environment is read at call time (tfds itself reads it once, at import), so a
  test or a notebook that sets TFDS_DATA_DIR later is still honoured.
  """
  if data_dir is None or str(data_dir) == "":
    data_dir = os.environ.get(TFDS_DATA_DIR_ENV) or os.path.join(
        os.path.expanduser("~"), "tensorflow_datasets")
  return os.path.abspath(os.path.expanduser(os.fspath(data_dir)))


def check_labels(labels, num_classes: int | None = None, *, what: str = "labels") -> np.ndarray:
  """Returns `labels` as an int32 (N,) array, or raises DataError if they are not class indices.

  Args:
    labels: integer class indices, shape (N,).
    num_classes: if given, every label must lie in [0, num_classes).
    what: how to name the labels in an error message.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise DataError(f"{what} must have shape (N,), got shape {labels.shape}")
  if labels.size and not np.issubdtype(labels.dtype, np.integer):
    raise DataError(f"{what} must be integer class indices, got dtype {labels.dtype}")
  if labels.size:
    lo, hi = int(labels.min()), int(labels.max())
    upper = num_classes if num_classes is not None else np.iinfo(np.int32).max
    if lo < 0 or hi >= upper:
      bad = lo if lo < 0 else hi
      valid = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
      raise DataError(f"{what}: label {bad} is out of range; valid labels are {valid}")
  return labels.astype(np.int32, copy=False)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Images and labels per split, with class names; what `lincv.data.load` returns.

  `images, labels = ds["train"]` gives uint8 images (N, H, W, C), always 4-D (C = 1 for
  grayscale), and int32 labels (N,) in [0, num_classes). Every split has the same image
  shape. Constructing a Dataset checks all of this and raises DataError otherwise, so
  arrays from elsewhere can be wrapped too:

    Dataset("mine", ("cat", "dog"), {"train": (x_train, y_train), "test": (x_test, y_test)})
  """

  name: str
  class_names: tuple[str, ...]
  splits: Mapping[str, tuple[np.ndarray, np.ndarray]]

  def __post_init__(self):
    class_names = tuple(str(c) for c in self.class_names)
    if len(class_names) < 2:
      raise DataError(
          f"dataset {self.name!r} has {len(class_names)} class(es) {list(class_names)}; "
          "a classifier needs at least 2")
    if len(set(class_names)) != len(class_names):
      raise DataError(f"dataset {self.name!r} has repeated class names: {list(class_names)}")
    if "train" not in self.splits:
      raise DataError(
          f"dataset {self.name!r} has no 'train' split; splits: {sorted(self.splits)}")
    splits, shape = {}, None
    for split, (images, labels) in self.splits.items():
      images = np.asarray(images)
      if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(
            f"dataset {self.name!r} split {split!r}: images must be uint8 (N, H, W, C), "
            f"got {images.dtype} with shape {images.shape}")
      labels = check_labels(labels, len(class_names), what=f"dataset {self.name!r} split {split!r}")
      if len(labels) != len(images):
        raise DataError(
            f"dataset {self.name!r} split {split!r}: {len(images)} images but "
            f"{len(labels)} labels")
      if shape is not None and images.shape[1:] != shape:
        raise DataError(
            f"dataset {self.name!r} split {split!r}: images of shape {images.shape[1:]}, "
            f"other splits have {shape}")
      shape = images.shape[1:]
      splits[split] = (images, labels)
    object.__setattr__(self, "class_names", class_names)
    object.__setattr__(self, "splits", splits)

  @property
  def num_classes(self) -> int:
    """Number of classes C; labels lie in [0, C)."""
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of every image."""
    return tuple(int(d) for d in self.splits["train"][0].shape[1:])

  def __getitem__(self, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`images_NxHxWxC, labels_N = ds[split]`."""
    try:
      return self.splits[split]
    except KeyError:
      raise KeyError(
          f"dataset {self.name!r} has no split {split!r}; splits: {', '.join(self.splits)}"
      ) from None

  def __repr__(self) -> str:
    sizes = ", ".join(f"{s}={len(y)}" for s, (_, y) in self.splits.items())
    return (f"Dataset(name={self.name!r}, num_classes={self.num_classes}, "
            f"image_shape={self.image_shape}, {sizes})")
