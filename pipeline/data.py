"""Which data a run uses: the default, a detected folder, explicit overrides; its schema."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib

from components.caption_example_gen.detect import detect
from components.caption_example_gen.spec import DatasetSpec
from pipeline.config import PipelineConfig

SHARED_FLICKR8K = ("..", "shared", "data", "flickr8k")


@dataclasses.dataclass(frozen=True)
class ResolvedData:
    """The dataset of a run.

    Attributes:
      input_base: the folder ExampleGen reads.
      spec: its layout and ingest options.
      description: what was found, for the user.
      synthetic: True when the generated dataset stands in for real data.
      images_fingerprint: fingerprint of ``images_dir`` when images are featurized ('' without).

    """

    input_base: str
    spec: DatasetSpec
    description: str
    synthetic: bool = False
    images_fingerprint: str = ""


def default_data_dir() -> pathlib.Path | None:
    """The real Flickr8k beside the checkout (``../shared/data/flickr8k``), if present."""
    candidates = (
        pathlib.Path.cwd().joinpath(*SHARED_FLICKR8K),
        pathlib.Path(__file__).resolve().parents[1].joinpath(*SHARED_FLICKR8K),
    )
    for path in candidates:
        if (path / "Flickr8k.token.txt").is_file():
            return path.resolve()
    return None


def resolve(config: PipelineConfig, for_compile: bool = False) -> ResolvedData:
    """Finds the run's dataset: ``config.data_dir``, else real Flickr8k, else synthetic data.

    Args:
      config: the pipeline configuration (``data_dir``, ``dataset`` overrides, ``images_dir``).
      for_compile: compiling for a cloud runner: remote folders (data, images) are not read, and
        nothing is written (no synthetic data); a remote data folder's layout must then be given
        completely by ``config.dataset``.

    """
    overrides = dict(config.dataset)
    fingerprint = ""
    if config.images_dir:
        overrides.update(_featurized_image_overrides())
        fingerprint = _images_fingerprint(config.images_dir, for_compile)
    if for_compile and config.data_dir and "://" in config.data_dir:
        spec = DatasetSpec.from_dict(overrides)
        return ResolvedData(config.data_dir, spec, f"{config.data_dir}: layout given by config",
                            images_fingerprint=fingerprint)
    if config.data_dir:
        data_dir, synthetic = config.data_dir, False
    elif (found := default_data_dir()) is not None:
        data_dir, synthetic = str(found), False
    elif for_compile:
        raise ValueError("compile: no dataset found; give --data (a folder or a gs:// URI with "
                         "its layout in the config's dataset section)")
    else:
        data_dir, synthetic = _synthetic_dir(config), True
    spec = detect(data_dir, **overrides)
    spec = dataclasses.replace(spec, fingerprint=_spec_fingerprint(data_dir, spec))
    return ResolvedData(
        input_base=os.path.abspath(data_dir),
        spec=spec,
        description=describe(data_dir, spec, synthetic),
        synthetic=synthetic,
        images_fingerprint=fingerprint,
    )


def describe(data_dir: str, spec: DatasetSpec, synthetic: bool) -> str:
    """One paragraph saying what a dataset folder holds and how it will be read."""
    kind = "SYNTHETIC generated data (no real data found)" if synthetic else "data"
    features = (f"{spec.image_features} (+ {spec.image_feature_names})" if spec.image_features
                else "from the ImageFeaturizer's artifact")
    lines = [
        f"{kind}: {data_dir}",
        f"  format {spec.format}; captions {', '.join(spec.captions)}",
        f"  image features {features}, width {spec.image_feature_dim or 'from file'}",
        f"  splits {', '.join(spec.splits)}",
    ]
    if spec.caption_features:
        lines.append(f"  caption features {spec.caption_features}")
    return "\n".join(lines)


def _synthetic_dir(config: PipelineConfig) -> str:
    from components.caption_example_gen.synthetic import write_synthetic_dataset

    out = os.path.join(config.pipeline_root, "synthetic_data")
    if not os.path.isdir(out):
        write_synthetic_dataset(out)
    return out


def _featurized_image_overrides() -> dict:
    """No feature files: the ExampleGen takes the featurizer's artifact as its input."""
    from components.image_featurizer.config import MOBILENET_V2_FEATURE_DIM

    return {
        "image_features": "",
        "image_feature_names": "",
        "image_feature_dim": MOBILENET_V2_FEATURE_DIM,
    }


def _images_fingerprint(images_dir: str, for_compile: bool) -> str:
    """The featurizer's cache key of ``images_dir``.

    A remote folder is not read when compiling (CI compiles without cloud credentials), so its
    featurizer then caches on the folder's name: put new images in a new folder.
    """
    if for_compile and "://" in images_dir:
        return f"{images_dir} (not read when compiling)"
    from components.image_featurizer.sources import images_fingerprint

    return images_fingerprint(images_dir)


def _spec_fingerprint(data_dir: str, spec: DatasetSpec) -> str:
    """Fingerprint of the non-caption inputs (feature files), which TFX does not fingerprint."""
    if spec.fingerprint:
        return spec.fingerprint
    digest = hashlib.sha256()
    for rel in (spec.image_features, spec.image_feature_names, spec.caption_features):
        if not rel or "{SPAN}" in rel:
            continue
        path = os.path.join(data_dir, rel)
        if os.path.exists(path):
            stat = os.stat(path)
            digest.update(f"{rel}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]
