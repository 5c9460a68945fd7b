"""docker/Dockerfile and compose.yaml, kept honest without a Docker engine.

The files are parsed (PyYAML; the Dockerfile line by line) and checked against the code:
every command and health check is one the project provides, every variable is a setting with
the service's default, volumes and ports agree with the settings and the commands. Then the
very commands of the compose services are run here, outside containers (the executable
resolved in this venv, the API on a free loopback port): the API, a worker, the webhook
deliverer and Flower against one Redis, a render through them, a webhook with the API
stopped, and each health check against the live processes; and the API and Flower refusing
to start without their own secrets.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture
from tasks.app import worker_argv
from tasks.redis_server import EmbeddedRedis
from tasks.settings import Settings
from tests.deploy import (
    COMPOSE,
    DOCKERFILE,
    ROOT,
    SETTING_NAMES,
    answers,
    compose,
    local,
    service,
    with_option,
)
from tests.e2e import Api, free_port
from tests.webhook_receiver import receiving

OURS = ("api", "worker", "webhooks", "flower")  # the services that run this project's image
_VAR = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::-(?P<default>[^}]*)|:\?(?P<required>[^}]*))?\}")
# The secrets compose requires (`${NAME:?message}`: no default), as an operator's shell sets them.
SECRETS = {"AUTH_TOKEN": "deploy-token", "FLOWER_BASIC_AUTH": "ops:deploy-secret"}
WEBHOOK_SECRET = "deploy-webhook-secret"


class MissingVariable(ValueError):
    """Compose's refusal of an unset or empty `${NAME:?message}`."""


def interpolate(value: object, env: dict[str, str] | None = None) -> str:
    """Compose's `${NAME:-default}` and `${NAME:?message}`, with `env` standing for the
    shell (by default one that sets the required secrets)."""
    env = SECRETS if env is None else env

    def value_of(m: re.Match[str]) -> str:
        given = env.get(m["name"])
        if not given and m["required"] is not None:
            raise MissingVariable(f"{m['name']}: {m['required']}")
        return given or m["default"] or ""

    return _VAR.sub(value_of, str(value))


def environment(name: str, env: dict[str, str] | None = None) -> dict[str, str]:
    raw = service(name).get("environment") or {}
    return {key: interpolate(value, env) for key, value in raw.items()}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if line.endswith("\\"):
            continue
        keyword, _, args = pending.strip().partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return out


def exec_form(args: str) -> list[str]:
    import json

    value = json.loads(args)
    assert isinstance(value, list), f"{args!r} is not in exec form"
    return [str(v) for v in value]


def instruction(keyword: str) -> list[Instruction]:
    return [i for i in dockerfile() if i.keyword == keyword]


def healthcheck_command() -> list[str]:
    (check,) = instruction("HEALTHCHECK")
    return exec_form(check.args.split("CMD", 1)[1].strip())


# --- compose.yaml ---------------------------------------------------------------------------


def test_the_services_are_there_and_ours_share_one_image_and_the_data_volume() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "api", "worker", "webhooks", "flower", "postgres", "s3"}
    for name in OURS:
        svc = services[name]
        assert svc["build"] == {"context": ".", "dockerfile": "docker/Dockerfile"}
        assert svc["volumes"] == ["./data:/data"]
        assert environment(name)["RENDER_STORAGE"] == "/data"  # the volume's mount point
        assert "container_name" not in svc  # `--scale worker=4` needs unnamed containers
    assert "ports" not in services["worker"]  # four of them cannot share a host port
    assert "ports" not in services["webhooks"]  # it only calls out
    assert (ROOT / services["api"]["build"]["dockerfile"]).is_file()


def test_redis_is_append_only_with_a_healthcheck() -> None:
    redis = service("redis")
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "redis:/data" in redis["volumes"]


