"""The machine description counts the cores the benchmark may run on."""

import os

import pytest

from benchmarks import machine


def test_cores_are_those_of_the_process_affinity(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    monkeypatch.setattr(machine, "matmul_gflops", lambda: 38.25)
    described = machine.describe()
    assert described["cores"] == 1 and described["matmul_gflops"] == pytest.approx(38.2, abs=0.1)
