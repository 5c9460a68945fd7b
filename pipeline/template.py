"""Templates: a spec whose strings hold `{{name}}` placeholders, resolved with a render's data.

Resolution walks the parsed spec's values (every string, at any depth), never the JSON text:
a value cannot inject structure, and a field another module adds to the spec (a text layer, a
clip) is covered without being named here. Every problem is reported at once, each with the
variable and the field paths that use it.

Syntax, inside any string of the spec:
- `{{name}}` the variable's value; `{{ name }}` alike (spaces are ignored).
- `{{name|default}}` the value, or `default` (spaces around it trimmed) when the data has
  none.
- `\\{{` a literal `{{` (JSON source: `"\\\\{{"`); nothing else is an escape.
A string that is one placeholder and nothing else takes the value with its type, so
`"duration": "{{seconds}}"` with a number variable becomes a JSON number.

A spec may declare its variables under `variables` (`{"name": {"type": ..., "default": ...,
"description": ...}}`, types `VARIABLE_TYPES`); a placeholder of an undeclared name is a text
variable. File-typed values (image, audio, video) must be plain file names; whether such a file
is uploaded, and of the right kind, is the caller's check (it knows the project's files).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.names import check_safe_name

VariableType = Literal["text", "number", "image", "audio", "video"]
VARIABLE_TYPES: tuple[str, ...] = ("text", "number", "image", "audio", "video")
FILE_TYPES: frozenset[str] = frozenset({"image", "audio", "video"})
MAX_VARIABLES = 200
MAX_VALUE_CHARS = 20_000

_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
# An escaped `{{`, or a placeholder: its name and, after `|`, its default (no `}}` inside).
_TOKEN = re.compile(
    r"\\\{\{|\{\{\s*(?P<name>" + _NAME + r")\s*(?:\|(?P<default>(?:(?!\}\}).)*))?\}\}",
    re.DOTALL,
)
_OPEN = re.compile(r"(?<!\\)\{\{")


class Variable(BaseModel):
    """A declared variable of a template."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    type: VariableType = "text"
    default: str | float | int | None = None
    description: str | None = Field(None, max_length=1000)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a template or its data: a code, a message naming the variable,
    and the field at fault (`data.city`, `scenes[2].narration`)."""

    code: str
    message: str
    field: str
    variable: str | None = None


class TemplateError(ValueError):
    """The template or its data is wrong; `problems` holds every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems

    @property
    def first(self) -> Problem:
        return self.problems[0]


@dataclass(frozen=True)
class Template:
    """A spec as stored: its body (the spec without `variables`), the declared variables and
    the placeholders, each with the field paths that use it."""

    body: dict[str, Any]
    declared: dict[str, Variable]
    uses: dict[str, list[str]] = field(default_factory=dict)
    # Defaults written in placeholders (`{{name|default}}`), first one per name.
    inline_defaults: dict[str, str] = field(default_factory=dict)

    @property
    def variables(self) -> dict[str, Variable]:
        """Every variable: the declared ones, then each undeclared placeholder as text."""
        found = dict(self.declared)
        for name in self.uses:
            if name not in found:
                found[name] = Variable(type="text")
        return found

    @property
    def is_template(self) -> bool:
        return bool(self.uses or self.declared)

    def default(self, name: str) -> Any:
        variable = self.variables.get(name)
        if variable is not None and variable.default is not None:
            return variable.default
        return self.inline_defaults.get(name)


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in `value` with its field path (`scenes[2].narration`)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def parse(raw: Mapping[str, Any]) -> Template:
    """The template in a parsed spec; TemplateError for a bad declaration or placeholder."""
    problems: list[Problem] = []
    body = {key: value for key, value in raw.items() if key != "variables"}
    declared: dict[str, Variable] = {}
    given = raw.get("variables")
    if given is not None and not isinstance(given, Mapping):
        problems.append(Problem("invalid_template", "variables: must be an object", "variables"))
    elif given is not None:
        if len(given) > MAX_VARIABLES:
            problems.append(
                Problem(
                    "invalid_template",
                    f"variables: at most {MAX_VARIABLES} variables",
                    "variables",
                )
            )
        for name, declaration in given.items():
            where = f"variables.{name}"
            if not re.fullmatch(_NAME, str(name)):
                problems.append(
                    Problem(
                        "invalid_template",
                        f"{where}: a variable name is letters, digits and '_', not starting "
                        "with a digit (at most 64)",
                        where,
                        str(name),
                    )
                )
                continue
            try:
                variable = Variable.model_validate(declaration)
            except ValidationError as exc:
                err = exc.errors()[0]
                sub = ".".join(str(p) for p in err["loc"])
                message = str(err["msg"]).removeprefix("Value error, ")
                problems.append(
                    Problem(
                        "invalid_template",
                        f"{where}{'.' + sub if sub else ''}: {message}",
                        where,
                        name,
                    )
                )
                continue
            if variable.default is not None:
                try:
                    coerce(variable, variable.default)
                except ValueError as exc:
                    problems.append(
                        Problem("invalid_template", f"{where}.default: {exc}", where, name)
                    )
                    continue
            declared[name] = variable
    uses: dict[str, list[str]] = {}
    inline: dict[str, str] = {}
    for path, text in _walk(body, ""):
        for match in _TOKEN.finditer(text):
            name = match.group("name")
            if name is None:
                continue
            uses.setdefault(name, [])
            if path not in uses[name]:
                uses[name].append(path)
            if match.group("default") is not None:
                inline.setdefault(name, match.group("default").strip())
        # A `{{` that opens no placeholder: a typo, never rendered as is.
        if _OPEN.search(_TOKEN.sub("", text)):
            problems.append(
                Problem(
                    "invalid_template",
                    f"{path}: '{{{{' opens no placeholder (write {{{{name}}}} or "
                    f"{{{{name|default}}}}; a literal '{{{{' is written \\{{{{)",
                    path,
                )
            )
    for name, default in inline.items():
        if name in declared:
            try:
                coerce(declared[name], default)
            except ValueError as exc:
                where = uses[name][0]
                problems.append(
                    Problem(
                        "invalid_template",
                        f"{where}: the default of {name!r} is not valid: {exc}",
                        where,
                        name,
                    )
                )
    if problems:
        raise TemplateError(problems)
    return Template(body=body, declared=declared, uses=uses, inline_defaults=inline)


