"""bench_eval's Beam line: a net rate only where the work stands out of the start-up noise."""

import pytest

from benchmarks import bench_eval


@pytest.fixture
def beam_runs(monkeypatch):
    """Makes ``_beam_seconds`` return the given wall times in turn (10-caption run first)."""
    def use(*seconds):
        times = iter(seconds)
        monkeypatch.setattr(bench_eval, "_beam_seconds", lambda *args: next(times))
    return use


def test_net_rate_subtracts_the_fixed_cost(beam_runs, capsys):
    beam_runs(14.5, 17.5)
    net = bench_eval._beam_line(["i"] * 3000, ["c"] * 3000, 2, 256)
    assert net == pytest.approx(3000 / 3.0)
    assert "1000 captions/s net of the 14.5 s fixed cost" in capsys.readouterr().out


def test_start_up_noise_larger_than_the_work_gives_no_rate(beam_runs, capsys):
    beam_runs(22.9, 21.1)  # the 10-caption run took longer than the whole run
    assert bench_eval._beam_line(["i"] * 5000, ["c"] * 5000, 2, 256) is None
    out = capsys.readouterr().out
    assert "net rate not measurable" in out and "22.9 s" in out
    assert "237 captions/s end to end (21.1 s)" in out
