#!/usr/bin/env python3
"""Fill the `<NAME>` placeholders of an ECS/IAM JSON template from environment variables.

    python3 ecs/tools/fill_placeholders.py TEMPLATE OUTPUT [--keep IMAGE]

Every `<NAME>` (capitals, digits, underscores) inside a JSON string is replaced by the value
of the environment variable NAME. The template is parsed and walked, never edited as text
(the predecessor's `sed` broke on any value holding a quote, a slash or an ampersand), so a
value can hold any character and the output is always valid JSON.

It refuses (exit 2, naming the variables, never printing a value) when a placeholder has no
value, when a value is malformed for its kind (account id, region, ARN), or when a value
itself holds a placeholder. `--keep NAME` leaves `<NAME>` for a later step (the image URI,
filled by aws-actions/amazon-ecs-render-task-definition).

Standard library only: it runs on a bare GitHub runner and is imported by tests/deploy/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ("PLACEHOLDER_RE", "FillError", "fill", "main", "placeholders")

PLACEHOLDER_RE = re.compile(r"<([A-Z][A-Z0-9_]*)>")

_ARN_PARTITION = r"arn:aws(?:-[a-z]+)*"
# What a well-formed value of each kind of placeholder looks like: a typo here would
# otherwise surface only as a task that cannot start, after the image was pushed.
_FORMATS: tuple[tuple[re.Pattern[str], re.Pattern[str], str], ...] = (
    (re.compile(r"^AWS_ACCOUNT_ID$"), re.compile(r"^\d{12}$"), "12 digits"),
    (re.compile(r"^AWS_REGION$"), re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$"), "a region such as eu-west-1"),
    (
        re.compile(r"_SECRET_ARN$"),
        # The complete ARN, with the 6-character suffix Secrets Manager adds: a partial ARN
        # followed by a JSON key is ambiguous to ECS.
        re.compile(_ARN_PARTITION + r":secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"),
        "the complete secret ARN (ending in -XXXXXX)",
    ),
    (
        re.compile(r"_KMS_KEY_ARN$"),
        re.compile(_ARN_PARTITION + r":kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$"),
        "a KMS key ARN",
    ),
    (
        re.compile(r"_TARGET_GROUP_ARN$"),
        re.compile(_ARN_PARTITION + r":elasticloadbalancing:.+:targetgroup/.+$"),
        "a target group ARN",
    ),
    (re.compile(r"^(DB_READER_HOST|DB_WRITER_HOST)$"), re.compile(r"^[A-Za-z0-9.-]{1,253}$"), "a host name"),
    (re.compile(r"^DB_NAME$"), re.compile(r"^[A-Za-z0-9_]{1,64}$"), "a plain identifier"),
    (re.compile(r"^PROVIDER_URL$"), re.compile(r"^https://\S+$"), "an https:// URL"),
    (re.compile(r"^GITHUB_REPOSITORY$"), re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"), "owner/name"),
    (re.compile(r"^PRIVATE_SUBNET_"), re.compile(r"^subnet-[0-9a-f]{8,17}$"), "a subnet id"),
    (re.compile(r"_SECURITY_GROUP_ID$"), re.compile(r"^sg-[0-9a-f]{8,17}$"), "a security group id"),
    (re.compile(r"^VPC_ID$"), re.compile(r"^vpc-[0-9a-f]{8,17}$"), "a VPC id"),
    (
        re.compile(r"^ALB_RESOURCE_LABEL$"),
        re.compile(r"^app/[A-Za-z0-9-]+/[0-9a-f]+/targetgroup/[A-Za-z0-9-]+/[0-9a-f]+$"),
        "app/<alb-name>/<id>/targetgroup/<tg-name>/<id>",
    ),
    (
        re.compile(r"^IMAGE$"),
        re.compile(r"^\S+(?::[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$"),
        "an image reference with a tag",
    ),
)


class FillError(Exception):
    """A template that cannot be filled; the message names variables, never their values."""


def placeholders(document: Any) -> set[str]:
    """Every placeholder name in the JSON strings of `document` (keys are not templated)."""
    found: set[str] = set()
    for text in _strings(document):
        found.update(PLACEHOLDER_RE.findall(text))
    return found


def fill(document: Any, values: Mapping[str, str], *, keep: Iterable[str] = ()) -> Any:
    """A copy of `document` with its placeholders replaced; raises FillError on any gap."""
    kept = set(keep)
    wanted = placeholders(document) - kept
    missing = sorted(name for name in wanted if not values.get(name, "").strip())
    if missing:
        raise FillError("no value for " + ", ".join(missing))
    problems = [f"{name} is not {what}" for name in sorted(wanted) if (what := _malformed(name, values[name].strip()))]
    problems += [f"{name} holds a placeholder" for name in sorted(wanted) if PLACEHOLDER_RE.search(values[name])]
    if problems:
        raise FillError("; ".join(problems))

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        return match.group(0) if name in kept else values[name].strip()

    return _map_strings(document, lambda text: PLACEHOLDER_RE.sub(substitute, text))


def _malformed(name: str, value: str) -> str | None:
    for name_re, value_re, what in _FORMATS:
        if name_re.search(name) and not value_re.match(value):
            return what
    return None


def _strings(node: Any) -> Iterable[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _map_strings(node: Any, change: Any) -> Any:
    if isinstance(node, str):
        return change(node)
    if isinstance(node, dict):
        return {key: _map_strings(value, change) for key, value in node.items()}
    if isinstance(node, list):
        return [_map_strings(item, change) for item in node]
    return node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fill <NAME> placeholders of a JSON template from the environment.")
    parser.add_argument("template", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--keep", action="append", default=[], metavar="NAME", help="leave <NAME> for a later step")
    args = parser.parse_args(argv)
    try:
        document = json.loads(args.template.read_text(encoding="utf-8"))
        filled = fill(document, os.environ, keep=args.keep)
    except (OSError, json.JSONDecodeError, FillError) as exc:
        print(f"fill_placeholders: {args.template}: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(filled, indent=2) + "\n", encoding="utf-8")
    print(f"fill_placeholders: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
