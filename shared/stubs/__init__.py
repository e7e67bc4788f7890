"""Generated gRPC stubs (do not edit; `make generate` rewrites them).

Short names for the modules everyone imports.
"""

from shared.stubs.hookshelf.executor.v1 import executor_pb2, executor_pb2_grpc
from shared.stubs.hookshelf.library.v1 import library_pb2, library_pb2_grpc

__all__ = ["executor_pb2", "executor_pb2_grpc", "library_pb2", "library_pb2_grpc"]
