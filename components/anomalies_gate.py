"""A gate that stops the pipeline when ExampleValidator found schema anomalies.

TFX's ExampleValidator records anomalies (and a per-split ``blessed`` custom property) but does not
stop the run; docs/architecture.md requires that schema violations stop it before Transform.
"""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

_ANOMALIES_FILE = "SchemaDiff.pb"


def describe_anomalies(anomalies_uri: str, split_names: list[str]) -> list[str]:
    """Reads the anomalies of each split and returns one human-readable line per anomaly.

    Args:
      anomalies_uri: the ExampleAnomalies artifact URI (one ``Split-<name>`` folder per split).
      split_names: the splits to read.

    """
    problems = []
    for split in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split}", _ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(io_utils.read_bytes_file(path))
        for feature, info in sorted(anomalies.anomaly_info.items()):
            problems.append(f"split '{split}', feature '{feature}': {info.description}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            problems.append(f"split '{split}', dataset: {info.description}")
    return problems


@component
def AnomaliesGate(  # noqa: N802  (TFX component names are classes by convention)
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
) -> None:
    """Fails the run, listing every anomaly, unless every split validated cleanly."""
    split_names = artifact_utils.decode_split_names(anomalies.split_names)
    problems = describe_anomalies(anomalies.uri, split_names)
    if problems:
        raise RuntimeError(
            "ExampleValidator found schema anomalies; stopping before Transform:\n  "
            + "\n  ".join(problems)
        )