def coerce(variable: Variable, value: Any) -> Any:
    """`value` as a value of `variable`'s type; ValueError saying why it is not one.

    Numbers may come as strings (a CSV cell): '3.5' is 3.5. Text takes a string only (a
    number sent for a text variable is a mistake worth naming, not a value to print)."""
    if variable.type == "number":
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(f"expected a number, got {value!r}") from None
        else:
            raise ValueError(f"expected a number, got {type(value).__name__}")
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {value!r}")
        return int(number) if number.is_integer() else number
    if not isinstance(value, str):
        raise ValueError(f"expected {_noun(variable.type)}, got {type(value).__name__}")
    if len(value) > MAX_VALUE_CHARS:
        raise ValueError(f"at most {MAX_VALUE_CHARS} characters")
    if variable.type in FILE_TYPES:
        try:
            check_safe_name(value)
        except ValueError as exc:
            raise ValueError(
                f"expected the name of an uploaded {variable.type} file: {exc}"
            ) from None
    return value


def _noun(kind: str) -> str:
    return "text" if kind == "text" else f"the name of an uploaded {kind} file"


def _as_text(value: Any) -> str:
    return str(value)


def values(template: Template, data: Mapping[str, Any], where: str = "data") -> dict[str, Any]:
    """The value of every variable the template uses: from `data`, else its default.

    TemplateError listing, in order, every unknown name in `data`, every value of the wrong
    type and every used variable left without a value, each naming the variable (`where`
    prefixes the field: `data.city`, `rows[3].city`)."""
    problems: list[Problem] = []
    variables = template.variables
    resolved: dict[str, Any] = {}
    for name, value in data.items():
        field_name = f"{where}.{name}"
        variable = variables.get(name)
        if variable is None:
            known = ", ".join(sorted(variables)) or "none"
            problems.append(
                Problem(
                    "unknown_variable",
                    f"{field_name}: the template has no variable {name!r} (its variables: {known})",
                    field_name,
                    name,
                )
            )
            continue
        try:
            resolved[name] = coerce(variable, value)
        except ValueError as exc:
            problems.append(
                Problem(
                    "invalid_variable",
                    f"{field_name}: variable {name!r} ({variable.type}): {exc}",
                    field_name,
                    name,
                )
            )
    for name, paths in template.uses.items():
        if name in resolved or name in data:
            continue
        default = template.default(name)
        if default is None:
            problems.append(
                Problem(
                    "unresolved_placeholder",
                    f"{where}.{name}: no value for variable {name!r} (used in "
                    f"{', '.join(paths[:3])}{' …' if len(paths) > 3 else ''}) and no default",
                    f"{where}.{name}",
                    name,
                )
            )
        else:
            resolved[name] = coerce(variables[name], default)
    if problems:
        raise TemplateError(problems)
    return resolved


def substitute(template: Template, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The template's body with every placeholder replaced by its value in `resolved` (which
    `values` made complete) and every `\\{{` by `{{`."""

    def text(value: str) -> Any:
        whole = _TOKEN.fullmatch(value)
        if whole is not None and whole.group("name") is not None:
            return resolved[whole.group("name")]  # a lone placeholder keeps the value's type

        def one(match: re.Match[str]) -> str:
            name = match.group("name")
            return "{{" if name is None else _as_text(resolved[name])

        return _TOKEN.sub(one, value)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return text(value)
        if isinstance(value, Mapping):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    result: dict[str, Any] = walk(template.body)
    return result


def resolve(template: Template, data: Mapping[str, Any], where: str = "data") -> dict[str, Any]:
    """The spec `template` makes with `data` (TemplateError naming every problem)."""
    return substitute(template, values(template, data, where))


_STAND_INS: dict[str, Any] = {
    "text": "text",
    "number": 1,
    "image": "image.jpg",
    "audio": "audio.wav",
    "video": "video.mp4",
}


def sample(template: Template) -> dict[str, Any]:
    """The spec with each variable at its default, else a stand-in of its type: what a stored
    template is checked as (a spec valid for some values of its variables)."""
    resolved = {
        name: coerce(variable, template.default(name))
        if template.default(name) is not None
        else _STAND_INS[variable.type]
        for name, variable in template.variables.items()
    }
    return substitute(template, resolved)
