"""TF Serving ``models.config`` generation (``ModelServerConfig`` text proto).

TF Serving reads it with ``--model_config_file=<serving_dir>/models.config``; each entry names a
model, its base path (holding integer version folders) and which versions to serve::

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


def models_config(model_names: Sequence[str], base_path: str,
                  policy: VersionPolicy = VersionPolicy()) -> str:
    """Returns the ``models.config`` text proto serving ``model_names``.

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
    if not model_names:
        raise ValueError("models_config needs at least one model name")
    if len(set(model_names)) != len(model_names):
        raise ValueError(f"models_config: repeated model names in {list(model_names)}")
    config = model_server_config_pb2.ModelServerConfig()
    for name in model_names:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"model name {name!r} must be a plain folder name")
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = posixpath.join(base_path, name)
        entry.model_platform = "tensorflow"
        policy.to_proto(entry)
    return text_format.MessageToString(config)


def write_models_config(serving_dir: str, model_names: Sequence[str], base_path: str,
                        policy: VersionPolicy = VersionPolicy()) -> str:
    """Writes ``<serving_dir>/models.config`` atomically (temp file + rename); returns its path."""
    path = os.path.join(serving_dir, MODELS_CONFIG_FILE)
    tmp = os.path.join(serving_dir, f".{MODELS_CONFIG_FILE}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(models_config(model_names, base_path, policy))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return path
