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
    assert cfg.configured["trainer"] == {"loss": "fhn"}
    assert cfg.trainer.loss == "fhn" and cfg.trainer.text_tower == "minilm"
    assert cfg.eval.rsum_lower_bound == 55
    (tmp_path / "c.json").write_text(json.dumps({"beam_args": ["--a=1"], "enable_cache": False}))
    cfg = config_lib.load(tmp_path / "c.json")
    assert cfg.beam_args == ("--a=1",) and cfg.enable_cache is False


def test_unknown_keys_are_named(tmp_path):
    (tmp_path / "c.yaml").write_text("modle_name: typo\n")
    with pytest.raises(config_lib.ConfigError, match=r"c.yaml: modle_name: unknown config key"):
        config_lib.load(tmp_path / "c.yaml")
    with pytest.raises(config_lib.ConfigError, match=r"<dict>: eval.rsum: unknown config key"):
        config_lib.from_dict({"eval": {"rsum": 1}})


def test_missing_file_and_bad_types():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        config_lib.load("nope.yaml")
    with pytest.raises(ValueError, match="beam_args must be a list"):
        config_lib.from_dict({"beam_args": "--x"})
    with pytest.raises(ValueError, match="'trainer' must be a mapping"):
        config_lib.from_dict({"trainer": [1]})
    with pytest.raises(config_lib.ConfigError, match="enable_cache: must be true or false"):
        config_lib.from_dict({"enable_cache": "yes please"})


def test_overrides_parse_yaml_scalars_into_sections():
    cfg = config_lib.apply_overrides(
        config_lib.PipelineConfig(),
        ["trainer.margin=0.2", "eval.rsum_change_threshold=0", "enable_cache=false"],
    )
    assert cfg.trainer.margin == 0.2
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
    assert cfg.configured["trainer"] == {"loss": "fhn", "epochs": 3}
    assert (cfg.trainer.loss, cfg.trainer.epochs) == ("fhn", 3)
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


def test_component_sections_and_their_coupling_are_checked_when_built():
    assert config_lib.from_dict({"trainer": {"loss": "fhn"}}).validate().trainer.loss == "fhn"
    with pytest.raises(config_lib.ConfigError, match=r"<dict>: trainer.loss: TrainerConfig.loss"):
        config_lib.from_dict({"trainer": {"loss": "nope"}})
    with pytest.raises(config_lib.ConfigError, match="transform.max_tokenz: unknown config key"):
        config_lib.from_dict({"transform": {"max_tokenz": 3}})
    with pytest.raises(config_lib.ConfigError, match="transform.max_tokens: .* integer >= 1"):
        config_lib.from_dict({"transform": {"max_tokens": 0}})
    with pytest.raises(config_lib.ConfigError, match="set transform.wordpiece_max_tokens"):
        config_lib.from_dict({"trainer": {"text_tower": "minilm"},
                              "transform": {"wordpiece_max_tokens": None}})


@pytest.mark.parametrize("eval_section, key, message", [
    ({"rsum_lower_bound": "abc"}, "eval.rsum_lower_bound", "must be a number, got 'abc'"),
    ({"rsum_change_threshold": True}, "eval.rsum_change_threshold", "must be a number"),
    ({"metric_bounds": {"t2i_r1": {"lowr": 10}}}, "eval.metric_bounds.t2i_r1.lowr",
     "unknown bound"),
    ({"metric_bounds": {"t2i_r1": {"lower": "x"}}}, "eval.metric_bounds.t2i_r1.lower",
     "must be a number"),
    ({"metric_bounds": {"t2i_r1": {"lower": 9, "upper": 1}}}, "eval.metric_bounds.t2i_r1",
     "lower bound exceeds upper"),
    ({"metric_bounds": {"t2i_r1": 5}}, "eval.metric_bounds.t2i_r1", "must be a mapping"),
])
def test_eval_values_are_type_checked_at_load(eval_section, key, message):
    with pytest.raises(config_lib.ConfigError, match=f"<dict>: {key}: {message}"):
        config_lib.from_dict({"eval": eval_section})


def test_images_backend_is_one_of_the_featurizer_backends():
    assert config_lib.from_dict({"images_backend": "tf"}).images_backend == "tf"
    assert config_lib.from_dict({}).images_backend == "tflite"
    with pytest.raises(config_lib.ConfigError,
                       match=r"<dict>: images_backend: must be one of \['tflite', 'tf'\], "
                             r"got 'keras'"):
        config_lib.from_dict({"images_backend": "keras"})


