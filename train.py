"""Trains a lincv sweep from a config, or evaluates a finished run.

    python train.py                                    # configs/default.py, into runs/
    python train.py --config configs/cifar10_linear.py --config.data.folder=PATH
    python train.py --config configs/default.py --config.epochs=10 --workdir runs/x
    python train.py --config configs/default.py --config.sweep.optimizer="(sgd, adam)"
    python train.py --workdir runs/x --mode eval [--split test]
    python train.py --config configs/cifar10_kmeans.py --mode features --out feats.npz

A run killed at any point resumes when started again with the same --workdir; Ctrl-C
says where it stopped and exits with status 130. Bad input (an unknown field, a wrong
type, an unknown name, a missing folder) prints one line on stderr and exits with
status 2, writing nothing. --mode features writes the config's features (the rows its
runs train on) to --out, an .npz or a folder DIR/ of .npy files, which
--config.data.features=PATH reads back.

Several processes (hosts) run one sweep when each is started with --coordinator,
--num_processes and --process_id (`python -m lincv.launch` starts them on one machine):
process 0 writes the run directory and prints the results. A process that loses a peer
ends with one line and exit status 1; starting every process again resumes the run.
"""

import os
import re
import signal
import sys
import time

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None,
                    "Run directory (default: runs/<config>[-<variant>]-<date>-<time>).")
flags.DEFINE_enum("mode", "train", ["train", "eval", "features"],
                  "Train a sweep, evaluate a run, or write a config's features (to --out).")
flags.DEFINE_string("out", None, "--mode features: the features file to write, PATH.npz or "
                    "DIR/ (a folder of .npy files).")
flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split for --mode eval.")
flags.DEFINE_string("coordinator", None,
                    "host:port of process 0, to run across hosts with jax.distributed.")
flags.DEFINE_integer("num_processes", None, "Number of processes (hosts) of a distributed run.")
flags.DEFINE_integer("process_id", None, "This process's index in a distributed run.")
_FLAGS = ("workdir", "mode", "split", "out", "coordinator", "num_processes", "process_id")
_HELP = ("-h", "--help", "-help", "--helpshort", "--helpfull")
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join("configs", "default.py")


def usage() -> str:
  """What `--help` prints: the synopsis, the flags, and where the config fields are."""
  lines = [
      "usage: python train.py [--config FILE[:VARIANT]] [--config.FIELD=VALUE ...]",
      "                       [--workdir DIR] [--mode train|eval|features] [--split train|val|test]",
      "                       [--out PATH.npz|DIR/]",
      "", __doc__.strip(), "", "flags:",
      f"  --config FILE[:VARIANT]  a config file with get_config() (default: {DEFAULT_CONFIG});",
      "                           :VARIANT is passed to get_config, e.g. configs/default.py:smoke",
      "  --config.FIELD=VALUE     sets one field of the config, e.g. --config.epochs=10,",
      "                           --config.data.folder=PATH",
      "  --config.sweep.FIELD=VALUES",
      "                           adds or replaces one axis of the sweep, e.g.",
      "                           --config.sweep.learning_rate=\"(1e-3, 1e-2)\"",
  ]
  for name in _FLAGS:
    flag = FLAGS[name]
    default = "" if flag.default is None else f" (default: {flag.default})"
    lines.append(f"  --{name:<23}{flag.help}{default}")
  lines += ["", "The config fields, their defaults and what they do: lincv/config.py.",
            "How configs, overrides and sweeps work: README.md, sections \"Configs and",
            "overrides\" and \"Sweeps\"."]
  return "\n".join(lines) + "\n"


def default_workdir(spec: str, when: time.struct_time | None = None) -> str:
  """The run directory of a run started without --workdir: runs/<config>-<date>-<time>.

  The config's file name without .py, then its variant, if any, after a hyphen (a colon is
  not allowed in file names everywhere): configs/default.py:smoke -> runs/default-smoke-...
  """
  path, _, variant = spec.partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  if variant:
    name += "-" + re.sub(r"[^\w.-]", "_", variant)
  stamp = time.strftime("%Y%m%d-%H%M%S", when or time.localtime())
  return os.path.join("runs", f"{name}-{stamp}")


def _fail(message: str) -> None:
  if _joined():
    from lincv import distributed  # pylint: disable=import-outside-toplevel
    distributed.abort(f"train.py: error: {message}", 2)
  sys.stderr.write(f"train.py: error: {message}\n")
  sys.exit(2)


