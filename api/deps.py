"""Dependencies, declared once as `Annotated` aliases so routes read like sentences and tests
can override them (`app.dependency_overrides[get_enqueuer] = ...`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlmodel import Session

from api.errors import ApiError
from pipeline.registry import Outline
from tasks import canvas
from tasks.blobstore import BlobStore
from tasks.db import session_scope
from tasks.settings import Settings
from tasks.storage import PROJECT_ID, InvalidId, Storage, blob_store, check_project_id

Enqueuer = Callable[[str, Outline], None]  # (job id, what its first units follow from)
Revoker = Callable[[str, list[str]], None]  # (job id, its stage labels)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with session_scope(settings.db_url) as session:
        yield session


# scope="function": the transaction ends before the response is sent, so a failed commit
# is the client's error response rather than a log line after a 200.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_storage(settings: SettingsDep) -> Storage:
    return Storage(settings.render_storage)


StorageDep = Annotated[Storage, Depends(get_storage)]


# A request waits this long at most for an object store that is down, then gets 503.
STORE_RETRY_SECONDS = 5.0


def get_blobs(settings: SettingsDep) -> BlobStore:
    """The storage interface: the folder's, or the bucket's (STORAGE_URL)."""
    return blob_store(settings, retry_seconds=STORE_RETRY_SECONDS)


BlobsDep = Annotated[BlobStore, Depends(get_blobs)]


def get_enqueuer() -> Enqueuer:
    return canvas.enqueue_render


EnqueuerDep = Annotated[Enqueuer, Depends(get_enqueuer)]


def get_batch_enqueuer() -> Enqueuer:
    """A batch's jobs go to the batch queue, behind single renders (tasks/app.py)."""
    return canvas.enqueue_batch_render


BatchEnqueuerDep = Annotated[Enqueuer, Depends(get_batch_enqueuer)]


def get_revoker() -> Revoker:
    return canvas.revoke_job


RevokerDep = Annotated[Revoker, Depends(get_revoker)]


def valid_project_id(
    project_id: Annotated[
        str,
        Path(
            alias="id",
            description="letters, digits, '_' and '-' (1–64), starting with a letter or digit",
            json_schema_extra={"pattern": PROJECT_ID.pattern},
        ),
    ],
) -> str:
    # Checked here rather than with Path(pattern=...) so the message explains the rule.
    try:
        return check_project_id(project_id)
    except InvalidId as exc:
        raise ApiError(422, "invalid_id", str(exc), "id") from None


ProjectId = Annotated[str, Depends(valid_project_id)]
