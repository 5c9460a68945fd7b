"""The README and docs/: every curl example in them runs against the API and gets the answer the
page promises; every page says first what it covers; every relative link and anchor resolves; every
setting and render option has its row.

The curl examples are read from the pages' ```bash blocks and run in order, one page at a time,
against the app under TestClient (the queue recorded, as in the other API tests): `NAME=value`
lines set variables, `cd` and the README's `python -c` line run, `for … do … done` loops
repeat their body, and each `curl` is translated flag by flag (-X -H -d --data-binary -F -o
-I). `$JOB` is the job the page's last render queued, `$BATCH` its last batch. The project
the pages call `harbour` exists beforehand with every file its spec names and one finished
render (`demo.mp4`), which is what the examples on outputs read.
"""

from __future__ import annotations

import json
import mimetypes
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.options import RenderOptions
from tasks import jobs
from tasks.db import session_scope
from tasks.models import JobStatus, Project
from tasks.settings import Settings
from tests.conftest import TOKEN, AppFactory, jpeg_bytes, png_bytes, wav_bytes

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
# Pages whose examples use variables another page sets: those of the API page.
SHARED_VARIABLES_FROM = ROOT / "docs" / "api.md"
README_MAX_LINES = 250


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def commands(block: str) -> list[list[str]]:
    """The block's logical lines as argument lists, comments dropped, continuations joined.

    A line whose comment opens with a status (`curl ... # 202 {...}`) ends with `#status=202`.
    """
    lines = block.replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if words and (status := re.search(r"\s#\s*([1-5]\d\d)\b", line)):
            words.append(f"#status={status.group(1)}")
        if words:
            out.append(words)
    return out


def curl_count(text: str) -> int:
    return sum(words[0] == "curl" for b in bash_blocks(text) for words in _flat(commands(b)))


def _flat(lines: list[list[str]]) -> Iterator[list[str]]:
    """Each command, a `for` loop's body among them."""
    for words in lines:
        if words[0] == "for" and "do" in words:
            words = words[words.index("do") + 1 :]
        if words:
            yield words


# --- running a page's examples ----------------------------------------------------------


@dataclass
class Run:
    client: TestClient
    cwd: Path
    # The pages tell the reader to export AUTH_TOKEN (or copy the one `make serve` printed).
    variables: dict[str, str] = field(default_factory=lambda: {"AUTH_TOKEN": TOKEN})
    ran: list[tuple[str, str, int]] = field(default_factory=list)

    def expand(self, word: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            assert name in self.variables, f"${name} is used before the page sets it"
            return self.variables[name]

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, word)

    def block(self, lines: list[list[str]]) -> None:
        index = 0
        while index < len(lines):
            words = lines[index]
            if words[0] == "for":  # for NAME in A B; do
                name, values = words[1], [w.rstrip(";") for w in words[3 : words.index("do")]]
                end = next(i for i in range(index, len(lines)) if lines[i] == ["done"])
                for loop_value in values:
                    self.variables[name] = loop_value
                    self.block(lines[index + 1 : end])
                index = end + 1
                continue
            self.command(words)
            index += 1

    def command(self, words: list[str]) -> None:
        if all(re.match(r"^[A-Za-z_]\w*=", w) for w in words):
            for word in words:
                name, _, value = word.partition("=")
                if not value.endswith("..."):  # JOB=3f0c...: the reader fills it in
                    self.variables[name] = self.expand(value)
            self.variables["TOKEN"] = TOKEN
            self.variables["AUTH"] = f"Authorization: Bearer {TOKEN}"
            self.variables["BASE"] = "http://testserver"
        elif words[0] == "cd":
            self.cwd = self.cwd / words[1]
        elif words[0].endswith("/python") and words[1] == "-c":
            subprocess.run([sys.executable, "-c", words[2]], cwd=self.cwd, check=True)
        elif words[0] == "curl":
            self.curl([self.expand(w) for w in words[1:]])

    def responses(self, method: str, path: str) -> set[str]:
        """The status codes /openapi.json lists for the route `path` matches."""
        route = path.split("?", 1)[0]
        paths = self.client.app.openapi()["paths"]  # type: ignore[attr-defined]
        for template, item in paths.items():
            if re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)), route):
                return set(item[method.lower()]["responses"])
        raise AssertionError(f"no route {method} {route} in /openapi.json")

    def curl(self, args: list[str]) -> None:
        method, url = "GET", ""
        headers: dict[str, str] = {}
        content: bytes | None = None
        files: list[tuple[str, tuple[str, bytes, str]]] = []
        data: dict[str, str] = {}
        words = iter(args)
        promised: int | None = None
        for arg in words:
            if arg.startswith("#status="):
                promised = int(arg.removeprefix("#status="))
            elif arg.startswith("http"):
                url = arg
            elif arg in ("-X", "--request"):
                method = next(words)
            elif arg in ("-H", "--header"):
                name, _, value = next(words).partition(":")
                headers[name.strip()] = value.strip()
            elif arg in ("-d", "--data", "--data-binary"):
                value = next(words)
                content = (
                    (self.cwd / value[1:]).read_bytes()
                    if value.startswith("@")
                    else (value.encode())
                )
                method = "POST" if method == "GET" else method
            elif arg in ("-F", "--form"):
                name, _, value = next(words).partition("=")
                if value.startswith("@"):
                    path = self.cwd / value[1:]
                    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                    files.append((name, (path.name, path.read_bytes(), ctype)))
                else:
                    data[name] = value
                method = "POST" if method == "GET" else method
            elif arg in ("-o", "--output"):
                next(words)
            elif re.fullmatch(r"-[sSNI]+", arg):
                method = "HEAD" if "I" in arg else method
            else:
                raise AssertionError(f"the docs' curl uses {arg!r}, which this test cannot run")
        assert url.startswith("http://testserver/"), url
        path = url.removeprefix("http://testserver")
        response = self.client.request(
            method,
            path,
            headers=headers,
            content=content,
            files=files or None,
            data=data or None,
        )
        self.ran.append((method, path, response.status_code))
        status = response.status_code
        said = f"curl -X {method} {path}: {status} {response.text[:500]}"
        assert str(status) in self.responses(method, path), f"undocumented status: {said}"
        if path == "/readyz":  # these tests run without a broker: its documented 503
            assert status == 503, said
        else:
            assert status < 400, said
            assert promised is None or status == promised, f"the page says {promised}: {said}"
        if method == "POST" and path.endswith("/render"):
            self.variables["JOB"] = response.json()["jobId"]
        if method == "POST" and path.endswith("/batches"):
            self.variables["BATCH"] = response.json()["batchId"]


