import pathlib

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.models_config import VersionPolicy, models_config, write_models_config


def _parse(text: str) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_latest_policy_text_is_valid_model_server_config():
    text = models_config(["xmodal", "xmodal_search"], "/models", VersionPolicy("latest", 2))
    configs = _parse(text).model_config_list.config
    assert [(c.name, c.base_path, c.model_platform) for c in configs] == [
        ("xmodal", "/models/xmodal", "tensorflow"),
        ("xmodal_search", "/models/xmodal_search", "tensorflow")]
    assert configs[0].model_version_policy.latest.num_versions == 2
    assert 'name: "xmodal"' in text and "num_versions: 2" in text


def test_all_and_specific_policies():
    all_cfg = _parse(models_config(["m"], "/s", VersionPolicy("all"))).model_config_list.config[0]
    assert all_cfg.model_version_policy.WhichOneof("policy_choice") == "all"
    specific = _parse(models_config(["m"], "/s", VersionPolicy("specific", versions=(3, 5))))
    assert list(specific.model_config_list.config[0].model_version_policy.specific.versions) == \
        [3, 5]


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "newest"}, "kind must be one of"),
    ({"kind": "latest", "num_versions": 0}, "num_versions must be >= 1"),
    ({"kind": "specific"}, "needs at least one version"),
])
def test_bad_policies(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VersionPolicy(**kwargs)


def test_bad_names():
    with pytest.raises(ValueError, match="repeated"):
        models_config(["m", "m"], "/s")
    with pytest.raises(ValueError, match="plain folder name"):
        models_config(["a/b"], "/s")
    with pytest.raises(ValueError, match="at least one"):
        models_config([], "/s")


def test_write_replaces_file(tmp_path):
    write_models_config(str(tmp_path), ["old"], "/models")
    path = write_models_config(str(tmp_path), ["new"], "/models")
    configs = _parse(pathlib.Path(path).read_text()).model_config_list.config
    assert [c.name for c in configs] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.config"]
