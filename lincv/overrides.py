"""Configs from the command line: a config file, then `--config.FIELD=VALUE` overrides.

    config = overrides.load("configs/default.py:smoke")      # get_config("smoke")
    overrides.override(config, "epochs", "10")               # --config.epochs=10
    overrides.override(config, "sweep.seed", "(0, 1)")       # --config.sweep.seed="(0, 1)"

VALUE is parsed by the type of the field's current value; `sweep.FIELD` adds or replaces
one axis of the sweep (ml_collections' own flags cannot add a key to a config). Every
error is an `OverrideError` whose message is the one line `train.py` prints. The same
names are reachable as `lincv.config.load`, `lincv.config.override`, ...
"""

import ast
import importlib.util
import os
import re

import ml_collections


class OverrideError(ValueError):
  """A config file or command-line override that cannot apply; the message says why."""


def load(spec: str) -> ml_collections.ConfigDict:
  """The locked config of `spec`: "path/to/file.py", or "path/to/file.py:variant".

  Calls the file's `get_config()`, or `get_config(variant)`.

  Raises:
    OverrideError: the file is missing, or it fails to give a config (the last line of
      its error).
  """
  path, _, variant = spec.partition(":")
  if not os.path.isfile(path):
    raise OverrideError(f"cannot load --config {spec}: no such file {path}")
  try:
    module_spec = importlib.util.spec_from_file_location("lincv_config_file", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(variant) if variant else module.get_config()
  except Exception as e:  # noqa: BLE001 - any failure of the user's config file
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    raise OverrideError(f"cannot load --config {spec}: "
                        f"{lines[-1] if lines else type(e).__name__}") from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise OverrideError(f"cannot load --config {spec}: get_config() returned "
                        f"{type(config).__name__}, not an ml_collections.ConfigDict")
  unknown = config_lib.unknown_fields(config)
  if unknown:
    raise OverrideError(f"--config {spec}: {config_lib.unknown_field_message(*unknown[0])}")
  config.lock()
  return config


def _unknown(path: str, known) -> OverrideError:
  return OverrideError(config_lib.unknown_field_message(path, known))


def parse_values(text: str) -> tuple:
  """VALUES of `--config.sweep.FIELD=VALUES` or of a tuple field, as a tuple.

  A Python literal: "(1e-3, 1e-2)", "('sgd', 'adam')", a single value ("0.1" gives
  (0.1,)), or a distribution "{'log_uniform': (1e-4, 1e-1)}" (returned as a dict).
  Names may go unquoted: "(sgd, adam)" and "sgd" work too.
  """
  value = _literal(text)
  if isinstance(value, str) and value[:1] + value[-1:] in ("()", "[]"):
    inner = value[1:-1].strip()
    value = tuple(_literal(v.strip()) for v in inner.split(",") if v.strip()) if inner else ()
  if isinstance(value, dict):
    return value
  return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _literal(text: str):
  """A Python literal, or the text itself where it is not one (a bare name)."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    return text


class _Bare(str):
  """The value text of a flag given without one (`--config.PATH`: "true";
  `--noconfig.PATH`: "false"), which only a true/false field takes: it compares equal to
  that text, and remembers the flag as written."""

  def __new__(cls, text: str, arg: str):
    out = super().__new__(cls, text)
    out.arg = arg
    return out


def _parse(flag: str, text: str, current):
  """`text` as a value of the type of `current`, the field's value in the config."""
  if isinstance(text, _Bare) and not isinstance(current, bool):
    raise _needs_value(flag, text)
  if isinstance(current, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    raise OverrideError(f"{flag} takes true or false, got {text!r}")
  if isinstance(current, int):
    try:
      return int(text)
    except ValueError:
      raise OverrideError(f"{flag} takes an integer, got {text!r}") from None
  if isinstance(current, float):
    try:
      return float(text)
    except ValueError:
      raise OverrideError(f"{flag} takes a number, got {text!r}") from None
  if isinstance(current, str):
    return text
  if isinstance(current, (tuple, list)):
    value = parse_values(text)
    if isinstance(value, dict):
      raise OverrideError(f"{flag} takes a tuple of values, e.g. {flag}=\"(1, 2)\", got {text!r}")
    return list(value) if isinstance(current, list) else value
  return _literal(text)


# Fields that name data: "" is their default (unset), so an empty value given on the
# command line (`--config.data.features=$FEATS` with FEATS unset) would quietly train on
# the config's own dataset instead.
PATHS = {"data.features": "a features file (an .npz, or a folder of .npy files)",
         "data.folder": "an image folder (root/{train,test}/<class>/*)"}


def override(config: ml_collections.ConfigDict, path: str, text: str) -> None:
  """Applies `--config.PATH=TEXT` to `config` in place.

  TEXT is parsed by the type of the field's value in the config (an int field takes an
  integer, a tuple field a tuple literal, ...). `sweep.FIELD` names one axis of the
  sweep, which may be new: TEXT is parsed by `parse_values`; `sweep` itself takes a
  whole dict literal.

  Raises:
    OverrideError: an unknown field (with the closest name), a value of the wrong type.
  """
  flag = f"--config.{path}"
  parts = path.split(".")
  if parts[0] == "sweep" and len(parts) <= 2:
    _override_sweep(config, parts[1:], flag, text)
    return
  holder = config
  for i, name in enumerate(parts):
    if not isinstance(holder, ml_collections.ConfigDict) or name not in holder:
      known = holder.keys() if isinstance(holder, ml_collections.ConfigDict) else ()
      raise _unknown(".".join(parts[: i + 1]), known)
    if i < len(parts) - 1:
      holder = holder[name]
  current = holder[parts[-1]]
  if isinstance(current, ml_collections.ConfigDict):
    raise OverrideError(f"{flag} is a group of fields; set them one at a time, e.g. "
                        f"{flag}.{next(iter(current.keys()), 'FIELD')}=VALUE")
  if current is None and holder.get_ref(parts[-1]).get_type() in (bool, int, float, str):
    current = holder.get_ref(parts[-1]).get_type()()   # a placeholder: parse by its type
  value = _parse(flag, text, current)
  if path in PATHS and not value.strip():
    raise OverrideError(f"{flag} is empty (an unset shell variable?); give {PATHS[path]}, "
                        f"or leave {flag} out")
  try:
    holder[parts[-1]] = value
  except (TypeError, ValueError) as e:
    raise OverrideError(f"{flag}: cannot set {text!r}: {e}") from None


def _needs_value(flag: str, text) -> OverrideError:
  return OverrideError(f"{text.arg} needs a value: {flag}=VALUE (given bare, a flag sets a "
                       "true/false field only)")


def _override_sweep(config, axis: list, flag: str, text: str) -> None:
  if isinstance(text, _Bare):
    raise _needs_value(flag, text)
  if not axis:
    spec = _literal(text)
    if not isinstance(spec, dict):
      raise OverrideError(f"{flag} takes a dict, e.g. {flag}=\"{{'loss': ('svm', 'softmax')}}\", "
                          f"got {text!r}")
    for name in spec:
      if name not in config_lib.SWEEPABLE:
        raise _unknown(f"sweep.{name}", config_lib.SWEEPABLE)
    with config.unlocked():
      config.sweep = ml_collections.ConfigDict(
          {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    return
  (name,) = axis
  if name not in config_lib.SWEEPABLE:
    raise _unknown(f"sweep.{name}", config_lib.SWEEPABLE)
  values = parse_values(text)
  with config.sweep.unlocked():
    if name in config.sweep:
      del config.sweep[name]
    config.sweep[name] = values


def swept_overrides(config: ml_collections.ConfigDict, paths) -> None:
  """Refuses `--config.FIELD` for a FIELD that the sweep sets for every member.

  Also refuses `--config.sweep.FIELD` before `--config.sweep={...}`, which replaces the
  whole sweep and would drop it.

  Raises:
    OverrideError: naming the `--config.sweep.FIELD` to use instead.
  """
  paths = list(paths)
  if "sweep" in paths:
    last = len(paths) - 1 - paths[::-1].index("sweep")
    lost = [p for p in paths[:last] if p.startswith("sweep.")]
    if lost:
      raise OverrideError(
          f"--config.sweep={{...}} replaces the whole sweep, so the --config.{lost[0]} "
          f"before it would be lost; put it in the dict, or after --config.sweep")
  for path in paths:
    if path in config_lib.SWEEPABLE and path in config.sweep:
      raise OverrideError(
          f"--config.{path} has no effect: the sweep sets {path} for every member; use "
          f"--config.sweep.{path}=VALUE (one value or a tuple) instead")


def refuse_idle(config: ml_collections.ConfigDict, paths, mode: str, check):
  """`check(config)`, the config's members, once no override among `paths` (in the order
  given) changes nothing in `train.py --mode` `mode`. Refused, the first found of: a
  field the mode does not read (before the sweep's refusals, which would suggest sweeping
  it), a field the sweep sets (`swept_overrides`), a field idle for this config
  (`lincv.config.idle_override`).

  Raises:
    OverrideError: naming the override.
  """
  paths = list(paths)
  distinct = list(dict.fromkeys(paths))
  _raise_first(config_lib.idle_in_mode(config, path, mode) for path in distinct)
  swept_overrides(config, paths)
  members = check(config)
  _raise_first(config_lib.idle_override(config, path, members, mode) for path in distinct)
  return members


def _raise_first(messages) -> None:
  for message in messages:
    if message:
      raise OverrideError(message)


_CONFIG_ARG = re.compile(r"--?config(?:=(.*))?", re.S)
_OVERRIDE_ARG = re.compile(r"--?(no)?config\.([^=]+)(?:=(.*))?", re.S)


def split_args(args: list[str]) -> tuple[str | None, list[tuple[str, str]], list[str]]:
  """Takes the config arguments out of a command line (without the program name).

  `--config FILE[:VARIANT]` (or `--config=...`) names the config; `--config.PATH=VALUE`
  (or `--config.PATH VALUE`) overrides a field; a bare `--config.PATH` followed by
  another flag, or by nothing, means "true", and `--noconfig.PATH` means "false" (for a
  true/false field: `override` refuses a bare flag of any other field, which needs a value).

  Returns:
    (the config spec or None, [(path, value text)] in order, the other arguments).

  Raises:
    OverrideError: `--config` without a file, or given twice.
  """
  spec, overrides, rest = None, [], []
  i = 0
  while i < len(args):
    arg = args[i]
    config = _CONFIG_ARG.fullmatch(arg)
    override = _OVERRIDE_ARG.fullmatch(arg)
    if config:
      if spec is not None:    # the second one silently won
        raise OverrideError("--config given twice; give one config file")
      spec = config.group(1)
      if spec is None:
        if i + 1 == len(args) or args[i + 1].startswith("-"):
          raise OverrideError("--config needs a file: --config configs/NAME.py[:VARIANT]")
        spec, i = args[i + 1], i + 1
      if not spec:
        raise OverrideError("--config needs a file: --config configs/NAME.py[:VARIANT]")
    elif override:
      negated, path, text = override.groups()
      if negated:
        if text is not None:     # --noconfig.data.flip=true turned flip on
          raise OverrideError(f"{arg}: --noconfig.FIELD takes no value; give "
                              f"--config.{path}={text}, or --noconfig.{path} for False")
        text = _Bare("false", arg)
      elif text is None:
        if i + 1 < len(args) and not args[i + 1].startswith("-"):
          text, i = args[i + 1], i + 1
        else:
          text = _Bare("true", arg)
      overrides.append((path, text))
    else:
      rest.append(arg)
    i += 1
  return spec, overrides, rest


# Last: `lincv.config` re-exports this module's names, so whichever of the two is imported
# first, the other finds its names defined (at the top, `import lincv.overrides` first
# failed on the names `lincv.config` imports from here).
from lincv import config as config_lib  # pylint: disable=wrong-import-position  # noqa: E402
