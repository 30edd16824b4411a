"""Walks every medsettle proto descriptor (with comments) and enforces the API conventions.

- package `medsettle.<name>.v<N>` in the matching directory;
- every enum's zero value is `<ENUM_NAME>_UNSPECIFIED`;
- a comment on every service, RPC, message, field and enum value;
- `request_id` on every RPC that creates a record or moves money;
- `page_size` / `page_token` in, `next_page_token` out, on every List RPC.
`buf lint` runs too when the buf binary is installed (buf-bin, a test extra).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc_tools
import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
# RPC name prefixes that create records or move money; each must carry request_id.
MUTATING_PREFIXES = ("Create", "Settle", "Cancel", "Record", "TopUp", "Admit", "Upload", "Run")
# Mutating RPCs whose items carry their own idempotency key instead of one request_id.
KEYED_PER_ITEM = {"ClearingService.RecordLedgerEvents"}  # each event's event_id


def _descriptor_set(tmp_path: Path) -> descriptor_pb2.FileDescriptorSet:
    out = tmp_path / "set.pb"
    files = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "medsettle").rglob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        *files,
    ]
    assert protoc.main(args) == 0
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    return {
        tuple(location.path): (location.leading_comments + location.trailing_comments).strip()
        for location in file.source_code_info.location
    }


def _walk_messages(
    messages: list[descriptor_pb2.DescriptorProto], path: tuple[int, ...], prefix: str
) -> Iterator[tuple[str, tuple[int, ...], descriptor_pb2.DescriptorProto]]:
    for index, message in enumerate(messages):
        here = (*path, index)
        name = f"{prefix}{message.name}"
        yield name, here, message
        yield from _walk_messages(list(message.nested_type), (*here, 3), f"{name}.")


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    return _descriptor_set(tmp_path_factory.mktemp("protos"))


def test_packages_are_versioned_and_match_directories(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    for file in descriptor_set.file:
        assert re.fullmatch(r"medsettle\.[a-z]+\.v\d+", file.package), file.name
        assert Path(file.name).parent.as_posix() == file.package.replace(".", "/"), file.name


def test_every_element_is_commented(descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
    missing: list[str] = []
    for file in descriptor_set.file:
        comments = _comments(file)
        for name, path, message in _walk_messages(list(file.message_type), (4,), ""):
            if not comments.get(path):
                missing.append(f"{file.name}: message {name}")
            for index, field in enumerate(message.field):
                if not comments.get((*path, 2, index)):
                    missing.append(f"{file.name}: field {name}.{field.name}")
        for s_index, service in enumerate(file.service):
            if not comments.get((6, s_index)):
                missing.append(f"{file.name}: service {service.name}")
            for m_index, method in enumerate(service.method):
                if not comments.get((6, s_index, 2, m_index)):
                    missing.append(f"{file.name}: rpc {service.name}.{method.name}")
    assert missing == []


def _enums(
    file: descriptor_pb2.FileDescriptorProto,
) -> Iterator[descriptor_pb2.EnumDescriptorProto]:
    yield from file.enum_type
    for _, _, message in _walk_messages(list(file.message_type), (4,), ""):
        yield from message.enum_type


def test_enum_zero_values_are_unspecified(descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
    for file in descriptor_set.file:
        for enum in _enums(file):
            upper = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper()
            zero = enum.value[0]
            assert (zero.number, zero.name) == (0, f"{upper}_UNSPECIFIED"), enum.name


def _messages_by_name(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> dict[str, descriptor_pb2.DescriptorProto]:
    found = {}
    for file in descriptor_set.file:
        for name, _, message in _walk_messages(list(file.message_type), (4,), ""):
            found[f".{file.package}.{name}"] = message
    return found


def test_mutating_rpcs_take_request_id_and_list_rpcs_paginate(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    messages = _messages_by_name(descriptor_set)
    for file in descriptor_set.file:
        for service in file.service:
            for method in service.method:
                fields = {field.name for field in messages[method.input_type].field}
                name = f"{service.name}.{method.name}"
                if method.name.startswith(MUTATING_PREFIXES) and name not in KEYED_PER_ITEM:
                    assert "request_id" in fields, name
                if method.name.startswith("List"):
                    assert {"page_size", "page_token"} <= fields, f"{service.name}.{method.name}"
                    out = {field.name for field in messages[method.output_type].field}
                    assert "next_page_token" in out, f"{service.name}.{method.name}"


BUF = shutil.which("buf", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")


@pytest.mark.skipif(BUF is None, reason="buf binary not installed")
def test_buf_lint_passes() -> None:
    assert BUF is not None
    result = subprocess.run([BUF, "lint"], cwd=PROTOS, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