def test_every_variable_is_a_setting_with_the_service_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    baseline = Settings()
    for svc in OURS:
        env = environment(svc)
        assert set(env) <= SETTING_NAMES, f"{svc}: not settings: {set(env) - SETTING_NAMES}"
        raw = service(svc)["environment"]
        for name, value in raw.items():
            match = _VAR.fullmatch(str(value))
            if match is None:  # a value of the deployment (paths, the Redis host)
                Settings(**{name.lower(): str(value)})  # still a valid one
                continue
            assert match["name"] == name, f"{svc}: {name} takes ${{{match['name']}}}"
            if match["required"] is not None:  # a secret: no default at all
                assert name in SECRETS, f"{svc}: {name} is required, not a secret"
                continue
            default = match["default"] or ""
            given = Settings(**{name.lower(): default})
            if name.startswith("DEFAULT_"):
                option = name.removeprefix("DEFAULT_").lower()
                assert getattr(given.default_options(), option) == getattr(
                    baseline.default_options(), option
                ), f"{svc}: {name} defaults to {default!r}, the service to another"
            elif name == "DB_URL":
                assert default == "", "empty DB_URL is the SQLite file under RENDER_STORAGE"
            else:
                field = name.lower()
                assert getattr(given, field) == getattr(baseline, field), (
                    f"{svc}: {name} defaults to {default!r}, the service to "
                    f"{getattr(baseline, field)!r}"
                )


def test_api_worker_and_flower_share_the_settings_that_must_agree() -> None:
    shared = ("REDIS_URL", "DB_URL", "RENDER_STORAGE", "AUTH_TOKEN")
    envs = {svc: environment(svc) for svc in OURS}
    for name in shared:
        assert len({envs[svc][name] for svc in OURS}) == 1, name


def test_depends_on_waits_for_healthy_services() -> None:
    for svc in OURS:
        depends = service(svc)["depends_on"]
        assert depends["redis"] == {"condition": "service_healthy"}
        # Optional: only with the postgres profile.
        assert depends["postgres"] == {"condition": "service_healthy", "required": False}


