"""What the routes do, as functions of a session, the storage and plain values.

Routes parse the request, call one of these and shape the answer; they never import each
other. Errors the client can act on are raised as `ApiError`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.deps import Enqueuer
from api.errors import ApiError, Problems, validation_error
from api.schemas import JobSummary, OutputFile, ProjectAssets, ProjectView, RenderRequest
from api.uploads import require_free_space
from pipeline import assets, limits, registry, sound, timeline
from pipeline import spec as spec_file
from pipeline.assets import Reference
from pipeline.atomic import write_text_atomic
from pipeline.names import check_safe_name
from pipeline.options import RenderOptions
from pipeline.plan import picture_size
from pipeline.poster import poster_name
from pipeline.problems import unknown_scenes
from pipeline.project import ProjectDir
from pipeline.spec import ProjectSpec
from tasks import jobs, webhooks
from tasks.blobstore import Blob, BlobStore, output_key
from tasks.models import IdempotencyKey, Job, JobStatus, Project, utcnow
from tasks.settings import Settings
from tasks.storage import Storage

log = logging.getLogger("render.api.service")

DEFAULT_VIDEO = "video.mp4"
DEFAULT_PREVIEW = "preview.mp4"


def existing_project(storage: Storage, project_id: str) -> ProjectDir:
    project = storage.project(project_id)
    if not project.root.is_dir():
        raise ApiError(404, "not_found", f"no project {project_id!r}", "id")
    return project


def read_spec(project: ProjectDir) -> ProjectSpec | None:
    """The stored spec, or None when there is none; a hand-edited bad file is the user's 422,
    worded as VALIDATE words it (`pipeline.spec.read_spec`, the one reader)."""
    if not project.root.is_dir():
        return None
    try:
        return spec_file.read_spec(project.spec_file)
    except spec_file.InvalidSpec as exc:
        raise ApiError(422, "invalid_spec", exc.message) from None


def missing_files(
    project: ProjectDir, refs: list[Reference], options: RenderOptions | None = None
) -> list[tuple[str, Reference]]:
    """The referenced files not uploaded yet ('images/a.jpg', the reference), in order."""
    return assets.missing(refs, lambda folder, name: project.asset(folder, name).is_file(), options)


def missing_assets(
    project: ProjectDir, refs: list[Reference], options: RenderOptions | None = None
) -> list[str]:
    """The referenced files ('images/a.jpg') not uploaded yet, in the order referenced."""
    return [path for path, _ in missing_files(project, refs, options)]


def asset_names(project: ProjectDir) -> ProjectAssets:
    found: dict[str, list[str]] = {}
    for kind in assets.KINDS:
        folder = project.input / kind.folder
        names = (
            sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
            if folder.is_dir()
            else []
        )
        found[kind.name] = names
    return ProjectAssets.model_validate(found)


def upsert_project(session: Session, project_id: str, spec: ProjectSpec) -> Project:
    row = session.get(Project, project_id)
    if row is None:
        row = Project(id=project_id)
    row.title = spec.title
    row.scene_count = len(spec.scenes)
    row.updated_at = utcnow()
    session.add(row)
    return row


def store_spec(session: Session, storage: Storage, project_id: str, spec: ProjectSpec) -> list[str]:
    """Store the spec as `input/scenes.json` (creating the project); the files still missing."""
    project = storage.project(project_id)
    upsert_project(session, project_id, spec)
    # Flushed first, so a database error leaves no folder or file behind.
    session.flush()
    project.create()
    write_text_atomic(project.spec_file, spec.model_dump_json(indent=2, exclude_none=True) + "\n")
    session.commit()
    log.info("project %s: stored scenes.json with %d scenes", project_id, len(spec.scenes))
    return missing_assets(project, spec.references())


def project_view(session: Session, storage: Storage, project_id: str) -> ProjectView:
    project = existing_project(storage, project_id)
    spec = read_spec(project)
    row = session.get(Project, project_id)
    return ProjectView(
        id=project_id,
        title=spec.title if spec else (row.title if row else None),
        spec=spec,
        assets=asset_names(project),
        missing_assets=missing_assets(project, spec.references()) if spec else [],
        jobs=[
            JobSummary.model_validate(job, from_attributes=True)
            for job in jobs.latest_jobs(session, project_id)
        ],
    )


def request_digest(request: RenderRequest) -> str:
    """What makes two render requests the same one, for `Idempotency-Key`."""
    canonical = request.model_dump_json(by_alias=True, exclude_unset=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def scoped_key(caller: str, key: str) -> str:
    """What an `Idempotency-Key` is stored as: a digest of it and of the bearer token that sent
    it (`caller`, api/auth.py), so a key replays only for the token that made it; another
    token, a rotated one included, using the same key starts a render of its own."""
    return hashlib.sha256(f"{caller}\0{key}".encode()).hexdigest()


def replayed_job(
    session: Session, project_id: str, key: str, caller: str, digest: str
) -> Job | None:
    """The job an earlier request of this caller with this `Idempotency-Key` created, if any;
    409 when that request had another body."""
    row = session.get(IdempotencyKey, (scoped_key(caller, key), project_id))
    if row is None:
        return None
    if row.body_sha256 != digest:
        raise ApiError(
            409,
            "idempotency_conflict",
            f"Idempotency-Key {key!r} was already used for another request body "
            f"(job {row.job_id}); use a new key for a new render",
            "Idempotency-Key",
        )
    return session.get(Job, row.job_id)


def submit_render(
    session: Session,
    settings: Settings,
    storage: Storage,
    enqueue: Enqueuer,
    project_id: str,
    request: RenderRequest,
    idempotency_key: str | None = None,
    *,
    caller: str,
) -> Job:
    """Check the options, the spec and its files, create the job and queue it.

    Every check runs and collects its problems (`check_render`); the first is the answer.
    The job is committed before it is queued (a worker must find it); when the broker cannot
    be reached it is failed and the client gets 503. With an `idempotency_key`, a request
    repeated with the same body by the same `caller` (a digest of its bearer token) returns
    the job the first one created (nothing is queued again); the key is stored in the job's
    own transaction, so of two at once one wins.
    """
    digest = request_digest(request)
    if idempotency_key is not None:
        earlier = replayed_job(session, project_id, idempotency_key, caller, digest)
        if earlier is not None:
            return earlier
    problems = Problems()
    order = check_render(settings, storage, project_id, request, problems)
    problems.raise_first()
    assert order is not None  # no problem: every step gave its part
    [job] = create_jobs(session, [order])
    if idempotency_key is not None:
        session.add(
            IdempotencyKey(
                key=scoped_key(caller, idempotency_key),
                project_id=project_id,
                body_sha256=digest,
                job_id=job.id,
            )
        )
    try:
        session.commit()
    except IntegrityError:
        # The same key, committed by a request running beside this one: that one's job.
        session.rollback()
        if idempotency_key is None:
            raise
        earlier = replayed_job(session, project_id, idempotency_key, caller, digest)
        if earlier is None:
            raise
        return earlier
    enqueue_job(session, enqueue, job, order.outline)
    return job


@dataclass(frozen=True)
class RenderOrder:
    """A render request that passed every check: what one job is created from."""

    project_id: str
    spec: ProjectSpec
    options: RenderOptions
    outline: registry.Outline
    output_name: str
    callback: str | None


def check_render(
    settings: Settings,
    storage: Storage,
    project_id: str,
    request: RenderRequest,
    problems: Problems,
) -> RenderOrder | None:
    """Run every check of a render request, adding what each finds to `problems` in the order
    they run (the first is the answer); the order, when there was no problem.

    A step that needs what an earlier one failed to give is skipped (no options: nothing
    about the spec's files or sound can be checked), and the work is counted only for a
    render that passed everything before it, since counting reads the voiceovers' headers.
    """
    problems.add(check_free_space(settings, storage))
    options = resolve_options(settings, request, problems)
    project = storage.project(project_id)
    spec = load_spec(project, project_id, problems)
    outline = None
    if spec is not None and options is not None:
        check_references(project, spec, options, problems)
        check_sound(spec, options, problems)
        outline = check_scenes(spec, options, problems)
        if not problems:
            check_work(settings, project, spec, options, problems)
    callback = check_callback(settings, request.callback_url, problems)
    if problems or spec is None or options is None or outline is None:
        return None
    return RenderOrder(
        project_id=project_id,
        spec=spec,
        options=options,
        outline=outline,
        output_name=output_name(request, options),
        callback=callback,
    )


def check_free_space(settings: Settings, storage: Storage) -> ApiError | None:
    try:
        require_free_space(storage.root, settings.min_free_mb, "a new render")
    except ApiError as exc:
        return exc
    return None


def resolve_options(
    settings: Settings, request: RenderRequest, problems: Problems
) -> RenderOptions | None:
    """The request's options merged over the DEFAULT_* settings and checked."""
    given = (
        request.render_options.model_dump(by_alias=True, exclude_unset=True)
        if request.render_options
        else {}
    )
    try:
        return settings.render_options(given)
    except ValidationError as exc:
        problems.add(validation_error(list(exc.errors()), prefix="renderOptions"))
        return None


def load_spec(project: ProjectDir, project_id: str, problems: Problems) -> ProjectSpec | None:
    """The project's stored spec: without one there is nothing to render (409)."""
    try:
        spec = read_spec(project)
    except ApiError as exc:
        problems.add(exc)
        return None
    if spec is None:
        problems.add(
            ApiError(
                409,
                "no_scenes",
                f"project {project_id!r} has no scenes yet; PUT /v1/projects/{project_id}/scenes "
                "first",
            )
        )
    return spec


def check_references(
    project: ProjectDir, spec: ProjectSpec, options: RenderOptions, problems: Problems
) -> None:
    """Every file the spec and the options name is uploaded. When the one file missing is of
    a kind an upload never infers (music), the answer says which subdir to upload it with and
    names the field that refers to it."""
    missing = missing_files(project, spec_file.render_references(spec, options), options)
    if not missing:
        return
    paths = [path for path, _ in missing]
    ref = missing[0][1]
    hint = len(missing) == 1 and not ref.kind.inferred
    problems.add(
        ApiError(
            422,
            "missing_assets",
            f"{len(missing)} referenced file(s) not uploaded: {', '.join(paths)}"
            + (f" (upload it with subdir={ref.kind.name})" if hint else ""),
            ref.field if hint else "assets",
        )
    )


def check_sound(spec: ProjectSpec, options: RenderOptions, problems: Problems) -> None:
    if problem := sound.check(spec, options):
        problems.add(ApiError(422, problem.code, problem.message, problem.field))


def check_scenes(spec: ProjectSpec, options: RenderOptions, problems: Problems) -> registry.Outline:
    """The job's outline; renderOptions.scenes must name scenes the spec has."""
    # Every scene of the spec gets its per-scene stages (SPEECH: every scene TTS speaks); a
    # render of some scenes (renderOptions.scenes, .range) skips the builds it has no scene for.
    outline = registry.outline(spec, options)
    if problem := unknown_scenes(options, outline.scenes):
        problems.add(ApiError(422, problem.code, problem.message, problem.field))
    return outline


def check_work(
    settings: Settings,
    project: ProjectDir,
    spec: ProjectSpec,
    options: RenderOptions,
    problems: Problems,
) -> None:
    """The render orders no more work than the limits allow (pipeline/limits.py), else 422
    naming the field and the setting: counted from the spec, the options, the voiceovers'
    headers and the narration's estimated speech, before any job row exists."""
    bounds = settings.limits()
    seconds = []
    try:
        for index, scene in enumerate(spec.scenes):
            voice = None
            if scene.voiceover is not None:
                path = project.asset(options.voice_dir, scene.voiceover)
                voice = limits.voiceover_seconds(path)
                limits.check_voiceover(index, voice, bounds)
            elif (text := limits.spoken(scene.narration, None, options)) is not None:
                voice = limits.speech_seconds(text, options.tts.rate if options.tts else None)
            seconds.append(timeline.scene_seconds(voice, scene.seconds))
        limits.check(spec, options, seconds, picture_size(options), bounds)
    except limits.OverLimit as exc:
        problems.add(ApiError(422, "over_limit", exc.message, exc.field))


def check_callback(settings: Settings, url: str | None, problems: Problems) -> str | None:
    """The render's callbackUrl, if it is one the service will call."""
    if url is None:
        return None
    if not settings.webhook_secret:
        problems.add(
            ApiError(
                422,
                "webhooks_disabled",
                "callbackUrl needs WEBHOOK_SECRET set on the server (deliveries are signed "
                "with it)",
                "callbackUrl",
            )
        )
        return None
    try:
        webhooks.check_callback_url(url, settings.webhook_allow_private)
    except webhooks.CallbackRefused as exc:
        problems.add(ApiError(422, "callback_refused", str(exc), "callbackUrl"))
        return None
    return url


def output_name(request: RenderRequest, options: RenderOptions) -> str:
    # A preview without a name of its own must not replace the full render's video.mp4.
    if options.preview and "output_name" not in request.model_fields_set:
        return DEFAULT_PREVIEW
    return request.output_name


def create_jobs(session: Session, orders: list[RenderOrder]) -> list[Job]:
    """A QUEUED job (its stage rows, its webhook) for each order, in the session's one
    transaction: the caller commits them all, or none."""
    # Each project once (flushed, so a second order of it finds the row).
    for project_id, spec in {order.project_id: order.spec for order in orders}.items():
        upsert_project(session, project_id, spec)
    session.flush()
    created = []
    for order in orders:
        job = jobs.create_job(
            session,
            project_id=order.project_id,
            output_name=order.output_name,
            options=order.options.model_dump(by_alias=True),
            scene_count=order.outline.scenes,
            spoken=order.outline.spoken,
        )
        if order.callback is not None:
            webhooks.register(session, job.id, order.callback)
        created.append(job)
    return created


def enqueue_job(session: Session, enqueue: Enqueuer, job: Job, outline: registry.Outline) -> None:
    """Queue a committed job; when the broker cannot be reached, fail it and answer 503."""
    try:
        enqueue(job.id, outline)
    except Exception as exc:
        log.error("job %s: could not enqueue: %s", job.id, exc)
        jobs.transition(
            session, job.id, JobStatus.FAILED, error=f"could not reach the broker: {exc}"
        )
        session.commit()
        raise ApiError(
            503, "broker_unavailable", f"could not reach the broker: {exc}; job {job.id} failed"
        ) from None
    log.info("job %s: queued for project %s (%d scenes)", job.id, job.project_id, outline.scenes)


def output_files(storage: Storage, blobs: BlobStore, project_id: str) -> list[OutputFile]:
    existing_project(storage, project_id)
    folder = output_key(project_id, "")
    # Files of output/ itself; the store lists no temp files of a render being written.
    found = [blob for blob in blobs.list(folder) if "/" not in blob.key.removeprefix(folder)]
    names = {blob.name for blob in found}
    return [
        OutputFile(
            name=blob.name,
            size=blob.size,
            modified_at=blob.modified,
            content_type=content_type(blob.name),
            poster=poster_name(blob.name)
            if blob.name.lower().endswith(".mp4") and poster_name(blob.name) in names
            else None,
        )
        for blob in found
    ]


_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt; charset=utf-8",
    ".srt": "application/x-subrip; charset=utf-8",
}


