"""Catalog datasets from tensorflow-datasets, read through `tfds.data_source`.

Reading needs only the prepared ArrayRecord files. Preparing them downloads the
originals and needs TensorFlow; where that is impossible, the error says how to
prepare them elsewhere, or how to use an image folder instead.
"""

import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from lincv.data import records
from lincv.data.dataset import DataError, Dataset, resolve_data_dir

CATALOG = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn_cropped")
SPLITS = ("train", "test")


def prepare_command(name: str, data_dir: str) -> str:
  """Shell commands that prepare catalog dataset `name` as ArrayRecord into `data_dir`."""
  return ("  pip install tensorflow importlib_resources\n"
          f"  tfds build {name} --data_dir={data_dir} --file_format=array_record")


def _not_prepared(name: str, data_dir: str) -> DataError:
  """The error for a catalog dataset that cannot be read: one line saying why and what to
  do, then the commands that do it."""
  dataset_dir = os.path.join(data_dir, name)
  infos = sorted(pathlib.Path(dataset_dir).rglob("dataset_info.json"))
  folder = ("or use an image folder instead (--config.data.folder=PATH, "
            "lincv.data.load(folder=PATH))")
  if infos:
    versions = ", ".join(str(p.parent) for p in infos)
    return DataError(
        f"cannot read catalog dataset {name!r}: it is prepared at {versions}, but not as "
        "ArrayRecord (TFRecord needs TensorFlow to read); convert it once where TensorFlow "
        f"is installed, {folder}:\n"
        "  pip install tensorflow importlib_resources\n"
        f"  tfds convert_format --dataset_dir={infos[0].parent} --out_file_format=array_record")
  where = (f"{dataset_dir} holds no complete preparation" if os.path.isdir(dataset_dir)
           else f"it is not prepared under {data_dir}")
  return DataError(
      f"cannot read catalog dataset {name!r}: {where}; prepare it once on a machine with "
      f"TensorFlow and the internet (then copy {dataset_dir} here), {folder}:\n"
      f"{prepare_command(name, data_dir)}")


def load(name: str, data_dir=None) -> Dataset:
  """Loads catalog dataset `name` (one of CATALOG) from its prepared ArrayRecord files.

  Args:
    name: a tfds catalog name in CATALOG.
    data_dir: where prepared data lives; default $TFDS_DATA_DIR or ~/tensorflow_datasets.

  Returns:
    Dataset with the "train" and "test" splits, class names from the label feature.

  Raises:
    DataError: unknown name, or the data is not prepared (with the commands that
      prepare it, and the image-folder alternative).
  """
  if name not in CATALOG:
    raise DataError(f"unknown catalog dataset {name!r}; known: {', '.join(CATALOG)}")
  data_dir = resolve_data_dir(data_dir)
  try:
    with records.quiet_tfds():
      sources = tfds.data_source(name, split=list(SPLITS), data_dir=data_dir, download=False)
  except Exception as e:  # tfds raises several types for "not there"; all mean the same here
    raise _not_prepared(name, data_dir) from e
  info = sources[0].dataset_info
  class_names = tuple(info.features["label"].names)
  splits = {}
  for split, source in zip(SPLITS, sources):
    n = len(source)
    if n:
      first = np.asarray(source[0]["image"])
    else:
      first = np.zeros(info.features["image"].shape, np.uint8)
    images = np.empty((n,) + first.shape, np.uint8)
    labels = np.empty(n, np.int64)
    for i in range(n):
      example = source[i]
      images[i] = example["image"]
      labels[i] = example["label"]
    splits[split] = (images, labels)
  return Dataset(name=name, class_names=class_names, splits=splits)