def test_the_postgres_profile_is_optional_and_the_image_has_its_driver() -> None:
    postgres = service("postgres")
    assert postgres["profiles"] == ["postgres"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    # A Postgres DB_URL needs a driver in the image: the Dockerfile's EXTRAS install it.
    (extras,) = [i.args for i in instruction("ARG") if i.args.startswith("EXTRAS=")]
    assert "postgres" in extras.split("=", 1)[1].strip('"').split()
    url = "postgresql+psycopg://render:render@postgres:5432/render"
    assert url in COMPOSE.read_text()
    assert Settings(db_url=url).db_url == url
    import sqlalchemy

    assert sqlalchemy.engine.make_url(url).get_dialect().driver == "psycopg"


def test_health_checks_are_the_projects_own_for_each_role() -> None:
    for svc in OURS:
        test = service(svc)["healthcheck"]["test"]
        assert test == ["CMD", "python", "-m", "tasks.healthcheck", svc], svc
    assert service("api")["healthcheck"]["test"][1:] == healthcheck_command()


def test_the_worker_has_time_for_a_warm_shutdown() -> None:
    grace = service("worker")["stop_grace_period"]
    seconds = int(grace.removesuffix("s"))
    shutdown = float(interpolate(service("worker")["environment"]["SHUTDOWN_GRACE"]))
    # Time to finish the stage, or to stop FFmpeg and hand the stage back, before Docker's
    # SIGKILL lands.
    assert seconds >= shutdown + 15, (seconds, shutdown)
    api = service("api")
    graceful = api["command"][api["command"].index("--timeout-graceful-shutdown") + 1]
    assert int(api["stop_grace_period"].removesuffix("s")) > int(graceful)
    # The deliverer records its attempts in flight, each within WEBHOOK_TIMEOUT, then exits.
    deliverer = service("webhooks")
    attempt = float(interpolate(deliverer["environment"]["WEBHOOK_TIMEOUT"]))
    assert int(deliverer["stop_grace_period"].removesuffix("s")) >= attempt + 5


def test_ports_match_the_commands_and_settings() -> None:
    api = service("api")
    port = api["command"][api["command"].index("--port") + 1]
    assert api["ports"] == [f"127.0.0.1:{port}:{port}"]
    flower = service("flower")
    assert flower["ports"] == [f"127.0.0.1:{flower['environment']['FLOWER_PORT']}:5555"]
    assert Settings(flower_port=flower["environment"]["FLOWER_PORT"]).flower_port == 5555
    # Inside the container, so the published port reaches it (its host side is loopback).
    assert flower["environment"]["FLOWER_ADDRESS"] == "0.0.0.0"


LOOPBACK = {"127.0.0.1", "::1", "[::1]"}


def published_on(spec: str | int | dict[str, Any]) -> str | None:
    """The host address a `ports:` entry binds, in either syntax; None for every interface."""
    if isinstance(spec, dict):
        return str(spec["host_ip"]) if spec.get("host_ip") else None
    text = str(spec)
    if text.startswith("["):  # [::1]:8080:8080
        return text[: text.index("]") + 1]
    parts = text.split(":")
    return parts[0] if len(parts) == 3 else None  # HOST:PUBLISHED:TARGET, or a bare publish


def test_nothing_is_published_beyond_the_hosts_loopback() -> None:
    """Fail closed: the API and Flower are reached from elsewhere only through a proxy the
    operator puts in front, never by default."""
    published = 0
    for name, svc in compose()["services"].items():
        assert svc.get("network_mode") != "host", name
        for spec in svc.get("ports", []):
            published += 1
            assert "0.0.0.0" not in str(spec), (name, spec)
            assert published_on(spec) in LOOPBACK, f"{name} publishes {spec!r} on every interface"
    assert published == 2  # the API and Flower
    assert published_on("8080:8080") is None and published_on(8080) is None
    assert published_on({"target": 8080, "host_ip": "0.0.0.0"}) == "0.0.0.0"


def test_the_secrets_are_required_with_no_default() -> None:
    """`${AUTH_TOKEN:?…}` and `${FLOWER_BASIC_AUTH:?…}`: compose itself refuses to start
    without them (unset or empty), naming them."""
    text = COMPOSE.read_text()
    assert "change-me" not in text
    for name in SECRETS:
        users = [svc for svc in OURS if name in (service(svc).get("environment") or {})]
        assert users, name
        for svc in users:
            raw = str(service(svc)["environment"][name])
            match = _VAR.fullmatch(raw)
            assert match is not None and match["required"] is not None, (svc, raw)
            assert name in match["required"], f"{svc}: the message should name {name}"
            unset = {k: v for k, v in SECRETS.items() if k != name}
            for shell in (unset, {**SECRETS, name: ""}):
                with pytest.raises(MissingVariable, match=name):
                    environment(svc, shell)
    assert "AUTH_TOKEN" in environment("worker") and "FLOWER_BASIC_AUTH" in environment("flower")


def test_the_commands_are_the_projects_own(tmp_path: Path) -> None:
    settings = Settings(render_storage=tmp_path, redis_url="redis://redis:6379/0")
    api = service("api")["command"]
    assert api == exec_form(instruction("CMD")[0].args)  # the image's default command
    assert api[:3] == ["uvicorn", "api.main:create_app", "--factory"]
    worker = service("worker")["command"]
    # What `make serve` and the tests run, less the concurrency (the setting gives it).
    ours = [a for a in worker_argv(settings)[2:] if not a.startswith("--concurrency")]
    assert worker == ["celery", *ours]
    assert service("flower")["command"] == ["python", "-m", "tasks.flower"]
    assert service("webhooks")["command"] == ["python", "-m", "api.deliverer"]
    (entrypoint,) = instruction("ENTRYPOINT")
    assert exec_form(entrypoint.args) == ["/usr/bin/tini", "--"]


# --- docker/Dockerfile ----------------------------------------------------------------------


def test_the_image_is_slim_python_non_root_with_tini_and_jq() -> None:
    (base,) = instruction("FROM")
    assert base.args == "python:3.11-slim"
    runs = " ".join(i.args for i in instruction("RUN"))
    apt = re.search(r"apt-get install (.*?)(&&|$)", runs)
    assert apt is not None
    assert {"tini", "jq"} <= set(apt.group(1).split())
    (user,) = instruction("USER")
    assert user.args not in {"root", "0"}
    assert re.search(rf"useradd .*--uid \"?\$\{{UID\}}\"? .* {user.args}\b", runs)
    order = [i.keyword for i in dockerfile()]
    assert order.index("USER") < order.index("CMD")


def test_dependencies_are_installed_from_pyproject_before_the_source_is_copied() -> None:
    steps = dockerfile()
    copies = [(n, i.args) for n, i in enumerate(steps) if i.keyword == "COPY"]
    deps_copy = next(n for n, args in copies if "pyproject.toml" in args.split())
    install = next(
        n for n, i in enumerate(steps) if i.keyword == "RUN" and "requirements.py" in i.args
    )
    source = min(n for n, args in copies if args.split()[0] in {"api", "tasks", "pipeline"})
    assert deps_copy < install < source
    # Only pyproject.toml and the script reach the dependency layer.
    assert set(steps[deps_copy].args.split()[:-1]) == {"docker/requirements.py", "pyproject.toml"}
    assert "--no-deps" in next(i.args for i in steps[source:] if i.keyword == "RUN")


def test_no_build_step_downloads_outside_the_package_registries() -> None:
    text = " ".join(i.args for i in dockerfile() if i.keyword in {"RUN", "ADD"})
    assert not re.search(r"\b(curl|wget|git clone)\b|https?://", text)
    assert not instruction("ADD")


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    ignore = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line.removeprefix("!").rstrip("/") for line in ignore if line.startswith("!")}
    for step in instruction("COPY"):
        for source in step.args.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert source in allowed, f"{source} is excluded from the build context"


