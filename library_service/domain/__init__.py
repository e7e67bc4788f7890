"""Library domain logic. Never imports grpc; raises shared.errors."""
