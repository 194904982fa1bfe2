"""TF Serving ``models.config`` generation (``ModelServerConfig`` text proto).

TF Serving reads it with ``--model_config_file=<serving_dir>/models.config``; each entry names a
model, its base path (holding integer version folders) and which versions to serve. One file
serves every model of a serving directory, so each push merges its own entries into it and keeps
the others (other model names, or entries added by hand)::

    model_config_list {
      config {
        name: "xmodal"
        base_path: "/models/xmodal"
        model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 1 } }
      }
    }
"""

import dataclasses
import os
import posixpath
from collections.abc import Sequence

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.publish import directory_lock

MODELS_CONFIG_FILE = "models.config"
POLICY_KINDS = ("latest", "all", "specific")


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model TF Serving loads.

    Attributes:
        kind: ``"latest"`` (the ``num_versions`` highest), ``"all"`` or ``"specific"``.
        num_versions: for ``"latest"``, how many (>= 1).
        versions: for ``"specific"``, the version numbers (non-empty).

    """

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def __post_init__(self):
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"VersionPolicy.kind must be one of {POLICY_KINDS}, got {self.kind!r}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"VersionPolicy.num_versions must be >= 1, got {self.num_versions}")
        if self.kind == "specific" and not self.versions:
            raise ValueError("VersionPolicy kind 'specific' needs at least one version")

    def to_proto(self, config: model_server_config_pb2.ModelConfig) -> None:
        """Writes this policy into ``config.model_version_policy``."""
        policy = config.model_version_policy
        if self.kind == "latest":
            policy.latest.num_versions = self.num_versions
        elif self.kind == "all":
            policy.all.SetInParent()
        else:
            policy.specific.versions.extend(self.versions)


def _entry(name: str, base_path: str,
           policy: VersionPolicy) -> model_server_config_pb2.ModelConfig:
    """One ``config { ... }`` entry: ``name`` served from ``<base_path>/<name>``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"model name {name!r} must be a plain folder name")
    entry = model_server_config_pb2.ModelConfig(
        name=name, base_path=posixpath.join(base_path, name), model_platform="tensorflow")
    policy.to_proto(entry)
    return entry


def merge_models_config(config: model_server_config_pb2.ModelServerConfig,
                        model_names: Sequence[str], base_path: str,
                        policy: VersionPolicy = VersionPolicy()) -> None:
    """Sets the entries of ``model_names`` in ``config``, leaving every other entry as it is.

    An entry of the same name is replaced where it stands (so the file's order is stable);
    names not yet served are appended. Other models (pushed by other pipelines or added by
    hand) keep their base path, policy and labels: TF Serving stops serving a model that
    disappears from the file even when its versions are still on disk.

    Raises:
        ValueError: no names, a repeated name, or a name that is not a plain folder name.

    """
    if not model_names:
        raise ValueError("models_config needs at least one model name")
    if len(set(model_names)) != len(model_names):
        raise ValueError(f"models_config: repeated model names in {list(model_names)}")
    entries = config.model_config_list.config
    position = {entry.name: i for i, entry in enumerate(entries)}
    for name in model_names:
        entry = _entry(name, base_path, policy)
        if name in position:
            entries[position[name]].CopyFrom(entry)
        else:
            entries.append(entry)


def models_config(model_names: Sequence[str], base_path: str,
                  policy: VersionPolicy = VersionPolicy()) -> str:
    """Returns a ``models.config`` text proto serving exactly ``model_names``.

    Args:
        model_names: served model names; each one's versions live in ``<base_path>/<name>``.
        base_path: the serving directory as the model server sees it (e.g. ``/models`` inside
            the ``tensorflow/serving`` container, or an absolute host path).
        policy: the version policy of every model.

    Returns:
        The ``ModelServerConfig`` in text format.

    Raises:
        ValueError: no names, a repeated name, or a name that is not a plain folder name.

    """
    config = model_server_config_pb2.ModelServerConfig()
    merge_models_config(config, model_names, base_path, policy)
    return text_format.MessageToString(config)


def read_models_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    """Parses an existing ``models.config``; an absent file is an empty config.

    Raises:
        ValueError: naming ``path``, when the file is not a ``ModelServerConfig`` text proto or
            uses ``custom_model_config`` (which this writer cannot merge into). The file is then
            left as it is: rewriting it would drop models that it may serve.

    """
    config = model_server_config_pb2.ModelServerConfig()
    if not os.path.exists(path):
        return config
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: tolerates a BOM from a Windows editor
            text_format.Parse(f.read(), config)
    except (text_format.ParseError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a valid TF Serving ModelServerConfig ({err}); fix or "
                         "remove it, it is not overwritten") from err
    if config.WhichOneof("config") == "custom_model_config":
        raise ValueError(f"{path}: uses custom_model_config, which cannot be merged with "
                         "model_config_list entries; it is not overwritten")
    return config


def write_models_config(serving_dir: str, model_names: Sequence[str], base_path: str,
                        policy: VersionPolicy = VersionPolicy()) -> str:
    """Merges ``model_names`` into ``<serving_dir>/models.config``; returns its path.

    Every other model's entry is kept (see ``merge_models_config``). The read-merge-write runs
    under a lock of ``serving_dir``, and the new file replaces the old one atomically (temp
    file, fsync, rename), so the model server never reads a half-written config. Comments of a
    hand-edited file are not kept: the file is re-serialized.

    Raises:
        ValueError: the existing file cannot be parsed (it is left untouched), or bad names.

    """
    path = os.path.join(serving_dir, MODELS_CONFIG_FILE)
    with directory_lock(serving_dir):
        config = read_models_config(path)
        merge_models_config(config, model_names, base_path, policy)
        tmp = os.path.join(serving_dir, f".{MODELS_CONFIG_FILE}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text_format.MessageToString(config))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    return path