def test_requirements_are_read_off_pyproject(tmp_path: Path) -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    run = [sys.executable, str(ROOT / "docker" / "requirements.py"), str(ROOT / "pyproject.toml")]
    out = subprocess.run([*run, "postgres"], capture_output=True, text=True, check=True).stdout
    expected = project["dependencies"] + project["optional-dependencies"]["postgres"]
    assert out.splitlines() == expected
    bad = subprocess.run([*run, "postgress"], capture_output=True, text=True)
    assert bad.returncode != 0 and "no extra 'postgress'" in bad.stderr


def test_the_build_args_name_real_extras() -> None:
    """The neural TTS engine is `--build-arg EXTRAS="postgres neural"`, as documented."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    documented = re.findall(r'--build-arg EXTRAS="([^"]+)"', DOCKERFILE.read_text())
    assert documented
    for value in documented:
        for extra in value.split():
            assert extra in extras, f"the Dockerfile documents an extra {extra!r} pyproject lacks"


def test_the_build_time_smoke_check_passes_here() -> None:
    """docker/smoke.py, which the build runs: FFmpeg has what renders need and the default
    TTS engine's library speaks."""
    runs = [i.args for i in instruction("RUN")]
    assert any("python docker/smoke.py" in r for r in runs)
    done = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "smoke.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "every encoder and filter present" in done.stdout
    assert "espeak-ng:" in done.stdout and "samples at 22050 Hz" in done.stdout


# What python:3.11-slim (Debian) has without any package installed, plus libstdc++6, which the
# Dockerfile names.
SLIM_LIBRARIES = {
    "linux-vdso.so.1",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libmvec.so.1",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
}


def test_the_wheels_native_binaries_need_nothing_the_slim_image_lacks() -> None:
    import espeakng_loader
    import imageio_ffmpeg

    for binary in (imageio_ffmpeg.get_ffmpeg_exe(), espeakng_loader.get_library_path()):
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        needed = {line.split()[0].rsplit("/", 1)[-1] for line in out.splitlines() if line.strip()}
        assert needed, out
        assert needed <= SLIM_LIBRARIES, f"{binary} needs {needed - SLIM_LIBRARIES}"
    assert "libstdc++6" in " ".join(i.args for i in instruction("RUN"))


# --- the very commands, run outside containers -----------------------------------------------


