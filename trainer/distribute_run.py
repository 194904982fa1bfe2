"""Starts a training cluster of N processes on this machine, each with its own ``TF_CONFIG``.

Every process runs the same command; ``TF_CONFIG`` names all of them as ``worker`` tasks on
127.0.0.1 (free ports) and gives each its index, as a Kubernetes job or Vertex AI Training would
give each machine its own. Worker 0 is the chief. When one process fails, the others would wait
for it in their next collective forever: they are stopped, and the run fails with the failing
worker's log. Example (docs/distributed.md)::

    python -m trainer.distribute_run --workers 2 -- python -m benchmarks.train_quality
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence

POLL_SECONDS = 0.2


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all sockets held until all are chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports: Sequence[int], index: int) -> str:
    """The ``TF_CONFIG`` JSON of worker ``index`` in a cluster of workers on ``ports``."""
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _stop(processes: Sequence[subprocess.Popen]) -> None:
    """Ends each still-running worker's process group (each started in a session of its own)."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    for process in processes:
        process.wait()


def run_workers(command: Sequence[str], workers: int, log_dir: pathlib.Path,
                timeout: float, env: Mapping[str, str] | None = None) -> None:
    """Runs ``command`` as ``workers`` cluster processes; returns when all succeeded.

    Args:
        command: the program and its arguments, the same for every worker.
        workers: cluster size N.
        log_dir: worker i writes its stdout and stderr to ``worker_<i>.log`` there.
        timeout: seconds before every worker is stopped.
        env: the workers' environment (default: this process's), ``TF_CONFIG`` added.

    Raises:
        RuntimeError: a worker failed or the cluster ran past ``timeout``; the others are
            stopped and the message holds the end of the failing worker's log.

    """
    log_dir.mkdir(parents=True, exist_ok=True)
    ports = free_ports(workers)
    processes, logs = [], []
    try:
        for index in range(workers):
            worker_env = {**(os.environ if env is None else env),
                          "TF_CONFIG": tf_config(ports, index)}
            logs.append(log_dir / f"worker_{index}.log")
            with open(logs[-1], "wb") as log:
                processes.append(subprocess.Popen(list(command), env=worker_env, stdout=log,
                                                  stderr=subprocess.STDOUT,
                                                  start_new_session=True))
        _wait(processes, logs, time.monotonic() + timeout)
    finally:
        _stop(processes)


def _wait(processes: Sequence[subprocess.Popen], logs: Sequence[pathlib.Path],
          deadline: float) -> None:
    """Waits until every worker exited 0; raises on the first failure or at ``deadline``."""
    while True:
        codes = [process.poll() for process in processes]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            raise RuntimeError(f"worker {failed[0]} exited with {codes[failed[0]]}:\n"
                               f"{_tail(logs[failed[0]])}")
        if all(code == 0 for code in codes):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster ran past its timeout; worker 0's log:\n"
                               f"{_tail(logs[0])}")
        time.sleep(POLL_SECONDS)


def _tail(path: pathlib.Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trainer.distribute_run --workers N [--timeout S] -- COMMAND...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    parser.add_argument("--log-dir", type=pathlib.Path,
                        default=pathlib.Path(tempfile.gettempdir()) / "xmodal_workers")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.workers < 1 or not command:
        parser.error("needs --workers >= 1 and a command after --")
    run_workers(command, args.workers, args.log_dir, args.timeout)
    print(f"{args.workers} workers finished; logs in {args.log_dir}", flush=True)
    print(_tail(args.log_dir / "worker_0.log"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
