"""The paper table end to end on generated data: selection on dev only, any test image set."""

import numpy as np
import pytest

from benchmarks import paper_data, paper_table
from benchmarks.annotations import CROWD_FILE, EXPERT_FILE
from tests.benchmarks.paper_dataset import write_dataset
from trainer.config import TrainerConfig

DATA_LISTS = {"Flickr_8k.trainImages.txt": 16, "Flickr_8k.devImages.txt": 8}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """DATA (train + dev) and two test directories with image sets of their own."""
    root = tmp_path_factory.mktemp("paper_table")
    write_dataset(root / "data", DATA_LISTS, "d", seed=0)
    write_dataset(root / "test_a", {"Flickr_8k.testImages.txt": 6}, "t", seed=1)
    write_dataset(root / "test_b", {"Flickr_8k.testImages.txt": 9}, "u", seed=2)
    (root / "test_a" / EXPERT_FILE).write_text(
        "t0_x.jpg\tt4_x.jpg#1\t4\t4\t3\nt1_x.jpg\tt0_x.jpg#0\t1\t1\t2\n")
    (root / "test_a" / CROWD_FILE).write_text("t2_x.jpg\tt2_x.jpg#0\t1.0\t3\t0\n")
    return root


def _table(folders, *extra):
    args = paper_table._parse_args(["--data", str(folders / "data"), "--work-dir",
                                    str(folders / "work"), *extra])
    return paper_table.run_table(args)


def _by_setting(report):
    return {(run["loss"], run["seed"]): run for run in report["runs"]}


def test_selection_uses_dev_only_and_reports_on_another_image_set(folders):
    common = ("--losses", "hn", "fhn", "--seeds", "2", "--epochs", "3")
    report_a = _table(folders, "--test-data", str(folders / "test_a"), *common)
    report_b = _table(folders, "--test-data", str(folders / "test_b"), *common)
    runs_a, runs_b = _by_setting(report_a), _by_setting(report_b)
    assert sorted(runs_a) == [("fhn", 0), ("fhn", 1), ("hn", 0), ("hn", 1)]
    for setting, run in runs_a.items():
        assert run["best_epoch"] == runs_b[setting]["best_epoch"]
        np.testing.assert_allclose(run["dev_rsum"], runs_b[setting]["dev_rsum"], rtol=1e-6)
        assert run["dev_rsum"][run["best_epoch"] - 1] == max(run["dev_rsum"])
    # the reports are on the test galleries (6 vs 9 images), not on dev
    assert report_a["splits"] == {"train": [16, 48], "dev": [8, 24], "test": [6, 18]}
    assert report_b["splits"]["test"] == [9, 27]
    assert any(run["test"]["t2i_meanr"] != runs_b[key]["test"]["t2i_meanr"]
               for key, run in runs_a.items())
    rsums = [runs_a["fhn", seed]["test"]["rsum"] for seed in (0, 1)]
    assert report_a["summary"]["fhn/in_batch"]["metrics"]["rsum"] == pytest.approx(
        [np.mean(rsums), np.std(rsums, ddof=1)])
    assert "fhn − hn / in_batch" in report_a["markdown"]["test"]
    judged = runs_a["hn", 0]["judgments"]
    assert judged[EXPERT_FILE]["t2i_queries"] == 1 and judged[CROWD_FILE]["i2t_queries"] == 1
    assert set(report_a["markdown"]) == {"test", EXPERT_FILE, CROWD_FILE}
    assert set(report_b["markdown"]) == {"test"}


def test_tokens_mode_reports_on_dev_by_default(folders):
    report = _table(folders, "--text-input", "tokens", "--losses", "mhn", "--seeds", "1",
                    "--epochs", "2")
    (run,) = report["runs"]
    assert run["test"]["rsum"] == pytest.approx(run["dev_rsum"][run["best_epoch"] - 1])
    for key in ("i2t_ndcg", "t2i_ndcg", "i2i_ndcg", "t2t_ndcg"):
        assert 0.0 < run["test"][key] <= 1.0
    assert run["judgments"] == {}


def test_sh_runs_once_across_minings():
    assert paper_table.settings(["sh", "hn"], ["in_batch", "global"], 2) == [
        ("sh", "in_batch", 0), ("sh", "in_batch", 1), ("hn", "in_batch", 0),
        ("hn", "in_batch", 1), ("hn", "global", 0), ("hn", "global", 1)]


def test_a_test_directory_without_a_split_list_is_refused(folders, tmp_path):
    write_dataset(tmp_path, {"Flickr_8k.trainImages.txt": 2, "Flickr_8k.devImages.txt": 2},
                  "z", seed=3)
    with pytest.raises(ValueError, match="exactly one Flickr_8k"):
        _table(folders, "--test-data", str(tmp_path), "--losses", "hn", "--seeds", "1")


def test_minilm_mode_trains_the_pipeline_default_model(folders):
    transform_config, config = paper_table.base_configs("minilm", 2)
    assert (config.text_tower, config.minilm_trainable_layers, config.epochs) == ("minilm", 1, 2)
    assert transform_config == {}  # TransformConfig's defaults: WordPiece ids of 64
    assert paper_table.base_configs("features", 2) == (
        {"wordpiece_max_tokens": None}, TrainerConfig(text_tower="linear", epochs=2))
    report = _table(folders, "--text-input", "minilm", "--losses", "fhn", "--seeds", "1",
                    "--epochs", "2")
    (run,) = report["runs"]
    assert len(run["dev_rsum"]) == 2 and run["best_epoch"] in (1, 2)
    assert 0.0 < run["test"]["rsum"] <= 600.0
    for key in ("i2t_ndcg", "t2i_ndcg", "i2i_ndcg", "t2t_ndcg"):
        assert 0.0 < run["test"][key] <= 1.0
    # the WordPiece Transform is cached apart from the features-mode one
    token_file = [folders / "data" / "Flickr8k.token.txt"]
    assert (paper_data._fingerprint(token_file, {})
            != paper_data._fingerprint(token_file, {"wordpiece_max_tokens": None}))