def _joined() -> bool:
  """True once this process has joined a run of several processes."""
  module = sys.modules.get("lincv.distributed")
  return module is not None and module.joined()


def _parse(argv):
  """Parses the command line; returns (config spec, [(path, text)] overrides)."""
  from lincv import config as config_lib  # pylint: disable=import-outside-toplevel

  try:
    args = FLAGS.read_flags_from_files(argv[1:], force_gnu=False)
    spec, overrides, rest = config_lib.split_args(args)
    extra = FLAGS([argv[0], *rest])[1:]
  except flags.Error as e:
    _fail(_flag_error(e))
  except config_lib.OverrideError as e:
    _fail(str(e))
  if extra:
    _fail(f"unexpected argument {extra[0]!r}; flags take the form --name=value "
          "(see python train.py --help)")
  return spec, overrides


def _flag_error(e: Exception) -> str:
  """absl's error for a bad flag, as one line that names the flag and what it takes."""
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  line = lines[0] if lines else type(e).__name__
  bad = re.fullmatch(r"flag --(\w+)=(.*?): .*", line, re.S)
  if bad and bad.group(1) in FLAGS:
    name, value = bad.groups()
    flag = FLAGS[name]
    if isinstance(flag.parser, flags.IntegerParser):
      return f"--{name} takes an integer, got {value!r}"
    if isinstance(flag.parser, flags.EnumParser):
      return f"--{name} takes one of: {', '.join(flag.parser.enum_values)}; got {value!r}"
  unknown = re.fullmatch(r"Unknown command line flag '([^']*)'(?:\. Did you mean: (\S+) \?)?",
                         line)
  if unknown:
    name, close = unknown.groups()
    hint = f" (did you mean --{close}?)" if close else ""
    return f"unknown flag --{name}{hint}; python train.py --help lists the flags"
  return line


def _distributed_flags() -> None:
  """Refuses --coordinator, --num_processes and --process_id that cannot form a run."""
  host, _, port = FLAGS.coordinator.rpartition(":")
  if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
    _fail(f"--coordinator takes host:port, the address of process 0 with a port in "
          f"1..65535, got {FLAGS.coordinator!r}")
  n, i = FLAGS.num_processes, FLAGS.process_id
  if n < 1:
    _fail(f"--num_processes must be >= 1, got {n}")
  if not 0 <= i < n:
    _fail(f"--process_id must be in 0..{n - 1} (one of the --num_processes={n} processes), "
          f"got {i}")


def _load(spec, overrides):
  """The config of `spec` with the command line's overrides; exits 2 on bad input."""
  from lincv import config as config_lib  # pylint: disable=import-outside-toplevel
  from lincv import experiment  # pylint: disable=import-outside-toplevel

  if spec is None:
    spec = os.path.join(HERE, DEFAULT_CONFIG)
  try:
    config = config_lib.load(spec)
    for path, text in overrides:
      config_lib.override(config, path, text)
    config_lib.refuse_idle(config, [path for path, _ in overrides], FLAGS.mode,
                           experiment.check)
  except (config_lib.OverrideError, experiment.ConfigError) as e:
    _fail(str(e))
  return spec, config