HARBOUR_FILES = {
    "images": ["pier.jpg", "boats.jpg", "stalls.jpg", "fish.jpg", "crowd.png", "sunset.jpg"],
    "voiceovers": ["intro.wav", "market.mp3"],
    "music": ["bed.mp3"],
}


def _bytes(name: str) -> bytes:
    if name.endswith(".png"):
        return png_bytes()
    return jpeg_bytes() if name.endswith(".jpg") else wav_bytes(1.0)


def harbour(client: TestClient, work: Path, mp4: bytes) -> None:
    """The project the pages use: the spec page's example, all its files uploaded (and in
    `work`, for the examples' `@file`s), and a finished render of demo.mp4."""
    spec = next(
        json.loads(block)
        for block in re.findall(r"^```json\n(.*?)^```", _read("spec.md"), re.DOTALL | re.M)
        if '"scenes"' in block
    )
    (work / "scenes.json").write_text(json.dumps(spec))
    assert client.put("/v1/projects/harbour/scenes", json=spec).status_code == 200
    for subdir, names in HARBOUR_FILES.items():
        for name in names:
            (work / name).write_bytes(_bytes(name))
        parts = [("files", (name, _bytes(name), "application/octet-stream")) for name in names]
        answer = client.post("/v1/projects/harbour/assets", files=parts, data={"subdir": subdir})
        assert answer.status_code == 201, answer.text
    settings = client.app.state.settings  # type: ignore[attr-defined]
    with session_scope(settings.db_url) as session:
        assert session.get(Project, "harbour") is not None
        job = jobs.create_job(
            session, project_id="harbour", output_name="demo.mp4", options={}, scene_count=3
        )
        jobs.transition(session, job.id, JobStatus.RUNNING)
        jobs.transition(session, job.id, JobStatus.SUCCEEDED)
    output = settings.render_storage / "projects" / "harbour" / "output"
    output.mkdir(parents=True, exist_ok=True)
    (output / "demo.mp4").write_bytes(mp4)
    for poster in ("demo.jpg", "scene_02.jpg"):
        (output / poster).write_bytes(jpeg_bytes())


def _read(name: str) -> str:
    return (ROOT / "docs" / name).read_text()


