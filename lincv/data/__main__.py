"""Loads a dataset and prints what it holds and how long loading took.

  python -m lincv.data digits
  python -m lincv.data --folder path/to/cifar10 [--data_dir DIR]

The first load of an image folder or of digits prepares a tfds copy in the data dir;
run the command twice to see the first-load and the later-load time. Without a dataset
it prints its usage and exits with status 2, as it does for data it cannot load.
"""

import argparse
import sys
import time

import numpy as np

from lincv import data
from lincv.data import records


def main(argv=None) -> None:
  """Parses the command line, loads the dataset, prints a summary line per split."""
  parser = argparse.ArgumentParser(prog="python -m lincv.data", description=__doc__.splitlines()[0])
  parser.add_argument("name", nargs="?", help=f"one of: {', '.join(data.DATASETS)}")
  parser.add_argument("--folder", help="an image folder root/{train,test}/<class>/*.png|jpg")
  parser.add_argument("--data_dir", help="where prepared data lives (default $TFDS_DATA_DIR)")
  args = parser.parse_args(argv)
  if args.name is None and args.folder is None:
    parser.print_usage(sys.stderr)
    parser.exit(2, f"{parser.prog}: error: give a dataset name ({', '.join(data.DATASETS)}) "
                   "or --folder PATH\n")
  start = time.perf_counter()
  try:
    with records.quiet_tfds():
      ds = data.load(args.name, folder=args.folder, data_dir=args.data_dir)
  except data.DataError as e:
    parser.exit(2, f"{parser.prog}: error: {e}\n")
  seconds = time.perf_counter() - start
  print(f"{ds.name}: {ds.num_classes} classes, images {ds.image_shape}, "
        f"loaded in {seconds:.2f} s from {data.resolve_data_dir(args.data_dir)}")
  for split, (images, labels) in ds.splits.items():
    counts = np.bincount(labels, minlength=ds.num_classes)
    print(f"  {split}: {len(labels)} images, {counts.min()}-{counts.max()} per class")


if __name__ == "__main__":
  main()
