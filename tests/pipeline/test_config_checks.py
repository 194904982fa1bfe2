"""What the configuration refuses: model names, non-finite floats, duplicate YAML keys; and the
command line's path and name flags, taken verbatim."""

import math

import pytest

from pipeline import cli
from pipeline import config as config_lib
from serving import layout
from trainer.config import TrainerConfig


def _config_from_argv(*argv: str) -> config_lib.PipelineConfig:
    return cli.build_config(cli.make_parser().parse_args(["run", *argv]))


# ---- model names ------------------------------------------------------------------------------

def test_a_model_name_ending_in_the_search_suffix_is_refused():
    name = "xmodal" + layout.SEARCH_MODEL_SUFFIX
    with pytest.raises(config_lib.ConfigError,
                       match=r"<dict>: model_name: 'xmodal_search' ends in '_search'.*search "
                             r"model of a model 'xmodal'") as err:
        config_lib.from_dict({"model_name": name})
    assert err.value.key == "model_name"
    with pytest.raises(config_lib.ConfigError, match=r"command line: model_name: 'xmodal_search'"):
        _config_from_argv("--model-name", name)
    # The suffix alone is refused too; a name merely containing it is not.
    with pytest.raises(config_lib.ConfigError, match="<dict>: model_name: '_search'"):
        config_lib.from_dict({"model_name": "_search"})
    assert config_lib.from_dict({"model_name": "xmodal_search2"}).model_name == "xmodal_search2"


@pytest.mark.parametrize("name", [
    "x modal", "xmodal\n", "x\x00modal", "x\\modal", "x/modal", ".xmodal", "..", "-xmodal",
    "x\tmodal", "modèle", "x" * 249,
])
def test_model_names_that_are_not_plain_folder_names_are_refused(name):
    with pytest.raises(config_lib.ConfigError,
                       match=r"<dict>: model_name: .*(letters, digits|NUL character)"):
        config_lib.from_dict({"model_name": name})


@pytest.mark.parametrize("name", ["xmodal", "xmodal-v2", "x.modal_2", "7", "X" * 248])
def test_plain_model_names_are_accepted(name):
    assert config_lib.from_dict({"model_name": name}).model_name == name


# ---- command-line paths and names are verbatim strings ----------------------------------------

def test_path_and_name_flags_are_taken_verbatim_not_as_yaml():
    cfg = _config_from_argv(
        "--pipeline-root", "/data/x #1", "--serving-dir", "/srv/models # prod",
        "--model-name", "yes", "--data", "/d/[a]: b", "--images", "{img}")
    assert cfg.pipeline_root == "/data/x #1"
    assert cfg.serving_dir == "/srv/models # prod"
    assert cfg.model_name == "yes"
    assert cfg.data_dir == "/d/[a]: b"
    assert cfg.images_dir == "{img}"
    cfg = _config_from_argv("--model-name", "null", "--pipeline-root", "123")
    assert (cfg.model_name, cfg.pipeline_root) == ("null", "123")


def test_named_flags_and_set_overrides_keep_their_order_and_types():
    cfg = _config_from_argv("--epochs", "3", "--loss", "hn", "--set", "trainer.loss=fhn",
                            "model_name=m2")
    assert cfg.configured["trainer"] == {"epochs": 3, "loss": "fhn"}
    assert cfg.model_name == "m2"  # --set still wins over the named flag's default


def test_set_values_are_still_yaml_and_say_how_to_keep_text():
    with pytest.raises(config_lib.ConfigError,
                       match=r"command line: model_name: must be a non-empty string, got True"):
        config_lib.apply_overrides(config_lib.PipelineConfig(), ["model_name=yes"])
    quoted = _config_from_argv("--set", "model_name='yes'")  # README: --set model_name="'yes'"
    assert quoted.model_name == "yes"


# ---- every float setting is finite and in range -----------------------------------------------

