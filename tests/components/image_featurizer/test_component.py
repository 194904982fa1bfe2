"""The ImageFeaturizer TFX component: its spec, and one real run under the local DAG runner."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from components.image_featurizer import outputs
from components.image_featurizer.config import MOBILENET_V2_TFLITE, BackboneConfig
from components.image_featurizer.sources import images_fingerprint


@pytest.fixture()
def images_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(folder / "one.png")
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(folder / "two.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


@pytest.fixture()
def tiny_keras_backbone(tmp_path):
    import tf_keras as keras

    inputs = keras.Input((4, 4, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(inputs)
    path = str(tmp_path / "pool.h5")
    keras.Model(inputs, pooled).save(path)
    return BackboneConfig(kind="keras", model_path=path, image_size=(4, 4))


def test_component_records_its_configuration_and_fingerprint(images_dir):
    from components.image_featurizer.component import ImageFeaturizer

    component = ImageFeaturizer(images_dir=str(images_dir))
    properties = component.exec_properties
    assert properties["images_fingerprint"] == images_fingerprint(str(images_dir))
    assert BackboneConfig.from_json(properties["backbone"]) == MOBILENET_V2_TFLITE
    assert (properties["features_name"], properties["batch_size"]) == ("image_features", 32)
    assert component.outputs["image_features"].type_name == "xmodal.ImageFeatures"
    given = ImageFeaturizer(images_dir=str(images_dir), images_fingerprint="sha256:given")
    assert given.exec_properties["images_fingerprint"] == "sha256:given"
    with pytest.raises(ValueError, match="batch_size=0"):
        ImageFeaturizer(images_dir=str(images_dir), batch_size=0)


@pytest.mark.slow(minutes=1)
@pytest.mark.e2e
def test_component_runs_and_writes_its_artifact(images_dir, tiny_keras_backbone, tmp_path):
    from tfx.orchestration import metadata, pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from components.image_featurizer.component import ImageFeaturizer

    featurizer = ImageFeaturizer(
        images_dir=str(images_dir),
        backbone=tiny_keras_backbone,
        features_name="tiny",
    )
    LocalDagRunner().run(
        pipeline.Pipeline(
            pipeline_name="featurizer_test",
            pipeline_root=str(tmp_path / "root"),
            components=[featurizer],
            metadata_connection_config=metadata.sqlite_metadata_connection_config(
                str(tmp_path / "mlmd.sqlite")
            ),
        )
    )
    config = metadata.sqlite_metadata_connection_config(str(tmp_path / "mlmd.sqlite"))
    with metadata.Metadata(config) as store:
        (artifact,) = store.store.get_artifacts_by_type("xmodal.ImageFeatures")
    assert artifact.custom_properties["features_name"].string_value == "tiny"
    written = pathlib.Path(artifact.uri)
    names, matrix, report = outputs.read_outputs(str(written), "tiny")
    assert names == ["one.png", "two.jpg"]
    np.testing.assert_allclose(matrix, [[10, 20, 30], [255, 255, 255]], atol=1.0)
    assert [(e["file"], e["reason"]) for e in report["skipped"]] == [("broken.jpg", "corrupt")]
    assert json.loads((written / "tiny.report.json").read_text())["num_mode_converted"] == 1
