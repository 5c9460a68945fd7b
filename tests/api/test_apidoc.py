"""docs/api-reference.md is what api.apidoc generates from the app's /openapi.json, and the
generator shows what a reader needs: every route, auth, parameters, bodies, fields with their
constraints, and status codes."""

from __future__ import annotations

from typing import Any

from api import apidoc


def test_the_committed_reference_is_the_generated_one() -> None:
    generated = apidoc.render(apidoc.openapi())
    committed = apidoc.REFERENCE.read_text() if apidoc.REFERENCE.exists() else ""
    assert committed == generated, (
        "docs/api-reference.md differs from the app's /openapi.json: "
        "run `python -m api.apidoc` (or `make docs`) and commit the result"
    )


def test_generation_is_deterministic() -> None:
    assert apidoc.render(apidoc.openapi()) == apidoc.render(apidoc.openapi())


def test_every_route_and_model_has_a_section() -> None:
    spec = apidoc.openapi()
    text = apidoc.render(spec)
    for path, item in spec["paths"].items():
        for method in item:
            assert f"## {method.upper()} `{path}`" in text
    for name in spec["components"]["schemas"]:
        assert f"### {name}\n" in text


def test_check_mode_reports_a_stale_file(tmp_path: Any, capsys: Any) -> None:
    stale = tmp_path / "api-reference.md"
    stale.write_text("# old\n")
    assert apidoc.main(["--check", "-o", str(stale)]) == 1
    assert "python -m api.apidoc" in capsys.readouterr().err
    assert stale.read_text() == "# old\n"
    assert apidoc.main(["-o", str(stale)]) == 0
    assert apidoc.main(["--check", "-o", str(stale)]) == 0


SMALL: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "T", "version": "1", "description": "What it is."},
    "paths": {
        "/v1/things/{id}": {
            "post": {
                "summary": "Make a thing",
                "description": "Long text.",
                "security": [{"HTTPBearer": []}],
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[a-z]+$"},
                        "description": "the thing's id",
                    },
                    {"name": "Idempotency-Key", "in": "header", "schema": {"maxLength": 255}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/c/s/Thing"}}},
                },
                "responses": {
                    "422": {"description": "validation_error"},
                    "202": {
                        "description": "queued",
                        "content": {"application/json": {"schema": {"$ref": "#/c/s/Thing"}}},
                    },
                },
            }
        }
    },
    "components": {
        "securitySchemes": {"HTTPBearer": {"description": "`Authorization: Bearer <T>`"}},
        "schemas": {
            "Thing": {
                "description": "A thing.",
                "additionalProperties": False,
                "required": ["size"],
                "properties": {
                    "size": {"type": "integer", "minimum": 1.0, "maximum": 60.0},
                    "kind": {
                        "anyOf": [{"enum": ["a", "b"]}, {"type": "null"}],
                        "default": None,
                        "description": "a | b, at <name>",
                    },
                    "tags": {"type": "array", "items": {"$ref": "#/c/s/Tag"}, "maxItems": 3},
                },
            },
            "Tag": {"type": "string"},
        },
    },
}


def test_an_operation_shows_auth_parameters_body_and_sorted_responses() -> None:
    text = apidoc.render(SMALL)
    assert "## POST `/v1/things/{id}`" in text
    assert "**Auth:** `Authorization: Bearer <T>`" in text
    assert "| `id` | path | string | yes | the thing's id (matches `^[a-z]+$`) |" in text
    assert "| `Idempotency-Key` | header | any | no | (at most 255 characters) |" in text
    assert "| `application/json` | [Thing](#thing) | yes |" in text
    assert text.index("| 202 |") < text.index("| 422 | — | validation_error |")
    assert "| POST | [`/v1/things/{id}`](#post-v1-things-id) | Make a thing |" in text


def test_a_model_shows_types_defaults_constraints_and_escapes_cells() -> None:
    text = apidoc.render(SMALL)
    assert "| `size` | integer | yes |  | (≥ 1, ≤ 60) |" in text
    assert '| `kind` | `"a"` or `"b"` or null | no | `null` | a \\| b, at &lt;name> |' in text
    assert "| `tags` | list of [Tag](#tag) | no |  | (at most 3 items) |" in text
    assert "Other fields are refused (`422`)." in text
    assert "### Tag\n\nstring." in text
