"""Validate openapi.yaml itself, then each recorded real response against the schema the
spec gives for its path, method and status.

usage: validate_openapi.py openapi.yaml responses.json
responses.json: [{"method", "path", "status", "body"}, ...] recorded by the e2e test.
"""
import json
import sys

import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

spec = yaml.safe_load(open(sys.argv[1]))
validate(spec)
responses = json.load(open(sys.argv[2]))


def resolve(node):
    """Inline local $refs so jsonschema sees one self-contained schema."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolve(target)
        return {k: resolve(v) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v) for v in node]
    return node


checked = 0
for r in responses:
    item = spec["paths"].get(r["path"])
    op = item.get(r["method"]) if item else None
    if op is None:
        # Unknown routes and wrong methods answer the shared error shape.
        schema = resolve({"$ref": "#/components/schemas/Error"})
    else:
        answer = op["responses"].get(str(r["status"]))
        assert answer is not None, f"{r['method'].upper()} {r['path']} -> {r['status']} is not documented"
        answer = resolve(answer)
        schema = answer["content"]["application/json"]["schema"]
    errors = sorted(Draft202012Validator(schema).iter_errors(r["body"]), key=str)
    assert not errors, f"{r['method'].upper()} {r['path']} -> {r['status']}: {errors[0].message}\n{json.dumps(r['body'])[:500]}"
    checked += 1
assert checked > 0
print(f"openapi.yaml is valid; {checked} real responses match it")
