"""Caption ExampleGen: caption datasets + precomputed features in, one tf.Example per caption out.

Public API (light imports; the TFX component factory lives in ``.component``):
  * ``DatasetSpec`` — format, files and policies (all in the component's ``custom_config``).
  * ``detect(data_dir)`` — recognizes a dataset folder's layout.
  * ``component.make_caption_example_gen(input_base, dataset)`` — the FileBasedExampleGen.
  * ``schema.make_schema`` — the curated schema; ``schema_gen.CaptionSchemaGen`` emits it.
  * ``synthetic.write_synthetic_dataset`` — a small learnable Flickr-format dataset.
"""

from components.caption_example_gen.detect import detect
from components.caption_example_gen.records import IngestError
from components.caption_example_gen.spec import DatasetSpec

__all__ = ["DatasetSpec", "IngestError", "detect"]
