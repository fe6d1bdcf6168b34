"""Catalog datasets from tensorflow-datasets, read through `tfds.data_source`.

Reading needs only the prepared ArrayRecord files. Preparing them downloads the
originals and needs TensorFlow; where that is impossible, the error says how to
prepare them elsewhere, or how to use an image folder instead.
"""

import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from lincv.data.dataset import DataError, Dataset, resolve_data_dir

CATALOG = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn_cropped")
SPLITS = ("train", "test")


def prepare_command(name: str, data_dir: str) -> str:
  """Shell commands that prepare catalog dataset `name` as ArrayRecord into `data_dir`."""
  return (
      "  pip install tensorflow importlib_resources\n"
      f"  tfds build {name} --data_dir={data_dir} --file_format=array_record\n"
      "or, in Python:\n"
      "  python -c \"import tensorflow_datasets as tfds; "
      f"tfds.builder('{name}', data_dir='{data_dir}', file_format='array_record')"
      ".download_and_prepare()\"")


def _not_prepared(name: str, data_dir: str, cause: Exception) -> DataError:
  """The error for a catalog dataset that cannot be read: why, and what to run instead."""
  dataset_dir = os.path.join(data_dir, name)
  infos = sorted(pathlib.Path(dataset_dir).rglob("dataset_info.json"))
  if infos:
    versions = ", ".join(str(p.parent) for p in infos)
    why = (f"it is prepared at {versions}, but not as ArrayRecord (TFRecord files cannot be "
           "read without TensorFlow; with TensorFlow, tfds convert_format "
           f"--dataset_dir={infos[0].parent} --out_file_format=array_record converts them)")
  elif os.path.isdir(dataset_dir):
    why = f"{dataset_dir} holds no complete preparation"
  else:
    why = f"it is not prepared under {data_dir}"
  detail = str(cause).strip().splitlines()
  return DataError(
      f"cannot read catalog dataset {name!r}: {why}. Preparing it downloads the original "
      "files and needs TensorFlow and the internet; do it once on a machine with both "
      f"(then copy {dataset_dir} into this data dir):\n"
      f"{prepare_command(name, data_dir)}\n"
      "Or use an image folder laid out as root/{train,test}/<class>/*.png instead: "
      "lincv.data.load(folder=PATH), or --config.data.folder=PATH.\n"
      f"(tfds said: {type(cause).__name__}: {detail[0] if detail else ''})")


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
    sources = tfds.data_source(name, split=list(SPLITS), data_dir=data_dir, download=False)
  except Exception as e:  # tfds raises several types for "not there"; all mean the same here
    raise _not_prepared(name, data_dir, e) from e
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
