"""Closed-loop HTTP load on the search service: the service process, the clients, the figures.

Used by ``benchmarks.bench_serve``. Everything is bounded: the service must answer within
``START_TIMEOUT_S``, each request within ``REQUEST_TIMEOUT_S``, and the service is stopped (and
killed if it does not stop) whatever happens.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable

import numpy as np
import psutil

START_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 30.0
TEXT_QUERIES = 200
PHOTO_QUERIES = 50
WARMUP_S = 5.0


@dataclasses.dataclass(frozen=True)
class LoadSpec:
    """Clients, duration and when (seconds in) a new version is pushed."""

    clients: int
    seconds: float
    push_at: float


@dataclasses.dataclass
class Sample:
    """One request: kind, start (seconds into the run), latency, HTTP status, answering version."""

    kind: str
    start: float
    seconds: float
    status: int
    version: int | None
    error: str = ""


@dataclasses.dataclass
class Report:
    """What a run measured."""

    samples: list[Sample]
    pushed_version: int
    pushed_at: float
    rss_mib: dict[str, float]
    machine: dict


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(serving_dir: pathlib.Path, model: str, photos: pathlib.Path, port: int,
                  log: pathlib.Path) -> subprocess.Popen:
    """``python -m pipeline serve`` in its own process group, output to ``log``."""
    command = [sys.executable, "-m", "pipeline", "serve", "--port", str(port), "--serving-dir",
               str(serving_dir), "--model-name", model, "--photos", str(photos),
               "--poll-seconds", "1"]
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                cwd=pathlib.Path(__file__).resolve().parents[1],
                                start_new_session=True)


def wait_healthy(process: subprocess.Popen, port: int, log: pathlib.Path,
                 timeout_s: float = START_TIMEOUT_S) -> dict:
    """The service's ``/api/healthz`` once it answers; RuntimeError if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited ({process.returncode}): "
                               f"{log.read_text(errors='replace')[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/healthz")
            answer = connection.getresponse()
            if answer.status == 200:
                return json.loads(answer.read())
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the service did not answer within {timeout_s:.0f} s")


def stop_service(process: subprocess.Popen) -> None:
    """SIGINT (uvicorn's graceful stop), then SIGKILL of its group after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own process group (start_new_session)
            process.wait()


def multipart(data: bytes) -> tuple[bytes, str]:
    """A multipart body with ``data`` as the ``photo`` field, and its content type."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; "
            "filename=\"query.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _request(connection: http.client.HTTPConnection, kind: str, query: str | bytes,
             ) -> tuple[int, dict]:
    if kind == "text":
        connection.request("GET", "/api/search?" + urllib.parse.urlencode({"q": query, "k": 10}))
    else:
        body, content_type = multipart(query)
        connection.request("POST", "/api/search/image?k=10", body=body,
                           headers={"Content-Type": content_type})
    answer = connection.getresponse()
    return answer.status, json.loads(answer.read())