def content_type(name: str) -> str:
    """The media type an output file is served and listed with, by its suffix."""
    return _CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def output_video(
    session: Session, storage: Storage, blobs: BlobStore, project_id: str, name: str | None
) -> Blob:
    """The file `name` in output/; by default the last succeeded job's, else video.mp4."""
    existing_project(storage, project_id)
    name = _output_name(session, project_id, name)
    blob = blobs.stat(output_key(project_id, name))
    if blob is None:
        raise ApiError(404, "not_found", f"no output {name!r} in project {project_id!r}", "name")
    return blob


def output_poster(
    session: Session, storage: Storage, blobs: BlobStore, project_id: str, name: str | None
) -> Blob:
    """The poster of the video `name` (`demo.mp4` → output/demo.jpg), or the JPEG `name`
    itself (`scene_02.jpg`); by default the last succeeded job's video's poster."""
    existing_project(storage, project_id)
    name = _output_name(session, project_id, name)
    poster = name if name.lower().endswith(".jpg") else poster_name(name)
    blob = blobs.stat(output_key(project_id, poster))
    if blob is None:
        raise ApiError(404, "not_found", f"no poster {poster!r} in project {project_id!r}", "name")
    return blob


def _output_name(session: Session, project_id: str, name: str | None) -> str:
    if name is None:
        name = jobs.last_succeeded_output(session, project_id) or DEFAULT_VIDEO
    try:
        return check_safe_name(name)
    except ValueError as exc:
        raise ApiError(422, "invalid_name", f"name: {exc}", "name") from None
