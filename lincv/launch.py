"""Starts the processes of one distributed run on this machine, to rehearse a multi-host run.

    python -m lincv.launch --processes 2 -- train.py --config configs/default.py:smoke \
        --workdir runs/two

starts `python train.py ...` N times, each with `--coordinator 127.0.0.1:PORT` (a free
port), `--num_processes N` and its own `--process_id`, on the CPU (`JAX_PLATFORMS=cpu`
unless set) with `--devices_per_process` devices each. Their output goes to this
terminal; the launcher exits with the first non-zero exit status of a process (and then
stops the others), or 0 when all succeed.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time

GRACE_SECONDS = 5.0   # a process told to stop is killed after this long
MAX_PORT = 65535
POLL_SECONDS = 0.1


def free_port() -> int:
  """A TCP port of 127.0.0.1 that no one listens on now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def commands(program: list[str], processes: int, port: int) -> list[list[str]]:
  """The command line of each process: `program` (a .py file runs under this Python) with
  the three flags of `jax.distributed`."""
  if program[0].endswith(".py"):
    program = [sys.executable, *program]
  return [[*program, f"--coordinator=127.0.0.1:{port}", f"--num_processes={processes}",
           f"--process_id={i}"] for i in range(processes)]


def environment(devices_per_process: int, base: dict | None = None) -> dict:
  """The environment of each process: CPU unless JAX_PLATFORMS says otherwise, and
  `devices_per_process` CPU devices (XLA_FLAGS's own count replaced)."""
  env = dict(os.environ if base is None else base)
  env.setdefault("JAX_PLATFORMS", "cpu")
  flags = re.sub(r"--xla_force_host_platform_device_count=\S*", "", env.get("XLA_FLAGS", ""))
  env["XLA_FLAGS"] = " ".join(
      [*flags.split(), f"--xla_force_host_platform_device_count={devices_per_process}"])
  return env


def exit_status(returncode: int) -> int:
  """A process's exit status as a shell reports it (128 + N for signal N)."""
  return 128 - returncode if returncode < 0 else returncode


def supervise(procs: list[subprocess.Popen]) -> int:
  """Waits for every process; once one fails, stops the others. The first failure's exit
  status, or 0."""
  status = 0
  while None in [p.poll() for p in procs]:     # every process polled, each time
    failed = [p for p in procs if p.returncode not in (None, 0)]
    if failed:
      status = exit_status(failed[0].returncode)
      stop(procs)
      break
    time.sleep(POLL_SECONDS)
  if status == 0:
    failed = [p for p in procs if p.returncode != 0]
    status = exit_status(failed[0].returncode) if failed else 0
  return status


def stop(procs: list[subprocess.Popen]) -> None:
  """SIGTERM to each process still running, SIGKILL after `GRACE_SECONDS`."""
  for p in procs:
    if p.poll() is None:
      p.send_signal(signal.SIGTERM)
  deadline = time.monotonic() + GRACE_SECONDS
  for p in procs:
    try:
      p.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      p.kill()
      p.wait()


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m lincv.launch",
      description="Starts N local processes of one jax.distributed run and forwards their "
                  "exit status.")
  p.add_argument("--processes", type=int, default=2, help="how many processes (default 2)")
  p.add_argument("--port", type=int, default=None,
                 help="the coordinator's port on 127.0.0.1 (default: a free one)")
  p.add_argument("--devices_per_process", type=int, default=1,
                 help="CPU devices of each process (default 1)")
  p.add_argument("command", nargs=argparse.REMAINDER,
                 help="after --: the program and its arguments, e.g. train.py --config ...")
  return p


def main(argv: list[str] | None = None) -> int:
  p = parser()
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  command = args.command[1:] if args.command[:1] == ["--"] else args.command
  if not command:
    p.error("no command to run; write it after --, e.g. -- train.py --config FILE")
  if args.processes < 1:
    p.error(f"--processes must be >= 1, got {args.processes}")
  if args.devices_per_process < 1:
    p.error(f"--devices_per_process must be >= 1, got {args.devices_per_process}")
  if args.port is not None and not 1 <= args.port <= MAX_PORT:
    p.error(f"--port must be a TCP port in 1..{MAX_PORT}, got {args.port}; leave --port out "
            "for a free one")
  port = free_port() if args.port is None else args.port
  env = environment(args.devices_per_process)
  procs = [subprocess.Popen(c, env=env) for c in commands(command, args.processes, port)]
  try:
    return supervise(procs)
  except KeyboardInterrupt:
    stop(procs)  # they got the Ctrl-C too; those still running are stopped
    return 130


if __name__ == "__main__":
  sys.exit(main())
