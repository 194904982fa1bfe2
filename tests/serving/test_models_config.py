import concurrent.futures
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


HAND_ADDED = """model_config_list {
  config {
    name: "third"
    base_path: "/elsewhere/third"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 7 } }
    version_labels { key: "stable" value: 7 }
  }
}
"""


def _names(path) -> list[str]:
    return [c.name for c in _parse(pathlib.Path(path).read_text()).model_config_list.config]


def test_write_merges_other_models_and_a_hand_added_one(tmp_path):
    write_models_config(str(tmp_path), ["xmodal", "xmodal_search"], "/models")
    path = pathlib.Path(write_models_config(str(tmp_path), ["xmodal2", "xmodal2_search"],
                                            "/models"))
    assert _names(path) == ["xmodal", "xmodal_search", "xmodal2", "xmodal2_search"]
    hand = _parse(HAND_ADDED).model_config_list.config[0]
    config = _parse(path.read_text())
    config.model_config_list.config.append(hand)  # as a person editing the file would
    path.write_text(text_format.MessageToString(config))

    write_models_config(str(tmp_path), ["xmodal"], "/srv", VersionPolicy("latest", 3))
    configs = _parse(path.read_text()).model_config_list.config
    assert [c.name for c in configs] == ["xmodal", "xmodal_search", "xmodal2", "xmodal2_search",
                                         "third"]
    assert configs[0].base_path == "/srv/xmodal"  # its own entry updated in place
    assert configs[0].model_version_policy.latest.num_versions == 3
    assert configs[1].base_path == "/models/xmodal_search"
    assert configs[4] == hand  # policy, labels and base path exactly as written by hand
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.config"]


@pytest.mark.parametrize("text, message", [
    ("model_config_list { config { name: 'a' ", "not a valid TF Serving ModelServerConfig"),
    ("model_config_list { config { nam: 'a' } }", "not a valid TF Serving ModelServerConfig"),
    ("custom_model_config { }", "custom_model_config"),
    ("model_config_list { config { name: 'caf\xe9' } }", "not a valid TF Serving"),
])
def test_unparseable_config_is_refused_and_left_untouched(tmp_path, text, message):
    path = tmp_path / "models.config"
    path.write_bytes(text.encode("latin-1"))  # the last one is not UTF-8
    with pytest.raises(ValueError, match=message) as raised:
        write_models_config(str(tmp_path), ["xmodal"], "/models")
    assert str(path) in str(raised.value)
    assert path.read_bytes() == text.encode("latin-1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.config"]


def test_bom_and_crlf_config_is_merged(tmp_path):
    (tmp_path / "models.config").write_bytes(
        b"\xef\xbb\xbf" + HAND_ADDED.replace("\n", "\r\n").encode())
    path = write_models_config(str(tmp_path), ["xmodal"], "/models")
    assert _names(path) == ["third", "xmodal"]


def test_concurrent_writers_keep_every_model(tmp_path):
    names = [f"m{i}" for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: write_models_config(str(tmp_path), [n], "/models"), names))
    assert sorted(_names(tmp_path / "models.config")) == names
