"""`load`: the one entry point from a dataset name or an image folder to a Dataset."""

from lincv.data import catalog, digits
from lincv.data import folder as folder_lib
from lincv.data.dataset import DataError, Dataset

DATASETS = (digits.NAME,) + catalog.CATALOG


def load(name: str | None = None, *, folder=None, data_dir=None) -> Dataset:
  """Loads a known dataset by name, or an image folder, as uint8 images and int32 labels.

    ds = lincv.data.load("digits")                 # embedded, offline, seconds
    ds = lincv.data.load(folder="path/to/cifar10") # root/{train,test}/<class>/*.png|jpg
    ds = lincv.data.load("cifar10")                # tfds catalog, prepared beforehand
    images_NxHxWxC, labels_N = ds["train"]

  Prepared copies live in `data_dir`, default $TFDS_DATA_DIR, else ~/tensorflow_datasets.

  Args:
    name: one of DATASETS; leave it out when giving `folder`.
    folder: path of an image folder (see `lincv.data.folder`).
    data_dir: where prepared data is kept.

  Returns:
    Dataset with "train" and "test" splits.

  Raises:
    DataError: an unknown name, a bad folder or image, or a catalog dataset that is not
      prepared; the message names the culprit and what is valid.
  """
  if folder is not None:
    if name is not None:
      raise DataError(f"give a dataset name or folder=PATH, not both (got {name!r} and {folder!r})")
    return folder_lib.load(folder, data_dir=data_dir)
  if not isinstance(name, str) or name not in DATASETS:
    raise DataError(
        f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}; or load an image "
        "folder with lincv.data.load(folder=PATH) (--config.data.folder=PATH), laid out as "
        f"{folder_lib.LAYOUT}")
  if name == digits.NAME:
    return digits.load(data_dir=data_dir)
  return catalog.load(name, data_dir=data_dir)