def client(port: int, number: int, queries: dict[str, list], t0: float, stop_at: float,
           out: list[Sample]) -> None:
    """One closed-loop client: alternates text and photo queries until ``stop_at``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    i = number
    while time.monotonic() < stop_at:
        kind = "text" if i % 2 == 0 else "photo"
        query = queries[kind][i % len(queries[kind])]
        start = time.monotonic()
        try:
            status, body = _request(connection, kind, query)
            error = "" if status == 200 else body.get("error", "")
            version = body.get("model_version")
        except (OSError, http.client.HTTPException, ValueError) as err:
            status, version, error = 0, None, f"{type(err).__name__}: {err}"
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        out.append(Sample(kind, start - t0, time.monotonic() - start, status, version, error))
        i += 1
    connection.close()


def load_queries(data: pathlib.Path) -> dict[str, list]:
    """Dev captions (first of each image) and dev JPEGs."""
    dev = (data / "Flickr_8k.devImages.txt").read_text(encoding="utf-8").split()
    first: dict[str, str] = {}
    for line in (data / "Flickr8k.token.txt").read_text(encoding="utf-8").splitlines():
        caption_id, _, text = line.partition("\t")
        first.setdefault(caption_id.split("#")[0], text)
    captions = [first[name] for name in dev[:TEXT_QUERIES]]
    photos = [(data / "dev_images" / name).read_bytes() for name in dev[:PHOTO_QUERIES]]
    return {"text": captions, "photo": photos}


def _rss_mib(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def _drive(port: int, queries: dict[str, list], load: LoadSpec, push: Callable[[], int] | None,
           service: psutil.Process) -> tuple[list[Sample], int, float, float]:
    """Runs the clients and pushes at ``load.push_at`` (unless ``push`` is None).

    Returns:
        The samples, the pushed version (0: none), the push time and the service's peak RSS.

    """
    samples: list[Sample] = []
    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(port, n, queries, t0, t0 + load.seconds,
                                                     samples)) for n in range(load.clients)]
    for thread in threads:
        thread.start()
    pushed_version, pushed_at, peak = 0, 0.0, 0.0
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, _rss_mib(service))
        if push and not pushed_version and time.monotonic() - t0 >= load.push_at:
            pushed_version, pushed_at = push(), time.monotonic() - t0
        time.sleep(0.2)
    for thread in threads:
        thread.join()
    return samples, pushed_version, pushed_at, peak


def run(serving_dir: pathlib.Path, model: str, data: pathlib.Path, load: LoadSpec,
        push: Callable[[], int]) -> Report:
    """Starts the service, warms it up, runs the load with a push in the middle, stops it."""
    from benchmarks import machine

    port, log = free_port(), serving_dir.parent / "service.log"
    process = start_service(serving_dir, model, data / "dev_images", port, log)
    try:
        wait_healthy(process, port, log)
        service = psutil.Process(process.pid)
        queries = load_queries(data)
        # Warm-up at full concurrency, so that "before" holds every thread's buffers already.
        _drive(port, queries, dataclasses.replace(load, seconds=WARMUP_S), None, service)
        rss = {"before (after warm-up)": _rss_mib(service)}
        samples, version, pushed_at, peak = _drive(port, queries, load, push, service)
        rss.update({"peak": max(peak, _rss_mib(service)), "after": _rss_mib(service)})
    finally:
        stop_service(process)
    return Report(samples, version, pushed_at, rss, machine.describe())


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1e3) if values else float("nan")


def print_summary(report: Report, load: LoadSpec, model: str) -> bool:
    """Prints the figures (the ``== summary`` block).

    Returns:
        True when no request failed and the new version answered every later request.

    """
    samples = report.samples
    failed = [s for s in samples if s.status != 200]
    for sample in failed[:5]:
        print(f"failed: {sample.kind} at {sample.start:.1f} s: {sample.status} {sample.error}")
    new = [s.start + s.seconds for s in samples if s.version == report.pushed_version]
    after_switch = [s for s in samples if new and s.start > min(new)]
    old_after = sum(1 for s in after_switch if s.version != report.pushed_version)
    machine = report.machine
    print(f"== summary: bench_serve ({load.clients} clients, {load.seconds:.0f} s, "
          f"text and photo queries alternating, model {model}, 127.0.0.1)")
    print(f"throughput: {len(samples) / load.seconds:.1f} requests/s ({len(samples)} requests: "
          f"{sum(s.kind == 'text' for s in samples)} text, "
          f"{sum(s.kind == 'photo' for s in samples)} photo)")
    print(f"failed requests: {len(failed)}")
    for kind in ("text", "photo"):
        times = [s.seconds for s in samples if s.kind == kind and s.status == 200]
        print(f"latency {kind}: p50 {_ms(times, 50):.1f} ms, p99 {_ms(times, 99):.1f} ms")
    switch = f"{min(new) - report.pushed_at:.1f} s later" if new else "never"
    print(f"new version: pushed at {report.pushed_at:.1f} s, first answer from it {switch}, "
          f"answers from the old version after that: {old_after}")
    print("service memory (RSS): " + ", ".join(f"{k} {v:.0f} MiB" for k, v in
                                                report.rss_mib.items()))
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, float32 matmul "
          f"{machine['matmul_gflops']} GFLOP/s, load {machine['load']}")
    return not failed and bool(new) and not old_after
