"""The push itself, free of TFX: publish an encoder and its search model in TF Serving's layout.

Layout written under ``serving_dir``::

    models.config                      ModelServerConfig: both models below, others kept
    <model_name>/<version>/            the Trainer's encoder SavedModel (copied as is)
    <model_name>_search/<version>/     search SavedModel + assets.extra/gallery index

Both versions are the same integer. The search model is published before the encoder, each by
an atomic rename, so an encoder version never exists without its search model. A push killed
midway can leave hidden ``.build-*`` / ``.tmp-*`` folders and a search version without its
encoder; the next push (or not-blessed run of the Pusher) removes them first, under a lock of
the serving folder that concurrent pushes to it share.
"""

import dataclasses
import logging
import os
import shutil
import tempfile

from serving.client import EmbeddingClient, LocalBackend
from serving.contract import check_encoder_contract
from serving.gallery import build_index
from serving.gallery_sources import read_examples
from serving.models_config import (
    MODELS_CONFIG_FILE,
    VersionPolicy,
    read_models_config,
    write_models_config,
)
from serving.publish import (
    BUILD_PREFIX,
    directory_lock,
    latest_matches,
    list_versions,
    next_version,
    publish_directory,
    remove_staging,
)
from serving.savedmodel import load_saved_model
from serving.search import DEFAULT_CHUNK_SIZE
from serving.search_model import search_model_name, write_search_model
from trainer import features

DEFAULT_SERVING_BASE_PATH = "/models"


@dataclasses.dataclass(frozen=True)
class PushConfig:
    """Where and how to push.

    Attributes:
        serving_dir: the serving directory (created when absent).
        model_name: served name of the encoder; the search model is ``<model_name>_search``.
        serving_base_path: ``serving_dir`` as the model server sees it (``models.config``).
        num_versions: TF Serving serves the latest ``num_versions`` versions.
        search_k: results per query of the search model.
        chunk_size: gallery rows scored at once by the search model.

    """

    serving_dir: str
    model_name: str
    serving_base_path: str = DEFAULT_SERVING_BASE_PATH
    num_versions: int = 1
    search_k: int = 10
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def __post_init__(self):
        if not self.serving_dir:
            raise ValueError("PushConfig.serving_dir must be set")
        if not self.model_name or "/" in self.model_name or self.model_name.startswith("."):
            raise ValueError(f"PushConfig.model_name {self.model_name!r} must be a plain name")
        for field in ("num_versions", "search_k", "chunk_size"):
            if getattr(self, field) < 1:
                raise ValueError(f"PushConfig.{field} must be >= 1, got {getattr(self, field)}")


@dataclasses.dataclass(frozen=True)
class PushResult:
    """What happened: a new version, or a skip because the latest version is identical."""

    pushed: bool
    version: int
    destination: str
    search_destination: str
    num_gallery_images: int = 0


def _write_config(config: PushConfig) -> None:
    write_models_config(config.serving_dir,
                        [config.model_name, search_model_name(config.model_name)],
                        config.serving_base_path, VersionPolicy("latest", config.num_versions))


def push_model(model_dir: str, gallery_examples: str, config: PushConfig,
               now: float | None = None) -> PushResult:
    """Publishes ``model_dir`` and a search model over ``gallery_examples``, unless unchanged.

    Args:
        model_dir: the encoder SavedModel (export contract of docs/architecture.md).
        gallery_examples: TFRecord glob of the raw examples whose images form the gallery.
        config: destination and options.
        now: the Unix time used for the version (default: the clock).

    Returns:
        The outcome; this model's entries of ``models.config`` are (re)written in both cases,
        other models' entries are kept.

    Raises:
        serving.contract.ContractError: the encoder breaks the serving contract (nothing pushed).
        ValueError: an existing ``models.config`` cannot be parsed (nothing pushed, file kept).
        NotADirectoryError: ``serving_dir`` exists and is not a folder.

    """
    _check_serving_dir(config.serving_dir)
    read_models_config(os.path.join(config.serving_dir, MODELS_CONFIG_FILE))  # refuse early
    os.makedirs(config.serving_dir, exist_ok=True)
    with directory_lock(config.serving_dir):
        _remove_leftovers(config)
        result = _publish(model_dir, gallery_examples, config, now)
    _write_config(config)  # after the lock: writing models.config takes the same lock
    return result


def remove_leftovers(config: PushConfig) -> list[str]:
    """Removes what an interrupted push left in ``config.serving_dir``; returns those paths.

    That is: the hidden ``.build-*`` and ``.tmp-*`` folders, and search versions of this model
    without their encoder version (a push killed between publishing the two). Nothing when
    ``serving_dir`` is not a folder.
    """
    if not os.path.isdir(config.serving_dir):
        return []
    with directory_lock(config.serving_dir):
        return _remove_leftovers(config)


def _check_serving_dir(serving_dir: str) -> None:
    if os.path.exists(serving_dir) and not os.path.isdir(serving_dir):
        raise NotADirectoryError(f"serving_dir {serving_dir} exists and is not a folder")


def _remove_leftovers(config: PushConfig) -> list[str]:
    """``remove_leftovers`` while holding the serving folder's lock."""
    base = os.path.join(config.serving_dir, config.model_name)
    search_base = os.path.join(config.serving_dir, search_model_name(config.model_name))
    removed = [path for folder in (config.serving_dir, base, search_base)
               for path in remove_staging(folder)]
    encoders = set(list_versions(base))
    for version in list_versions(search_base):
        if version not in encoders:
            orphan = os.path.join(search_base, str(version))
            shutil.rmtree(orphan)
            removed.append(orphan)
    for path in removed:
        logging.info("removed %s, left by an interrupted push", path)
    return removed


def _publish(model_dir: str, gallery_examples: str, config: PushConfig,
             now: float | None) -> PushResult:
    """``push_model`` without the config and lock: the skip check, the search model, encoder."""
    base = os.path.join(config.serving_dir, config.model_name)
    search_base = os.path.join(config.serving_dir, search_model_name(config.model_name))
    same = latest_matches(model_dir, base)
    if same is not None and os.path.isdir(os.path.join(search_base, str(same))):
        logging.info("%s is identical to pushed version %d: not pushed again", model_dir, same)
        return PushResult(False, same, os.path.join(base, str(same)),
                          os.path.join(search_base, str(same)))
    encoder = load_saved_model(model_dir)  # once: the contract, the gallery, the search model
    spec = check_encoder_contract(model_dir, loaded=encoder)
    version = next_version(list_versions(base) + list_versions(search_base), now)
    client = EmbeddingClient(LocalBackend(model_dir, encoder), feature_dim=spec.feature_dim)
    records = read_examples(gallery_examples)
    if spec.text_input != features.CAPTION_KEY:  # no text encoder: an image-only gallery
        records = dataclasses.replace(records, caption_ids=[], caption_texts=[],
                                      caption_image_ids=[])
    index = build_index(records, client, config.model_name, version)
    with tempfile.TemporaryDirectory(prefix=BUILD_PREFIX, dir=config.serving_dir) as staging:
        search_dir = write_search_model(model_dir, index, os.path.join(staging, "search"),
                                        config.search_k, config.chunk_size, encoder)
        search_destination = publish_directory(search_dir, search_base, version)
    destination = publish_directory(model_dir, base, version)
    logging.info("pushed %s as version %d (%d gallery images)", model_dir, version,
                 len(index.image_ids))
    return PushResult(True, version, destination, search_destination, len(index.image_ids))
