"""Server reflection that keeps the .proto comments, so `grpcurl describe` shows them.

protoc's Python output drops source info from the descriptors compiled into *_pb2.py, and
grpc_reflection serves those. `make generate` also writes a FileDescriptorSet with source
info (shared/stubs/hookshelf/descriptor_set.binpb); files found there are served from it,
everything else (google/protobuf/*, health, reflection) as grpc_reflection would.
It also resolves method symbols (`pkg.Service.Method`), which the default pool cannot.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer
from grpc_reflection.v1alpha._base import (  # type: ignore[attr-defined]  # private helpers the stub leaves out
    _collect_transitive_dependencies,
    _not_found_error,
)

DESCRIPTOR_SET = Path(__file__).resolve().parent / "stubs" / "hookshelf" / "descriptor_set.binpb"


def _load(path: Path) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    if not path.exists():
        return {}
    files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
    return {f.name: f for f in files}


class SourceInfoReflection(ReflectionServicer):
    # Set by BaseReflectionServicer.__init__; its stub does not declare it.
    _pool: descriptor_pool.DescriptorPool

    def __init__(self, service_names: Iterable[str], descriptor_set: Path = DESCRIPTOR_SET):
        super().__init__(service_names)
        self._with_source = _load(descriptor_set)

    def _response(self, descriptor, request):
        files: dict = {}
        _collect_transitive_dependencies(descriptor, files)
        serialized = []
        for name, file in files.items():
            proto = self._with_source.get(name)
            if proto is None:
                proto = descriptor_pb2.FileDescriptorProto()
                file.CopyToProto(proto)
            serialized.append(proto.SerializeToString())
        return reflection_pb2.ServerReflectionResponse(
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=serialized
            ),
            original_request=request,
        )

    def _file_by_filename(self, request, filename):
        try:
            return self._response(self._pool.FindFileByName(filename), request)
        except KeyError:
            return _not_found_error(request)

    def _file_containing_symbol(self, request, fully_qualified_name):
        for symbol in (fully_qualified_name, fully_qualified_name.rpartition(".")[0]):
            try:
                return self._response(self._pool.FindFileContainingSymbol(symbol), request)
            except KeyError:
                continue
        return _not_found_error(request)


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Drop-in for reflection.enable_server_reflection on a grpc.aio server."""
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        SourceInfoReflection(service_names), server
    )
