"""The JSON API and the thumbnail route (docs/search_page.md lists them with examples).

Sync routes run in the server's thread pool (TensorFlow releases the GIL while it computes);
every query runs on the model version that is current when it starts.
"""

from __future__ import annotations

import dataclasses
import random

from fastapi import APIRouter, File, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from serving.web.compare import compare_image, compare_text
from serving.web.holder import ModelHolder
from serving.web.model import LoadedModel
from serving.web.photos import BadImageIdError, check_image_id
from serving.web.queries import (
    PHOTO_MODES,
    TEXT_MODES,
    Limits,
    QueryError,
    check_k,
    check_mode,
    check_photo,
    check_text,
    search_photo,
    search_text,
)

DEFAULT_K = 10
COMPARE_K = 5
PHOTO_FIELD = File(None, description="the JPEG or PNG photo")


@dataclasses.dataclass
class Service:
    """What the routes serve.

    Attributes:
        primary: the searched model.
        compare: a second model for the compare view, or None.
        limits: per-request limits.

    """

    primary: ModelHolder
    compare: ModelHolder | None = None
    limits: Limits = dataclasses.field(default_factory=Limits)

    def holders(self) -> list[ModelHolder]:
        """The primary holder, then the compare one when there is one."""
        return [self.primary] + ([self.compare] if self.compare else [])


def _describe(model: LoadedModel) -> dict:
    return {"model_name": model.name, "model_version": model.version, "source": model.source,
            "images": len(model.index.image_ids), "captions": len(model.index.caption_ids),
            "photo_folders": len(model.photos.folders)}


def _thumbnail(service: Service, image_id: str) -> Response:
    """The JPEG thumbnail of a searched image whose photo file is at hand."""
    try:
        check_image_id(image_id)
    except BadImageIdError as err:
        raise QueryError(str(err)) from err
    models = [holder.current for holder in service.holders()]
    if all(model.image_row(image_id) is None for model in models):
        raise QueryError(f"unknown image id {image_id!r}", 404)
    path = models[0].photos.path_of(image_id)
    if path is None:
        raise QueryError(f"no photo file of image {image_id!r} in the photo folders", 404)
    try:
        data = models[0].photos.thumbnail(path)
    except ValueError as err:  # not a readable image, or too many pixels
        raise QueryError(f"image {image_id!r}: {err}", 422) from err
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "public, max-age=3600"})


def api_router(service: Service) -> APIRouter:
    """The routes of ``service``."""
    router = APIRouter()
    limits = service.limits

    @router.get("/api/healthz")
    def healthz() -> dict:
        """The served versions and the limits."""
        compare = service.compare.current if service.compare else None
        return {"status": "ok", **_describe(service.primary.current),
                "compare": _describe(compare) if compare else None,
                "modes": {"text": list(TEXT_MODES), "photo": list(PHOTO_MODES)},
                "limits": dataclasses.asdict(limits)}

    @router.get("/api/search")
    def search(q: str = "", k: int = DEFAULT_K, mode: str = "text2image") -> dict:
        """Caption query: ``text2image`` or ``text2text``."""
        check_mode(mode, TEXT_MODES)
        k, text = check_k(k, limits), check_text(q, limits)
        return service.primary.call(lambda model: search_text(model, text, k, mode))

    @router.post("/api/search/image")
    async def search_image(photo: UploadFile | None = PHOTO_FIELD, k: int = DEFAULT_K,
                           mode: str = "image2image") -> dict:
        """Photo query (multipart field ``photo``): ``image2image`` or ``image2text``."""
        check_mode(mode, PHOTO_MODES)
        check_k(k, limits)
        if photo is None:
            raise QueryError("no photo: send the file as the multipart form field 'photo'")
        data = check_photo(await photo.read(limits.max_upload_bytes + 1), limits)
        return await run_in_threadpool(
            service.primary.call, lambda model: search_photo(model, data, k, mode))

    @router.get("/api/compare")
    def compare(q: str | None = None, id: str | None = None, k: int = COMPARE_K) -> dict:
        """The compare view: a caption (``q``) or a gallery image (``id``), every model."""
        check_k(k, limits)
        if (q is None) == (id is None):
            raise QueryError("give exactly one of q (a caption) or id (a gallery image id)")
        models = [holder.current for holder in service.holders()]
        if q is not None:
            return compare_text(models, check_text(q, limits), k)
        return compare_image(models, id, k)

    @router.get("/api/random-image")
    def random_image() -> dict:
        """A random searched image that has captions (the compare view's image queries)."""
        model = service.primary.current
        candidates = sorted(set(model.index.caption_image_ids.tolist()))
        if not candidates:
            raise QueryError(f"no image of the {model.source} has captions", 404)
        return {"id": random.choice(candidates), "model_version": model.version}

    @router.get("/images/{image_id:path}")
    def image(image_id: str) -> Response:
        """The thumbnail of a searched image (only ids of the gallery or collection)."""
        return _thumbnail(service, image_id)

    return router