@dataclass
class Deployment:
    env: dict[str, str]
    api_url: str
    processes: dict[str, subprocess.Popen[bytes]]
    storage: Path


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def health(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(local(argv), env=env, capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    storage = tmp_path_factory.mktemp("data")
    logs = tmp_path_factory.mktemp("logs")
    with EmbeddedRedis(storage / "redis") as redis:
        env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
        # The compose file's environment, with a test's own values where a host differs.
        shell = {
            **SECRETS,
            "DEFAULT_RESOLUTION": "320x180",
            "DEFAULT_PRESET": "veryfast",
            "WORKER_CONCURRENCY": "1",
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "WEBHOOK_ALLOW_PRIVATE": "true",  # the test's receiver listens on 127.0.0.1
        }
        env.update(environment("flower", shell))
        env.update(RENDER_STORAGE=str(storage), REDIS_URL=redis.url, FLOWER_ADDRESS="127.0.0.1")
        env["FLOWER_PORT"] = str(free_port())
        api_port = free_port()
        commands = {
            "api": with_option(
                with_option(local(service("api")["command"]), "--host", "127.0.0.1"),
                "--port",
                str(api_port),
            ),
            "worker": local(service("worker")["command"]),
            "flower": local(service("flower")["command"]),
            "webhooks": local(service("webhooks")["command"]),
        }
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name, argv in commands.items():
                out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 (lives with the process)
                processes[name] = subprocess.Popen(
                    argv, env=env, cwd=ROOT, stdout=out, stderr=out, start_new_session=True
                )
            api_url = f"http://127.0.0.1:{api_port}"
            wait_for(lambda: answers(f"{api_url}/healthz"), 60, "the API answering")
            flower = f"http://127.0.0.1:{env['FLOWER_PORT']}"
            wait_for(lambda: answers(f"{flower}/healthcheck"), 60, "Flower answering")
            yield Deployment(env, api_url, processes, storage)
        finally:
            for proc in processes.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in processes.values():
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.mark.e2e
def test_the_compose_commands_render_a_job(deployment: Deployment, tmp_path: Path) -> None:
    api = Api(deployment.api_url)
    api.http.headers["Authorization"] = "Bearer deploy-token"
    scenes = [
        SceneFixture(
            (ImageFixture("a.jpg", 320, 240, "testsrc2"),), VoiceFixture("a.wav", 1.0, 440)
        )
    ]
    api.upload_project("deploy", scenes, tmp_path)
    job = api.wait(api.render("deploy", minShot=0.5, xfade=0.2), timeout=120)
    assert job["status"] == "SUCCEEDED", job
    assert job["stages"][0]["worker"].startswith("celery@")  # the compose worker's own name
    assert (deployment.storage / "projects" / "deploy" / "output" / "video.mp4").is_file()


@pytest.mark.e2e
def test_the_health_checks_pass_against_the_live_processes(deployment: Deployment) -> None:
    env = deployment.env
    api_check = [*service("api")["healthcheck"]["test"][1:], "--url", deployment.api_url]
    done = health(api_check, env)
    assert done.returncode == 0, done.stderr
    # The image's own HEALTHCHECK is the same command.
    assert health([*healthcheck_command(), "--url", deployment.api_url], env).returncode == 0
    wrong = health(api_check, {**env, "AUTH_TOKEN": "not-the-token"})
    assert wrong.returncode == 1 and "401" in wrong.stderr
    # The worker beats on its row once its watchdog runs (every WATCHDOG_INTERVAL).
    worker_check = service("worker")["healthcheck"]["test"][1:]
    wait_for(lambda: health(worker_check, env).returncode == 0, 30, "the worker check passing")
    flower_check = service("flower")["healthcheck"]["test"][1:]
    done = health(flower_check, env)
    assert done.returncode == 0, done.stderr
    webhooks_check = service("webhooks")["healthcheck"]["test"][1:]
    wait_for(lambda: health(webhooks_check, env).returncode == 0, 30, "the deliverer passing")


@pytest.mark.e2e
def test_flower_is_behind_basic_auth_on_the_same_broker(deployment: Deployment) -> None:
    flower = f"http://127.0.0.1:{deployment.env['FLOWER_PORT']}"
    assert httpx.get(f"{flower}/workers", timeout=10).status_code == 401
    wrong = httpx.get(f"{flower}/workers", auth=("ops", "guess"), timeout=10)
    assert wrong.status_code == 401

    # Flower's API sees the compose worker through the broker it shares with the API.
    def seen() -> bool:
        workers = httpx.get(
            f"{flower}/api/workers?refresh=1", auth=("ops", "deploy-secret"), timeout=20
        )
        return workers.status_code == 200 and any(
            name.startswith("celery@") for name in workers.json()
        )

    wait_for(seen, 40, "Flower listing the worker")


@pytest.mark.e2e
def test_health_checks_fail_when_the_process_is_gone(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env.update(RENDER_STORAGE=str(tmp_path), FLOWER_PORT=str(free_port()))
    url = f"http://127.0.0.1:{free_port()}"
    for argv in (
        [*service("api")["healthcheck"]["test"][1:], "--url", url],
        service("worker")["healthcheck"]["test"][1:],
        service("flower")["healthcheck"]["test"][1:],
        service("webhooks")["healthcheck"]["test"][1:],
    ):
        done = health(argv, env)
        assert done.returncode == 1, (shlex.join(argv), done.stdout)
        assert done.stderr.startswith("unhealthy:"), done.stderr  # one line, no warnings


@pytest.mark.e2e
def test_webhooks_go_out_from_their_own_process_with_the_api_stopped(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The `webhooks` service delivers: with the API process frozen (SIGSTOP) right after
    the job is queued, the worker renders it and the deliverer sends the signed document."""
    api = Api(deployment.api_url)
    api.http.headers["Authorization"] = f"Bearer {SECRETS['AUTH_TOKEN']}"
    scenes = [
        SceneFixture(
            (ImageFixture("h.jpg", 320, 240, "testsrc2"),), VoiceFixture("h.wav", 0.6, 330)
        )
    ]
    api.upload_project("hooked", scenes, tmp_path)
    the_api = deployment.processes["api"]
    with receiving(WEBHOOK_SECRET, [204]) as receiver:
        body = {"renderOptions": {"minShot": 0.4, "xfade": 0.1}, "callbackUrl": receiver.url}
        queued = api.http.post("/v1/projects/hooked/render", json=body)
        assert queued.status_code == 202, queued.text
        the_api.send_signal(signal.SIGSTOP)
        try:
            assert receiver.deliveries == []  # the render has only just been queued
            assert receiver.wait_for(1, 120), "no webhook while the API was stopped"
        finally:
            the_api.send_signal(signal.SIGCONT)
    delivery = receiver.deliveries[0]
    assert delivery.signed and delivery.document["id"] == queued.json()["jobId"]
    assert delivery.document["status"] == "SUCCEEDED"
    job = api.wait(queued.json()["jobId"], lambda j: j["webhook"]["status"] != "PENDING", 30)
    assert (job["webhook"]["status"], job["webhook"]["statusCodes"]) == ("DELIVERED", [204])


UNSET = None


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("svc", "name", "value", "says"),
    [
        ("api", "AUTH_TOKEN", UNSET, "AUTH_TOKEN is the default 'change-me': refusing to start"),
        ("api", "AUTH_TOKEN", "change-me", "AUTH_TOKEN is the default 'change-me'"),
        ("api", "AUTH_TOKEN", "new-secret,change-me", "AUTH_TOKEN is the default 'change-me'"),
        ("api", "AUTH_TOKEN", "", "AUTH_TOKEN must hold at least one token"),
        ("flower", "FLOWER_BASIC_AUTH", UNSET, "FLOWER_BASIC_AUTH is not set: refusing"),
        ("flower", "FLOWER_BASIC_AUTH", "", "FLOWER_BASIC_AUTH is not set: refusing"),
        ("flower", "FLOWER_BASIC_AUTH", "admin:", "FLOWER_BASIC_AUTH is missing a user or a"),
        ("flower", "FLOWER_BASIC_AUTH", "admin:change-me", "is the default password 'change-me'"),
    ],
)
def test_the_api_and_flower_refuse_to_start_without_their_own_secrets(
    tmp_path: Path, svc: str, name: str, value: str | None, says: str
) -> None:
    """The compose command itself, with compose's environment but for one secret left at the
    default or empty (as a host without compose's check would run it): it exits non-zero
    with one line naming the variable, before serving anything."""
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env.update(environment(svc))
    env.update(RENDER_STORAGE=str(tmp_path), REDIS_URL="redis://127.0.0.1:1/0")
    env.update(FLOWER_ADDRESS="127.0.0.1", FLOWER_PORT=str(free_port()))
    if value is UNSET:
        del env[name]
    else:
        env[name] = value
    argv = local(service(svc)["command"])
    if svc == "api":
        argv = with_option(with_option(argv, "--host", "127.0.0.1"), "--port", str(free_port()))
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and says in lines[-1], done.stderr
    assert name in lines[-1]
    assert "Traceback" not in done.stderr


def test_the_s3_profile_is_optional_and_serves_the_bucket_with_the_services_keys() -> None:
    s3 = service("s3")
    assert s3["profiles"] == ["s3"]
    assert s3["entrypoint"] == ["weed"] and s3["command"][0] == "mini"
    assert "-s3.port=8333" in s3["command"] and "-bucket=renders" in s3["command"]
    assert "ports" not in s3  # inside the compose network only
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert s3["environment"][name] == service("api")["environment"][name]
    for svc in OURS:
        assert service(svc)["depends_on"]["s3"] == {
            "condition": "service_healthy",
            "required": False,
        }