def _sample_outputs(client: TestClient, mp4: bytes) -> None:
    """What the worker would have published by the README's last step."""
    settings = client.app.state.settings  # type: ignore[attr-defined]
    output = settings.render_storage / "projects" / "sample" / "output"
    output.mkdir(parents=True, exist_ok=True)
    (output / "first.mp4").write_bytes(mp4)


PAGES_WITH_CURL = [p for p in [README, *PAGES] if curl_count(p.read_text())]


@pytest.mark.parametrize("page", PAGES_WITH_CURL, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_curl_example_runs(
    page: Path, make_client: AppFactory, tmp_path: Path, mp4_bytes: bytes
) -> None:
    client = make_client()
    work = tmp_path / "work"
    work.mkdir()
    harbour(client, work, mp4_bytes)
    _sample_outputs(client, mp4_bytes)
    client.headers.pop("Authorization")  # the examples' own -H "$AUTH" must authenticate
    run = Run(client, work)
    if page != SHARED_VARIABLES_FROM:
        for block in bash_blocks(SHARED_VARIABLES_FROM.read_text()):
            run.block([w for w in commands(block) if w[0] != "curl" and "=" in w[0]])
    for block in bash_blocks(page.read_text()):
        run.block(commands(block))
    assert len(run.ran) == curl_count(page.read_text()) + _loop_repeats(page)
    print(*run.ran, sep="\n")


def _loop_repeats(page: Path) -> int:
    """Extra runs of curls inside `for` loops (each runs once per value)."""
    extra = 0
    for block in bash_blocks(page.read_text()):
        lines = commands(block)
        for i, words in enumerate(lines):
            if words[0] == "for":
                end = next(j for j in range(i, len(lines)) if lines[j] == ["done"])
                curls = sum(w[0] == "curl" for w in lines[i + 1 : end])
                extra += curls * (len(words[3 : words.index("do")]) - 1)
    return extra


def test_the_api_pages_examples_cover_every_route() -> None:
    """Each route of /openapi.json has a curl example in the README or docs/api.md."""
    from api.apidoc import openapi

    text = README.read_text() + SHARED_VARIABLES_FROM.read_text()
    used = set()
    for block in bash_blocks(text):
        for words in _flat(commands(block)):
            if words[0] == "curl":
                method = "HEAD" if any(re.fullmatch(r"-\w*I\w*", w) for w in words) else None
                method = method or next(
                    (words[i + 1] for i, w in enumerate(words[:-1]) if w == "-X"), None
                )
                method = method or ("POST" if {"-d", "-F"} & set(words) else "GET")
                url = next(w for w in words if "$BASE" in w)
                path = re.sub(r"\$\w+", "{}", url.split("$BASE", 1)[1].split("?", 1)[0])
                used.add((method, path))
    for path, item in openapi()["paths"].items():
        for method in item:
            assert (method.upper(), re.sub(r"\{\w+\}", "{}", path)) in used, (method, path)


# --- the pages themselves -------------------------------------------------------------------


def test_every_setting_has_a_row_in_the_settings_page() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in text]
    assert not missing, f"docs/settings.md does not describe {missing}"


def test_every_render_option_has_a_row_in_the_spec_page() -> None:
    text = (ROOT / "docs" / "spec.md").read_text()
    names = [info.alias or name for name, info in RenderOptions.model_fields.items()]
    missing = [name for name in names if f"| `{name}`" not in text and f", `{name}`" not in text]
    assert not missing, f"docs/spec.md's render options table does not describe {missing}"


def test_the_readme_is_a_front_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md is {len(lines)} lines; move detail to docs/"
    assert "make demo" in README.read_text() and "make test" in README.read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_page_says_first_what_it_covers(page: Path) -> None:
    lines = page.read_text().splitlines()
    assert lines[0].startswith("# "), f"{page.name} starts with its title"
    first = next(line for line in lines[1:] if line.strip() and not line.startswith("<!--"))
    assert not first.startswith(("#", "```", "|", "-")), (
        f"{page.name}: a sentence saying what the page covers comes before anything else"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_index_lists_every_page(page: Path) -> None:
    if page.name != "README.md":
        assert f"]({page.name})" in (ROOT / "docs" / "README.md").read_text()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    found = set(re.findall(r'<a id="([^"]+)">', text))
    fence = False
    for line in text.splitlines():
        fence ^= line.startswith("```")
        if not fence and (match := re.match(r"#+ (.*)", line)):
            found.add(slug(match.group(1)))
    return found


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        assert linked.is_file(), f"{page.name}: {target} names no file"
        if anchor:
            assert anchor in anchors(linked.read_text()), f"{page.name}: no #{anchor} in {file}"