def main(argv) -> None:
  if any(a in _HELP for a in argv[1:]):
    sys.stdout.write(usage())
    sys.exit(0)
  spec, overrides = _parse(argv)
  if FLAGS["workdir"].present and not FLAGS.workdir:   # an unset $WD: a new run each time
    _fail("--workdir is empty; give a folder, or leave --workdir out for "
          "runs/<config>-<date>-<time>")
  if FLAGS.mode == "eval":
    if spec is not None or overrides:
      _fail("--config and --config.FIELD do nothing with --mode eval, which evaluates the "
            "run in --workdir with its own config.json; remove them")
    if not FLAGS.workdir:
      _fail("--mode eval needs --workdir of a finished run")
  else:
    spec, config = _load(spec, overrides)
  if (FLAGS.out is not None) != (FLAGS.mode == "features"):
    _fail("--mode features needs --out PATH.npz or --out DIR/" if FLAGS.out is None
          else "--out does nothing without --mode features; remove it")
  if FLAGS["split"].present and FLAGS.mode != "eval":
    _fail("--split does nothing without --mode eval (a run evaluates its selected member on "
          "--config.eval_split); remove it")
  if FLAGS.coordinator is None and (FLAGS.num_processes, FLAGS.process_id) != (None, None):
    _fail("--num_processes and --process_id do nothing without --coordinator host:port; "
          "add it (every process the same), or remove them")
  if FLAGS.mode == "features":
    if FLAGS.workdir or FLAGS.coordinator:
      _fail("--mode features writes only --out; remove --workdir and --coordinator")
    _features(config)
    return

  from lincv import distributed  # pylint: disable=import-outside-toplevel
  if FLAGS.coordinator:
    if FLAGS.num_processes is None or FLAGS.process_id is None:
      _fail("--coordinator needs --num_processes and --process_id")
    _distributed_flags()
    if not FLAGS.workdir:
      _fail("a run of several processes needs --workdir (the same on every process, on a "
            "file system they share)")
    distributed.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
  if distributed.joined():
    try:
      _main(spec, config if FLAGS.mode == "train" else None)
    except Exception as e:  # pylint: disable=broad-except
      first = (str(e).strip().splitlines() or [type(e).__name__])[0]
      distributed.abort(f"train.py: error: process {FLAGS.process_id} of "
                        f"{FLAGS.num_processes} stopped ({type(e).__name__}: {first}); a peer "
                        "may have died: start every process again with the same command to "
                        "resume")
  else:
    _main(spec, config if FLAGS.mode == "train" else None)


def _features(config) -> None:
  """Writes the config's features to --out (`lincv.features.export`)."""
  from lincv import experiment  # pylint: disable=import-outside-toplevel
  from lincv.data import DataError  # pylint: disable=import-outside-toplevel
  from lincv.data.records import quiet_tfds  # pylint: disable=import-outside-toplevel
  from lincv.features import export  # pylint: disable=import-outside-toplevel
  try:
    out = export.check_out(FLAGS.out)
    experiment.check_writable(out, "--out", folder=not out.endswith(".npz"))
    with quiet_tfds():
      export.export(config, out, stream=sys.stdout)
  except (experiment.ConfigError, DataError) as e:
    _fail(str(e))
  except KeyboardInterrupt:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stderr.write(f"train.py: interrupted; nothing written to --out {FLAGS.out}\n")
    sys.exit(130)


def _main(spec, config) -> None:
  """Trains or evaluates, once the command line is read."""
  from lincv import distributed, experiment, sweep  # pylint: disable=import-outside-toplevel
  from lincv.data import DataError  # pylint: disable=import-outside-toplevel
  from lincv.data.records import quiet_tfds  # pylint: disable=import-outside-toplevel
  from lincv.progress import Progress  # pylint: disable=import-outside-toplevel

  progress = Progress(sys.stdout if distributed.is_writer() else open(os.devnull, "w"))
  workdir = FLAGS.workdir
  try:
    with quiet_tfds():
      if FLAGS.mode == "eval":
        experiment.evaluate(workdir, FLAGS.split, stream=sys.stdout)
        return
      if not workdir:
        workdir = default_workdir(spec)
      for line in sweep.notes(config) if distributed.is_writer() else ():
        sys.stdout.write(f"note: {line}\n")
      experiment.run(config, workdir, progress=progress, stream=sys.stdout)
  except (experiment.ConfigError, DataError) as e:
    _fail(str(e))
  except KeyboardInterrupt:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut this short
    progress.end_line()
    sys.stdout.flush()
    if FLAGS.mode == "eval":
      message = "interrupted"
    elif FLAGS.workdir:
      message = f"interrupted {progress.where()}; run the same command to resume"
    else:
      message = (f"interrupted {progress.where()}; run the same command with --workdir "
                 f"{workdir} to resume")
    sys.stderr.write(f"train.py: {message}\n")
    sys.exit(130)


if __name__ == "__main__":
  try:
    main(sys.argv)
  except KeyboardInterrupt:
    sys.stderr.write("train.py: interrupted before the run began\n")
    sys.exit(130)
  except SystemExit as e:
    if e.code == 130:          # Ctrl-C, said and cleaned up: XLA may still be running
      from lincv import distributed as _distributed
      _distributed.exit_without_teardown(130)
    raise
  from lincv import distributed as _distributed
  _distributed.exit_without_teardown()
