"""Thin gRPC servicer parts, one per area: unpack, call the domain, pack."""
