"""Generate the JSON Schemas of the contract and check them against the committed files and the v1
baseline.

    python -m credit_common.contracts.schemagen                  # (re)write schemas/*.json
    python -m credit_common.contracts.schemagen --check          # exit 1 on stale/missing/extra files
                                                                 # or a baseline incompatibility
    python -m credit_common.contracts.schemagen --init-baseline  # baseline types that have none yet

A schema file is `<type>.json` (the `data` model of that message type) plus `cloudevent.json`.
The baseline (`schemas/baseline/`) is each schema as first released and is never rewritten: a
property in it must stay, with its type, until the topic gets a new version.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from credit_common.contracts.envelope import CloudEvent
from credit_common.contracts.registry import REGISTRY

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
BASELINE_DIR = SCHEMA_DIR / "baseline"
ENVELOPE_FILE = "cloudevent.json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Schema = dict[str, Any]


def schema_for(model: type[BaseModel], name: str) -> Schema:
    """The JSON Schema (validation mode) of `model`, identified as `<name>.json`."""
    schema = model.model_json_schema()
    return {"$schema": _DIALECT, "$id": f"{name}.json", **schema}


def render(schema: Schema) -> str:
    """The committed text of a schema: sorted keys, indent 2, trailing newline."""
    return json.dumps(schema, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """Every schema file as it should be: file name -> text."""
    files = {ENVELOPE_FILE: render(schema_for(CloudEvent, "cloudevent"))}
    for name, row in REGISTRY.items():
        files[f"{name}.json"] = render(schema_for(row.model, name))
    return dict(sorted(files.items()))


def _committed(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        return {}
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.json"))}


def stale_files(directory: Path = SCHEMA_DIR, generated: dict[str, str] | None = None) -> list[str]:
    """One line per schema file in `directory` that is stale, missing or not generated at all."""
    want = generated if generated is not None else generate()
    have = _committed(directory)
    problems = [f"{name}: stale" for name in want if name in have and have[name] != want[name]]
    problems += [f"{name}: missing" for name in want if name not in have]
    problems += [f"{name}: extra (no such message type)" for name in have if name not in want]
    return sorted(problems)


def baseline_problems(baseline: Path = BASELINE_DIR, generated: dict[str, str] | None = None) -> list[str]:
    """One line per incompatibility between the baseline schemas and the current ones, and per
    current schema with no baseline."""
    want = generated if generated is not None else generate()
    base = _committed(baseline)
    problems: list[str] = []
    for name, text in base.items():
        if name not in want:
            problems.append(f"{name}: the message type was removed")
            continue
        problems += [f"{name}: {line}" for line in incompatibilities(json.loads(text), json.loads(want[name]))]
    problems += [f"{name}: no baseline (run with --init-baseline)" for name in want if name not in base]
    return problems


def write(directory: Path = SCHEMA_DIR) -> list[str]:
    """Write every schema file into `directory`, removing extra ones; returns the names changed."""
    directory.mkdir(parents=True, exist_ok=True)
    want = generate()
    have = _committed(directory)
    changed = []
    for name, text in want.items():
        if have.get(name) != text:
            (directory / name).write_text(text, encoding="utf-8")
            changed.append(name)
    for name in have.keys() - want.keys():
        (directory / name).unlink()
        changed.append(name)
    return sorted(changed)


def init_baseline(baseline: Path = BASELINE_DIR) -> list[str]:
    """Write the baseline of every type that has none yet (never overwrites); returns the names."""
    baseline.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate().items():
        target = baseline / name
        if not target.exists():
            target.write_text(text, encoding="utf-8")
            written.append(name)
    return written


# --- compatibility --------------------------------------------------------------------------------


def incompatibilities(baseline_schema: Schema, current_schema: Schema) -> list[str]:
    """Every property of the baseline that the current schema lost or retyped, as `path: what`.

    `$ref`s are resolved into each document's `$defs`; nested objects, array items, map values and
    anyOf/oneOf variants (nullable fields, unions; variants are paired by title) are followed. A
    type is the JSON type plus the string format, so `date` to `date-time` counts as a change, and
    so does becoming nullable (a reader would meet a null it never expected). Added properties are
    compatible and ignored.
    """
    problems: list[str] = []
    _compare(baseline_schema, current_schema, _Docs(baseline_schema, current_schema), "", problems)
    return problems


class _Docs:
    def __init__(self, baseline: Schema, current: Schema) -> None:
        self.baseline = baseline
        self.current = current


def _resolve(node: Schema, root: Schema) -> Schema:
    """Follow `$ref` (keeping sibling keywords) and single-member `allOf` wrappers."""
    for _ in range(64):
        if "$ref" in node:
            target = _pointer(root, node["$ref"])
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            inner = node["allOf"][0]
            node = {**inner, **{k: v for k, v in node.items() if k != "allOf"}}
        else:
            return node
    raise ValueError("$ref chain too long")


def _pointer(root: Schema, ref: str) -> Schema:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported: {ref}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, dict):
        raise ValueError(f"$ref does not point at a schema: {ref}")
    return node


def _variants(node: Schema, root: Schema) -> list[Schema]:
    node = _resolve(node, root)
    members = node.get("anyOf") or node.get("oneOf")
    if isinstance(members, list):
        return [variant for member in members for variant in _variants(member, root)]
    return [node]


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def _type_names(node: Schema) -> set[str]:
    if "const" in node:
        values = [node["const"]]
    elif "enum" in node:
        values = list(node["enum"])
    else:
        values = None
    if values is not None:
        names = {_JSON_TYPES.get(type(value), "object" if isinstance(value, dict) else "array") for value in values}
    elif "type" in node:
        declared = node["type"]
        names = set(declared) if isinstance(declared, list) else {declared}
    elif "properties" in node:
        names = {"object"}
    elif "items" in node or "prefixItems" in node:
        names = {"array"}
    else:
        return {"any"}
    if "string" in names and "format" in node:
        names = (names - {"string"}) | {f"string({node['format']})"}
    return names


def _types(node: Schema, root: Schema) -> set[str]:
    return {name for variant in _variants(node, root) for name in _type_names(variant)}


def _of_type(variants: list[Schema], kind: str) -> list[Schema]:
    return [variant for variant in variants if kind in _type_names(variant)]


def _pairs(
    base: list[Schema], cur: list[Schema], path: str, problems: list[str]
) -> Iterator[tuple[Schema, Schema, str]]:
    """Pair the baseline's variants with the current ones: the only one with the only one, else by
    title (by position when untitled); a variant among several is named in the path: `<Title>`."""
    if len(base) == 1 and len(cur) == 1:
        yield base[0], cur[0], path
        return
    by_title = {variant.get("title"): variant for variant in cur}
    for index, variant in enumerate(base):
        title = variant.get("title")
        label = f"{path}<{title or index}>"
        if title is not None and title in by_title:
            yield variant, by_title[title], label
        elif title is None and index < len(cur):
            yield variant, cur[index], label
        else:
            problems.append(f"{label}: variant removed")


_MAX_DEPTH = 32


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _compare(base: Schema, cur: Schema, docs: _Docs, path: str, problems: list[str], depth: int = 0) -> None:
    if depth > _MAX_DEPTH:  # a recursive model: deeper levels repeat what was compared above
        return
    base_types, cur_types = _types(base, docs.baseline), _types(cur, docs.current)
    if base_types != cur_types:
        problems.append(f"{path or '(root)'}: type changed from {sorted(base_types)} to {sorted(cur_types)}")
        return
    base_variants, cur_variants = _variants(base, docs.baseline), _variants(cur, docs.current)
    base_objects, cur_objects = _of_type(base_variants, "object"), _of_type(cur_variants, "object")
    for b, c, at in _pairs(base_objects, cur_objects, path, problems):
        b_props, c_props = b.get("properties", {}), c.get("properties", {})
        for name, b_prop in b_props.items():
            if name not in c_props:
                problems.append(f"{_join(at, name)}: removed")
            else:
                _compare(b_prop, c_props[name], docs, _join(at, name), problems, depth + 1)
        b_extra, c_extra = b.get("additionalProperties"), c.get("additionalProperties")
        if isinstance(b_extra, dict) and isinstance(c_extra, dict):
            _compare(b_extra, c_extra, docs, f"{at}{{}}", problems, depth + 1)
    base_arrays, cur_arrays = _of_type(base_variants, "array"), _of_type(cur_variants, "array")
    for b, c, at in _pairs(base_arrays, cur_arrays, path, problems):
        if isinstance(b.get("items"), dict) and isinstance(c.get("items"), dict):
            _compare(b["items"], c["items"], docs, f"{at}[]", problems, depth + 1)


# --- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Write the schemas, or with `--check` report what differs (exit 1), or `--init-baseline`."""
    parser = argparse.ArgumentParser(
        prog="python -m credit_common.contracts.schemagen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="report stale, missing or extra files and baseline breaks")
    mode.add_argument("--init-baseline", action="store_true", help="baseline every type that has none yet")
    args = parser.parse_args(argv)
    if args.check:
        generated = generate()
        problems = stale_files(generated=generated) + baseline_problems(generated=generated)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print(
                "stale/missing/extra: regenerate with `python -m credit_common.contracts.schemagen`; "
                "a baseline break needs the change undone or a new topic version",
                file=sys.stderr,
            )
            return 1
        print(f"{len(generated)} schemas fresh and compatible with the baseline")
        return 0
    if args.init_baseline:
        for name in init_baseline():
            print(f"baseline {name}")
        return 0
    for name in write():
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
