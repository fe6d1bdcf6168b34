"""`load`: the one entry point from a dataset name or an image folder to a Dataset."""

from lincv.data import catalog, digits, feature_files
from lincv.data import folder as folder_lib
from lincv.data.dataset import DataError, Dataset

DATASETS = (digits.NAME,) + catalog.CATALOG


def load(name: str | None = None, *, folder=None, data_dir=None, features=None):
  """Loads a known dataset by name, or an image folder, as uint8 images and int32 labels;
  or pre-extracted features as float rows and int32 labels.

    ds = lincv.data.load("digits")                 # embedded, offline, seconds
    ds = lincv.data.load(folder="path/to/cifar10") # root/{train,test}/<class>/*.png|jpg
    ds = lincv.data.load("cifar10")                # tfds catalog, prepared beforehand
    images_NxHxWxC, labels_N = ds["train"]
    ds = lincv.data.load(features="feats.npz")     # or a folder of .npy files
    rows_NxD, labels_N = ds["train"]               # float16/32, memory-mapped

  Prepared copies live in `data_dir`, default $TFDS_DATA_DIR, else ~/tensorflow_datasets.

  Args:
    name: one of DATASETS; leave it out when giving `folder`.
    folder: path of an image folder (see `lincv.data.folder`).
    features: path of pre-extracted features (see `lincv.data.feature_files`).
    data_dir: where prepared data is kept.

  Returns:
    Dataset with "train" and "test" splits (a `FeatureDataset` for `features`).

  Raises:
    DataError: an unknown name, a bad folder or image, or a catalog dataset that is not
      prepared; the message names the culprit and what is valid.
  """
  if features is not None:
    if name is not None or folder is not None:
      raise DataError(f"give features=PATH alone, not with a dataset name or folder (got "
                      f"{features!r} and {name or folder!r})")
    return feature_files.load(features)
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
