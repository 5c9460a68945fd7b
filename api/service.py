"""What the routes do, as functions of a session, the storage and plain values.

Routes parse the request, call one of these and shape the answer; they never import each
other. Errors the client can act on are raised as `ApiError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.deps import Enqueuer
from api.errors import ApiError, Problems, validation_error
from api.schemas import (
    JobSummary,
    OutputFile,
    ProjectAssets,
    ProjectSummary,
    ProjectView,
    RenderRequest,
)
from api.uploads import require_free_space
from pipeline import assets, fonts, layers, limits, registry, sound, template, timeline, transitions
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
from tasks.models import (
    IdempotencyKey,
    Job,
    JobStatus,
    Project,
    ProjectVersion,
    utcnow,
)
from tasks.settings import Settings
from tasks.storage import Storage
from tasks.workspace import publish_inputs

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


@dataclass(frozen=True)
class StoredSpec:
    """What a PUT of scenes stored: the version it made, and the template's variables."""

    version: ProjectVersion
    template: template.Template
    body: dict[str, Any]  # the spec as stored (a template's placeholders kept)
    missing: list[str]


def check_spec(raw: Any) -> tuple[template.Template, ProjectSpec]:
    """A PUT body as a template, and the spec it makes with each variable at its default or a
    stand-in of its type (so a template is a spec valid for some values of its variables);
    a 422 naming the field at fault."""
    if not isinstance(raw, dict):
        raise ApiError(422, "validation_error", "the spec must be a JSON object", None)
    try:
        parsed = template.parse(raw)
    except template.TemplateError as exc:
        first = exc.first
        raise ApiError(422, first.code, first.message, first.field) from None
    try:
        spec = ProjectSpec.model_validate(template.sample(parsed))
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None
    return parsed, spec


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def store_spec(session: Session, storage: Storage, project_id: str, raw: Any) -> StoredSpec:
    """Check the spec (a template, maybe) and store it as `input/scenes.json` (creating the
    project) and as the project's next immutable version."""
    parsed, spec = check_spec(raw)
    # A plain spec is stored as the model has it (the command line reads it); a template as
    # sent, its variables with it.
    body = raw if parsed.is_template else spec.model_dump(mode="json", exclude_none=True)
    project = storage.project(project_id)
    upsert_project(session, project_id, spec)
    # Flushed first, so a database error leaves no folder or file behind.
    session.flush()
    latest = latest_version(session, project_id)
    version = ProjectVersion(
        project_id=project_id,
        number=(latest.number if latest else 0) + 1,
        sha256=hashlib.sha256(canonical_json(body).encode()).hexdigest(),
        spec=body,
    )
    session.add(version)
    session.flush()
    project.create()
    write_text_atomic(project.spec_file, json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    session.commit()
    log.info(
        "project %s: stored scenes.json with %d scenes as version %d",
        project_id,
        len(spec.scenes),
        version.number,
    )
    # A file named by a placeholder is known only at render time.
    refs = [ref for ref in spec.references() if not _templated(parsed, ref.field)]
    return StoredSpec(version, parsed, body, missing_assets(project, refs))


def _templated(parsed: template.Template, field_path: str) -> bool:
    return any(field_path in paths for paths in parsed.uses.values())


def latest_version(session: Session, project_id: str) -> ProjectVersion | None:
    return session.exec(
        select(ProjectVersion)
        .where(col(ProjectVersion.project_id) == project_id)
        .order_by(col(ProjectVersion.number).desc())
        .limit(1)
    ).first()


def project_versions(session: Session, storage: Storage, project_id: str) -> list[ProjectVersion]:
    existing_project(storage, project_id)
    return list(
        session.exec(
            select(ProjectVersion)
            .where(col(ProjectVersion.project_id) == project_id)
            .order_by(col(ProjectVersion.number))
        ).all()
    )


def project_version(
    session: Session, storage: Storage, project_id: str, number: int
) -> ProjectVersion:
    existing_project(storage, project_id)
    row = session.get(ProjectVersion, (project_id, number))
    if row is None:
        raise ApiError(404, "not_found", f"project {project_id!r} has no version {number}", "n")
    return row


def project_view(session: Session, storage: Storage, project_id: str) -> ProjectView:
    project = existing_project(storage, project_id)
    latest = latest_version(session, project_id)
    raw = latest.spec if latest is not None else None
    parsed = None
    spec: ProjectSpec | None = None
    if raw is not None:
        parsed, spec = check_spec(raw)
    else:
        spec = read_spec(project)
    row = session.get(Project, project_id)
    refs = spec.references() if spec else []
    if parsed is not None:
        refs = [ref for ref in refs if not _templated(parsed, ref.field)]
    return ProjectView(
        id=project_id,
        title=spec.title if spec else (row.title if row else None),
        spec=spec if parsed is None or not parsed.is_template else None,
        template=raw if parsed is not None and parsed.is_template else None,
        version=latest.number if latest else None,
        variables=parsed.variables if parsed else {},
        assets=asset_names(project),
        missing_assets=missing_assets(project, refs),
        jobs=[
            JobSummary.model_validate(job, from_attributes=True)
            for job in jobs.latest_jobs(session, project_id)
        ],
    )


def project_list(session: Session) -> list[ProjectSummary]:
    """Every project, the last changed first, with its newest job and latest poster."""
    rows = session.exec(select(Project).order_by(col(Project.updated_at).desc())).all()
    found = []
    for row in rows:
        latest = jobs.latest_jobs(session, row.id, limit=1)
        video = jobs.last_succeeded_output(session, row.id)
        found.append(
            ProjectSummary(
                id=row.id,
                title=row.title,
                scene_count=row.scene_count,
                updated_at=row.updated_at,
                last_job=JobSummary.model_validate(latest[0], from_attributes=True)
                if latest
                else None,
                poster=poster_name(video) if video else None,
            )
        )
    return found


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
    blobs: BlobStore | None = None,
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
    source = load_source(session, storage, project_id, request.version, problems)
    order = check_render(settings, storage, project_id, request, problems, source=source)
    problems.raise_first()
    assert order is not None  # no problem: every step gave its part
    if blobs is not None:
        # The workers read the inputs from the store: a store that is down is 503 naming it
        # (StoreUnavailable), before any job exists.
        publish_inputs(blobs, storage.project(project_id))
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
    # The project version the spec came from (None: a project stored before versions), the
    # variables' values it was resolved with, the sha256 of each file it reads.
    version: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    assets: dict[str, str] = field(default_factory=dict)


@dataclass
class Memo:
    """What the checks of one request learn about the project's files, kept for its other
    orders: a batch of a thousand rows reads each file's header and bytes once."""

    digests: dict[str, str] = field(default_factory=dict)  # 'images/a.jpg' → sha256
    present: dict[tuple[str, str], bool] = field(default_factory=dict)  # (folder, name)
    voices: dict[tuple[str, str], float | None] = field(default_factory=dict)  # its seconds


@dataclass(frozen=True)
class SpecSource:
    """The stored spec a render resolves: a version's template (or input/scenes.json of a
    project stored before versions)."""

    template: template.Template
    version: int | None


def load_source(
    session: Session,
    storage: Storage,
    project_id: str,
    version: int | None,
    problems: Problems,
) -> SpecSource | None:
    """The version `version` of the project's spec (default: the latest), as a template."""
    if version is not None:
        row = session.get(ProjectVersion, (project_id, version))
        if row is None:
            problems.add(
                ApiError(
                    404, "not_found", f"project {project_id!r} has no version {version}", "version"
                )
            )
            return None
    else:
        row = latest_version(session, project_id)
    if row is not None:
        raw: Any = row.spec
    else:  # stored before versions: the file is the spec
        project = storage.project(project_id)
        try:
            raw = json.loads(project.spec_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.add(_no_scenes(project_id))
            return None
        except ValueError as exc:
            problems.add(ApiError(422, "invalid_spec", f"input/scenes.json: {exc}"))
            return None
    try:
        parsed, _ = check_spec(raw)
    except ApiError as exc:
        problems.add(exc)
        return None
    return SpecSource(parsed, row.number if row is not None else None)


def _no_scenes(project_id: str) -> ApiError:
    return ApiError(
        409,
        "no_scenes",
        f"project {project_id!r} has no scenes yet; PUT /v1/projects/{project_id}/scenes first",
    )


def resolve_spec(
    project: ProjectDir,
    source: SpecSource,
    data: dict[str, Any],
    where: str,
    problems: Problems,
) -> tuple[ProjectSpec, dict[str, Any]] | None:
    """The spec the template makes with `data`, and the variables' values: every unknown
    name, wrong type, file not uploaded and placeholder left without a value is a 422
    naming the variable (`where`: `data`, or `rows[3]` in a batch)."""
    before = len(problems)
    try:
        values = template.values(source.template, data, where)
    except template.TemplateError as exc:
        for problem in exc.problems:
            problems.add(ApiError(422, problem.code, problem.message, problem.field))
        return None
    variables = source.template.variables
    for name, value in values.items():
        kind = variables[name].type
        if kind not in template.FILE_TYPES:
            continue
        folders = [k.folder for k in assets.KINDS if k.media.name == kind]
        if not any(project.asset(folder, value).is_file() for folder in folders):
            uploaded_as = ", ".join(f"{folder}/" for folder in folders) or "no asset kind yet"
            problems.add(
                ApiError(
                    422,
                    "missing_assets",
                    f"{where}.{name}: variable {name!r} ({kind}) names {value!r}, which is not "
                    f"an uploaded {kind} file ({uploaded_as})",
                    f"{where}.{name}",
                )
            )
    if len(problems) > before:
        return None
    try:
        spec = ProjectSpec.model_validate(template.substitute(source.template, values))
    except ValidationError as exc:
        refused = validation_error(list(exc.errors()))
        refused.message = f"{refused.message} (with the values of {where})"
        problems.add(refused)
        return None
    return spec, values


def check_render(
    settings: Settings,
    storage: Storage,
    project_id: str,
    request: RenderRequest,
    problems: Problems,
    *,
    source: SpecSource | None = None,
    where: str = "data",
    memo: Memo | None = None,
) -> RenderOrder | None:
    """Run every check of a render request, adding what each finds to `problems` in the order
    they run (the first is the answer); the order, when there was no problem.

    `source` is the stored spec to render (default: input/scenes.json), resolved with the
    request's `data`; `where` names that data in messages; `memo` is what the checks learn
    about the files, shared by the orders of one request (a batch reads each file once).

    A step that needs what an earlier one failed to give is skipped (no options: nothing
    about the spec's files or sound can be checked), and the work is counted only for a
    render that passed everything before it, since counting reads the voiceovers' headers.
    """
    memo = memo if memo is not None else Memo()
    problems.add(check_free_space(settings, storage))
    options = resolve_options(settings, request, problems)
    project = storage.project(project_id)
    if source is None and project.spec_file.is_file():
        source = load_source_file(project, problems)
    elif source is None:
        load_spec(project, project_id, problems)
    spec = None
    values: dict[str, Any] = {}
    if source is not None:
        resolved = resolve_spec(project, source, request.data or {}, where, problems)
        if resolved is not None:
            spec, values = resolved
    outline = None
    if spec is not None and options is not None:
        check_references(project, spec, options, problems, memo)
        check_sound(spec, options, problems)
        check_layers(project, spec, options, problems)
        outline = check_scenes(spec, options, problems)
        if not problems:
            check_work(settings, project, spec, options, problems, memo)
    callback = check_callback(settings, request.callback_url, problems)
    if problems or spec is None or options is None or outline is None or source is None:
        return None
    return RenderOrder(
        project_id=project_id,
        spec=spec,
        options=options,
        outline=outline,
        output_name=output_name(request, options),
        callback=callback,
        version=source.version,
        data=values,
        assets=asset_digests(
            project, spec_file.render_references(spec, options), options, memo.digests
        ),
    )


def load_source_file(project: ProjectDir, problems: Problems) -> SpecSource | None:
    """input/scenes.json as a template (no version): what check_render reads by itself."""
    try:
        raw = json.loads(project.spec_file.read_text(encoding="utf-8"))
        parsed, _ = check_spec(raw)
    except ValueError as exc:
        problems.add(ApiError(422, "invalid_spec", f"input/scenes.json: {exc}"))
        return None
    except ApiError as exc:
        problems.add(exc)
        return None
    return SpecSource(parsed, None)


def asset_digests(
    project: ProjectDir, refs: list[Reference], options: RenderOptions, memo: dict[str, str]
) -> dict[str, str]:
    """'images/a.jpg' → the sha256 of its bytes, for every file the render reads; `memo`
    keeps them for the other orders of the same request."""
    found: dict[str, str] = {}
    for ref in refs:
        folder = ref.kind.folder_for(options)
        key = f"{folder}/{ref.name}"
        if key not in memo:
            memo[key] = file_sha256(project.asset(folder, ref.name))
        found[key] = memo[key]
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
        problems.add(_no_scenes(project_id))
    return spec


def check_references(
    project: ProjectDir,
    spec: ProjectSpec,
    options: RenderOptions,
    problems: Problems,
    memo: Memo | None = None,
) -> None:
    """Every file the spec and the options name is uploaded. When the one file missing is of
    a kind an upload never infers (music), the answer says which subdir to upload it with and
    names the field that refers to it."""
    present = memo.present if memo is not None else {}

    def there(folder: str, name: str) -> bool:
        if (folder, name) not in present:
            present[(folder, name)] = project.asset(folder, name).is_file()
        return present[(folder, name)]

    missing = assets.missing(spec_file.render_references(spec, options), there, options)
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


def check_layers(
    project: ProjectDir, spec: ProjectSpec, options: RenderOptions, problems: Problems
) -> None:
    """What each scene asks of its layers (pipeline/layers/): a text layer names a font the
    render has (the packaged default or an upload in input/fonts/) with a glyph for each of its
    characters, burnt-in captions' narration has its glyphs in the captions' font, and so on:
    else 422 naming the field, rather than a render drawing boxes or nothing. A layer's times
    are checked against its scene where the scene's length is known now (a duration, no voice
    to make it longer)."""
    found = fonts.catalogue(project.input / assets.FONTS.folder)
    for index, scene in enumerate(spec.scenes):
        fixed = scene.voiceover is None and limits.spoken(scene.narration, None, options) is None
        seconds = scene.seconds if fixed else None
        context = layers.SceneContext(f"scenes[{index}]", scene, options, found, seconds)
        if bad := layers.problem(context):
            problems.add(ApiError(422, bad.code, bad.message, bad.field))
            return


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
    memo: Memo | None = None,
) -> None:
    """The render orders no more work than the limits allow (pipeline/limits.py), else 422
    naming the field and the setting: counted from the spec, the options, the voiceovers'
    headers and the narration's estimated speech, before any job row exists. Then each
    transition fits its neighbours (pipeline/transitions.py), else 422 naming it."""
    bounds = settings.limits()
    seconds = []
    estimated = set()  # scenes whose length is a guess until their speech is made
    try:
        for index, scene in enumerate(spec.scenes):
            voice = None
            if scene.voiceover is not None:
                voices = memo.voices if memo is not None else {}
                key = (options.voice_dir, scene.voiceover)
                if key not in voices:
                    path = project.asset(options.voice_dir, scene.voiceover)
                    voices[key] = limits.voiceover_seconds(path)
                voice = voices[key]
                limits.check_voiceover(index, voice, bounds)
            elif (text := limits.spoken(scene.narration, None, options)) is not None:
                voice = limits.speech_seconds(text, options.tts.rate if options.tts else None)
                estimated.add(index)
            seconds.append(timeline.scene_seconds(voice, scene.seconds))
        work = limits.check(spec, options, seconds, picture_size(options), bounds)
    except limits.OverLimit as exc:
        problems.add(ApiError(422, "over_limit", exc.message, exc.field))
        return
    # Each transition within what its neighbours can give (VALIDATE checks again with the
    # lengths decoded and spoken).
    frames = [
        None if index in estimated or seconds[index] is None else scene.frames
        for index, scene in enumerate(work.scenes)
    ]
    if problem := transitions.check(spec, options.fps, frames):
        problems.add(ApiError(422, problem.code, problem.message, problem.field))


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


def create_jobs(
    session: Session,
    orders: list[RenderOrder],
    extra: list[dict[str, Any]] | None = None,
) -> list[Job]:
    """A QUEUED job (its stage rows, its webhook) for each order, in the session's one
    transaction: the caller commits them all, or none. `extra` gives each job more of its
    fields (a batch's id and row)."""
    # Each project once (flushed, so a second order of it finds the row).
    for project_id, spec in {order.project_id: order.spec for order in orders}.items():
        upsert_project(session, project_id, spec)
    session.flush()
    created = jobs.create_jobs(
        session,
        [
            {
                "project_id": order.project_id,
                "output_name": order.output_name,
                "options": order.options.model_dump(by_alias=True),
                "scene_count": order.outline.scenes,
                "spoken": order.outline.spoken,
                "spec": order.spec.model_dump(mode="json", exclude_none=True),
                "version": order.version,
                "data": order.data,
                "assets": order.assets,
                **(extra[index] if extra is not None else {}),
            }
            for index, order in enumerate(orders)
        ],
    )
    for order, job in zip(orders, created, strict=True):
        if order.callback is not None:
            webhooks.register(session, job.id, order.callback)
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


def rerender(
    session: Session,
    storage: Storage,
    enqueue: Enqueuer,
    job_id: str,
    output_name: str | None,
) -> Job:
    """A new job rendering exactly what job `job_id` rendered: its resolved spec, options and
    files, each file checked against the digest the job recorded. 409 naming every file gone
    or changed since (a video made of other bytes would not be the same video)."""
    earlier = session.get(Job, job_id)
    if earlier is None:
        raise ApiError(404, "not_found", f"no job {job_id!r}", "jobId")
    if earlier.spec is None or earlier.assets is None:
        raise ApiError(
            409,
            "not_reproducible",
            f"job {job_id} was queued before jobs recorded their spec and files; render the "
            "project again instead",
        )
    project = storage.project(earlier.project_id)
    lost = []
    for key, digest in earlier.assets.items():
        folder, _, name = key.partition("/")
        path = project.asset(folder, name)
        if not path.is_file():
            lost.append(f"{key} (gone)")
        elif file_sha256(path) != digest:
            lost.append(f"{key} (changed since)")
    if lost:
        raise ApiError(
            409,
            "assets_gone",
            f"job {job_id} cannot be re-rendered exactly: {len(lost)} of its files are not as "
            f"they were: {', '.join(lost)}",
            "assets",
        )
    spec = ProjectSpec.model_validate(earlier.spec)
    options = RenderOptions.model_validate(earlier.options)
    order = RenderOrder(
        project_id=earlier.project_id,
        spec=spec,
        options=options,
        outline=registry.outline(spec, options),
        output_name=output_name or earlier.output_name,
        callback=None,
        version=earlier.version,
        data=dict(earlier.data or {}),
        assets=dict(earlier.assets),
    )
    [job] = create_jobs(session, [order])
    session.commit()
    enqueue_job(session, enqueue, job, order.outline)
    log.info("job %s: re-render of job %s", job.id, job_id)
    return job