def test_eval_bounds_become_floats():
    cfg = config_lib.from_dict({"eval": {"rsum_lower_bound": 50,
                                         "metric_bounds": {"t2i_medr": {"upper": 20}}}})
    assert cfg.eval.rsum_lower_bound == 50.0 and isinstance(cfg.eval.rsum_lower_bound, float)
    assert cfg.eval.metric_bounds == {"t2i_medr": {"upper": 20.0}}


def test_syntax_errors_name_the_file_line_and_column(tmp_path):
    (tmp_path / "c.yaml").write_text("trainer:\n  loss: fhn\n margin: [0.2\n")
    with pytest.raises(config_lib.ConfigError, match=r"c.yaml:3:\d+: invalid YAML") as err:
        config_lib.load(tmp_path / "c.yaml")
    assert "<unicode string>" not in str(err.value)
    (tmp_path / "c.json").write_text('{"trainer": {"loss": "fhn",}}')
    with pytest.raises(config_lib.ConfigError, match=r"c.json:1:\d+: invalid JSON"):
        config_lib.load(tmp_path / "c.json")


def test_override_errors_name_the_command_line_and_key():
    with pytest.raises(config_lib.ConfigError, match="command line: trainer.margin: .*margin"):
        config_lib.apply_overrides(config_lib.PipelineConfig(), ["trainer.margin=-1"])
    with pytest.raises(config_lib.ConfigError, match="command line: eval.rsum_lower_bound"):
        config_lib.apply_overrides(config_lib.PipelineConfig(), ["eval.rsum_lower_bound=abc"])


BAD_CONFIGS = {
    "top level": ("enable_cache: maybe\n", "enable_cache"),
    "transform": ("transform:\n  max_tokens: 0\n", "transform.max_tokens"),
    "trainer": ("trainer:\n  margin: -1\n", "trainer.margin"),
    "eval": ("eval:\n  rsum_lower_bound: abc\n", "eval.rsum_lower_bound"),
    "eval.metric_bounds": ("eval:\n  metric_bounds:\n    t2i_r1: {lowr: 3}\n",
                           "eval.metric_bounds.t2i_r1.lowr"),
    "yaml syntax": ("trainer: {loss: fhn\n", None),
}


@pytest.mark.parametrize("command", ["run", "retrain"])
@pytest.mark.parametrize("section", sorted(BAD_CONFIGS))
def test_config_errors_are_fast_one_line_and_write_nothing(tmp_path, section, command):
    import subprocess
    import sys
    import time

    text, key = BAD_CONFIGS[section]
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    root = tmp_path / "root"
    argv = [sys.executable, "-m", "pipeline", command, "--config", str(config),
            "--pipeline-root", str(root), "--data", str(tmp_path)]
    started = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    assert out.returncode == 2, out.stderr
    assert seconds < 5.0, f"config error took {seconds:.1f}s"
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {config}")
    if key is None:  # a syntax error is named by line and column instead
        assert lines[0].startswith(f"error: {config}:2:1: invalid YAML"), lines[0]
    else:
        assert f": {key}: " in lines[0], lines[0]
    assert out.stdout == ""
    assert not root.exists()


def test_abbreviated_options_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.make_parser().parse_args(["run", "--epoch", "3"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --epoch" in capsys.readouterr().err


@pytest.mark.parametrize("accelerator, ok", [("", True), ("NVIDIA_TESLA_T4:1", True),
                                             ("NVIDIA_TESLA_T4", False), (":2", False),
                                             ("T4:0", False)])
def test_the_training_jobs_accelerator_is_type_and_count(accelerator, ok):
    job = {"machine_type": "n1-standard-16", "accelerator": accelerator}
    if ok:
        assert config_lib.from_dict({"training_job": job}).training_job.accelerator == accelerator
    else:
        with pytest.raises(config_lib.ConfigError, match="training_job.accelerator: .*TYPE:COUNT"):
            config_lib.from_dict({"training_job": job})


def test_the_training_job_is_the_pipelines_and_not_the_trainers():
    config = config_lib.apply_overrides(config_lib.PipelineConfig(), [
        "training_job.workers=4", "training_job.machine_type=n1-standard-16"])
    assert config.training_job == config_lib.TrainingJob(4, "n1-standard-16", "")
    with pytest.raises(config_lib.ConfigError, match="trainer.workers: unknown config key"):
        config_lib.apply_overrides(config_lib.PipelineConfig(), ["trainer.workers=4"])
    with pytest.raises(config_lib.ConfigError, match="training_job.workers: must be an integer"):
        config_lib.apply_overrides(config_lib.PipelineConfig(), ["training_job.workers=0"])
