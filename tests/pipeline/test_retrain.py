import os

from pipeline import config as config_lib
from pipeline import run as run_lib


def test_newest_span_reads_span_folders(tmp_path):
    assert run_lib.newest_span(str(tmp_path)) is None
    for name in ("span-1", "span-10", "span-2", "spanx", "other"):
        (tmp_path / name).mkdir()
    assert run_lib.newest_span(str(tmp_path)) == 10


def test_retrain_lock_refuses_a_second_invocation(tmp_path):
    config = config_lib.PipelineConfig(pipeline_root=str(tmp_path), data_dir=str(tmp_path))
    with run_lib.exclusive_lock(os.path.join(tmp_path, ".retrain.lock")) as acquired:
        assert acquired
        with run_lib.exclusive_lock(os.path.join(tmp_path, ".retrain.lock")) as second:
            assert not second
        assert run_lib.retrain(config) == 75
    with run_lib.exclusive_lock(os.path.join(tmp_path, ".retrain.lock")) as again:
        assert again


def test_processed_spans_is_empty_without_metadata(tmp_path):
    config = config_lib.PipelineConfig(pipeline_root=str(tmp_path))
    assert run_lib.processed_spans(config) == set()
