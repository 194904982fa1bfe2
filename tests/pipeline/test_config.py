import json

import pytest

from pipeline import cli
from pipeline import config as config_lib


def test_defaults_use_in_process_beam_and_sqlite_under_the_root():
    cfg = config_lib.PipelineConfig(pipeline_root="/tmp/r")
    assert cfg.metadata_db == "/tmp/r/metadata.db"
    assert cfg.beam_args == ("--direct_running_mode=in_memory", "--direct_num_workers=1")


def test_load_yaml_and_json(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "model_name: m1\ntrainer:\n  loss: fhn\neval:\n  rsum_lower_bound: 55\n"
    )
    cfg = config_lib.load(tmp_path / "c.yaml")
    assert cfg.model_name == "m1"
    assert dict(cfg.trainer) == {"loss": "fhn"}
    assert cfg.eval.rsum_lower_bound == 55
    (tmp_path / "c.json").write_text(json.dumps({"beam_args": ["--a=1"], "enable_cache": False}))
    cfg = config_lib.load(tmp_path / "c.json")
    assert cfg.beam_args == ("--a=1",) and cfg.enable_cache is False


def test_unknown_keys_are_named(tmp_path):
    (tmp_path / "c.yaml").write_text("modle_name: typo\n")
    with pytest.raises(ValueError, match=r"c.yaml: unknown config keys \['modle_name'\]"):
        config_lib.load(tmp_path / "c.yaml")
    with pytest.raises(ValueError, match=r"eval: unknown config keys \['rsum'\]"):
        config_lib.from_dict({"eval": {"rsum": 1}})


def test_missing_file_and_bad_types():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        config_lib.load("nope.yaml")
    with pytest.raises(ValueError, match="beam_args must be a list"):
        config_lib.from_dict({"beam_args": "--x"})
    with pytest.raises(ValueError, match="'trainer' must be a mapping"):
        config_lib.from_dict({"trainer": [1]})


def test_overrides_parse_yaml_scalars_into_sections():
    cfg = config_lib.apply_overrides(
        config_lib.PipelineConfig(),
        ["trainer.margin=0.2", "eval.rsum_change_threshold=0", "enable_cache=false"],
    )
    assert cfg.trainer["margin"] == 0.2
    assert cfg.eval.rsum_change_threshold == 0
    assert cfg.enable_cache is False
    with pytest.raises(ValueError, match="not of the form key=value"):
        config_lib.apply_overrides(cfg, ["trainer.margin"])
    with pytest.raises(ValueError, match="'model_name' is not a config section"):
        config_lib.apply_overrides(cfg, ["model_name.x=1"])


def test_cli_flags_then_set_overrides_win():
    args = cli.make_parser().parse_args(
        [
            "run",
            "--data",
            "/d",
            "--loss",
            "hn",
            "--epochs",
            "3",
            "--set",
            "trainer.loss=fhn",
            "--beam-args",
            "--direct_running_mode=multi_processing --direct_num_workers=2",
            "--no-cache",
        ]
    )
    cfg = cli.build_config(args)
    assert cfg.data_dir == "/d"
    assert cfg.trainer == {"loss": "fhn", "epochs": 3}
    assert cfg.enable_cache is False
    assert cfg.beam_args[-2:] == (
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    )


def test_help_does_not_import_tfx():
    import subprocess
    import sys

    code = (
        "import sys; from pipeline import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'tfx' not in sys.modules, 'help imported tfx'\n"
        "assert 'tensorflow' not in sys.modules, 'help imported tensorflow'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "run" in out.stdout and "compile" in out.stdout and "search" in out.stdout


def test_validate_checks_component_sections_and_their_coupling():
    config_lib.from_dict({"trainer": {"loss": "fhn"}}).validate()
    with pytest.raises(ValueError, match="config section 'trainer'"):
        config_lib.from_dict({"trainer": {"loss": "nope"}}).validate()
    with pytest.raises(ValueError, match="config section 'transform'"):
        config_lib.from_dict({"transform": {"max_tokenz": 3}}).validate()
    with pytest.raises(ValueError, match="set transform.wordpiece_max_tokens"):
        config_lib.from_dict({"trainer": {"text_tower": "minilm"}}).validate()
