"""Schemathesis hooks for .ci/e2e.

The contract (API.md §1) rejects unknown JSON fields with a 400, except the
read-only fields of the same resource, which a client may send back
unchanged (GET, edit, PUT) and which are ignored. JSON Schema says exactly
that with `additionalProperties: false` plus the read-only properties, but
poem-openapi 5 cannot emit `additionalProperties: false` (its schema model
has no boolean form), so the committed spec leaves it out. This hook adds it
to every request-body schema before Schemathesis reads the spec, so the run
tests the contract rather than a looser reading of it. It only ever makes
the schema stricter.
"""

from __future__ import annotations

import copy

import schemathesis



def _request_body_schemas(raw: dict) -> set[str]:
    names = set()
    for item in raw.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            for media in op.get("requestBody", {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                if ref.startswith("#/components/schemas/"):
                    names.add(ref.rsplit("/", 1)[1])
    return names


@schemathesis.hook
def before_load_schema(context, raw_schema: dict) -> None:
    schemas = raw_schema.get("components", {}).get("schemas", {})
    for name in _request_body_schemas(raw_schema):
        schema = schemas.get(name)
        if not isinstance(schema, dict) or schema.get("type") != "object":
            continue
        schema.setdefault("additionalProperties", False)
        # PatientInput/PatientPatch -> Patient, DoctorInput -> Doctor, ...
        for suffix in ("Input", "Patch"):
            if name.endswith(suffix):
                resource = schemas.get(name[: -len(suffix)], {})
                props = schema.setdefault("properties", {})
                for prop, sub in resource.get("properties", {}).items():
                    if isinstance(sub, dict) and sub.get("readOnly") and prop not in props:
                        props[prop] = copy.deepcopy(sub)
