"""Peak memory of lincv's memory targets alone: one member to the target accuracy, and one
epoch of K=64, each in a fresh process, judged as `python -m bench` judges them.

  python -m bench.memory --data ../shared/data/cifar10

The full run (`python -m bench`) measures the same two probes among its others; this
entry point is the quick way to check the two memory targets after a change. It prints
the figures and the two ratios (peak over float32 rows + 0.3 GiB, `report.TARGETS`) as a
JSON last line.
"""

import argparse
import shutil
import tempfile

from bench import common, probes, report


def measure(folder: str, limit: int | None = None, target: float = 0.40) -> dict:
  """The two probes of the memory targets, on `folder`'s rows; figures and ratios."""
  prepared = common.load(folder, limit)
  n, d = prepared.x_train.shape
  data = {"num_train": n, "num_val": len(prepared.y_val), "num_test": len(prepared.y_test),
          "dim": d}
  batch = min(256, n)
  cache = tempfile.mkdtemp(prefix="lincv-bench-memory-")
  try:
    probes.save_cache(prepared, cache)
    runs = {report.ONE_MEMBER: probes.run_probe("lincv_to_target", cache, target=target,
                                                epochs=3, batch_size=batch),
            report.SWEEP_K64: probes.run_probe("sweep_epoch", cache, members=64,
                                               batch_size=batch)}
  finally:
    shutil.rmtree(cache, ignore_errors=True)
  memory = {label: {k: r[k] for k in ("peak_rss_mib", "data_rss_mib", "over_data_mib")}
            for label, r in runs.items()}
  return {"data": data, "rows_mib": report.rows_mib(data), "memory": memory,
          "memory_one_member_over_rows": report.memory_over_rows(
              memory[report.ONE_MEMBER]["peak_rss_mib"], data),
          "memory_k64_over_rows": report.memory_over_rows(
              memory[report.SWEEP_K64]["peak_rss_mib"], data)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", required=True, help="image folder root with train/ and test/")
  parser.add_argument("--limit", type=int, default=None, help="cap on training images")
  args = parser.parse_args(argv)
  common.print_json(measure(args.data, args.limit))


if __name__ == "__main__":
  main()
