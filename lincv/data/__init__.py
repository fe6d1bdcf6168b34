"""Datasets for lincv: loading through tensorflow-datasets, splits, and preprocessing.

    ds = lincv.data.load("digits")              # or load(folder=PATH), or load("cifar10"),
                                                # or load(features="feats.npz"): float rows
    images_NxHxWxC, labels_N = ds["train"]      # uint8, int32
    data = lincv.data.prepare(ds, val_fraction=0.1, seed=0, center="image")
    data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test

Modules: `sources` (load), `digits` and `folder` (lincv's own tfds builders), `catalog`
(tfds catalog datasets), `records` (their shared ArrayRecord layout), `image_files`
(decoding PNG/JPEG files, `read_images`), `splits`, `preprocess`, `dataset` (Dataset,
DataError), `feature_files` (pre-extracted features: FeatureDataset) and `rows` (their
preparation: RowPreprocessor).
"""

from lincv.data.dataset import DataError, Dataset, resolve_data_dir
from lincv.data.feature_files import FeatureDataset
from lincv.data.folder import read_images
from lincv.data.preprocess import CENTERS, SCALES, Prepared, Preprocessor, mirror, prepare
from lincv.data.rows import RowPreprocessor
from lincv.data.sources import DATASETS, load
from lincv.data.splits import kfold, stratified_subset, train_val_split

__all__ = [
    "CENTERS", "DATASETS", "DataError", "Dataset", "FeatureDataset", "Prepared", "Preprocessor",
    "RowPreprocessor", "SCALES", "kfold", "load", "mirror", "prepare", "read_images",
    "resolve_data_dir", "stratified_subset", "train_val_split",
]
