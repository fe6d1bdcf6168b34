"""Datasets for lincv: splits and preprocessing."""

from lincv.data.dataset import DataError, Dataset, resolve_data_dir
from lincv.data.preprocess import CENTERS, SCALES, Prepared, Preprocessor, prepare
from lincv.data.splits import kfold, stratified_subset, train_val_split