@pytest.mark.parametrize("override, key", [
    ("trainer.learning_rate=.nan", "trainer.learning_rate"),
    ("trainer.margin=.inf", "trainer.margin"),
    ("trainer.intra_margin=.inf", "trainer.intra_margin"),
    ("trainer.clip_norm=.inf", "trainer.clip_norm"),
    ("trainer.memory_budget_gb=.inf", "trainer.memory_budget_gb"),
    ("trainer.minilm_lr_multiplier=.nan", "trainer.minilm_lr_multiplier"),
    ("trainer.dropout=.nan", "trainer.dropout"),
    ("eval.rsum_lower_bound=.inf", "eval.rsum_lower_bound"),
    ("eval.rsum_change_threshold=-.inf", "eval.rsum_change_threshold"),
    ("eval.metric_bounds={t2i_medr: {upper: .inf}}", "eval.metric_bounds.t2i_medr.upper"),
])
def test_non_finite_floats_are_refused_naming_the_key(override, key):
    with pytest.raises(config_lib.ConfigError, match=rf"command line: {key}: .*finite"):
        config_lib.apply_overrides(config_lib.PipelineConfig(), [override])


@pytest.mark.parametrize("field", ["learning_rate", "margin", "lr_decay_factor", "clip_norm"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_trainer_config_refuses_non_finite_floats(field, value):
    with pytest.raises(ValueError, match=rf"TrainerConfig.{field}=.*must be a finite number"):
        TrainerConfig(**{field: value})


@pytest.mark.parametrize("section, key", [
    ({"rsum_lower_bound": 601}, "eval.rsum_lower_bound"),
    ({"rsum_lower_bound": -1}, "eval.rsum_lower_bound"),
    ({"rsum_change_threshold": 600.5}, "eval.rsum_change_threshold"),
    ({"rsum_change_threshold": -601}, "eval.rsum_change_threshold"),
])
def test_rsum_thresholds_are_within_the_rsum_range(section, key):
    with pytest.raises(config_lib.ConfigError, match=rf"<dict>: {key}: must be within "
                                                     r"(0|-600)\.\.600, got"):
        config_lib.from_dict({"eval": section})
    bounds = config_lib.from_dict({"eval": {"rsum_lower_bound": 600,
                                            "rsum_change_threshold": -600}}).eval
    assert (bounds.rsum_lower_bound, bounds.rsum_change_threshold) == (600.0, -600.0)


# ---- duplicate keys ---------------------------------------------------------------------------

def test_duplicate_yaml_keys_are_refused_naming_the_key_and_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  margin: 0.2\n  loss: fhn\n  margin: 0.3\nmodel_name: m\n")
    with pytest.raises(config_lib.ConfigError,
                       match=rf"^{path}:4: trainer.margin: duplicate key \(first at line 2\)"):
        config_lib.load(path)
    path.write_text("model_name: a\neval: {rsum_lower_bound: 5}\nmodel_name: b\n")
    with pytest.raises(config_lib.ConfigError,
                       match=rf"^{path}:3: model_name: duplicate key \(first at line 1\)"):
        config_lib.load(path)
    path.write_text("eval:\n  metric_bounds:\n    t2i_r1: {lower: 1, lower: 2}\n")
    with pytest.raises(config_lib.ConfigError, match=rf"^{path}:3: "
                       r"eval.metric_bounds.t2i_r1.lower: duplicate key \(first at line 3\)"):
        config_lib.load(path)


def test_yaml_without_duplicates_still_loads_anchors_and_merges(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trainer: &t {loss: fhn, margin: 0.3}\n"
                    "transform: {max_tokens: 16}\n"
                    "eval:\n  metric_bounds:\n    t2i_r1: &b {lower: 1}\n    i2t_r1: *b\n")
    cfg = config_lib.load(path)
    assert cfg.configured["trainer"] == {"loss": "fhn", "margin": 0.3}
    assert cfg.transform.max_tokens == 16
    assert cfg.eval.metric_bounds == {"t2i_r1": {"lower": 1.0}, "i2t_r1": {"lower": 1.0}}


def test_duplicate_json_keys_are_refused_naming_the_key(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"trainer": {"margin": 0.2,\n "margin": 0.3}}')
    with pytest.raises(config_lib.ConfigError,
                       match=rf"^{path}: trainer.margin: duplicate key"):
        config_lib.load(path)
