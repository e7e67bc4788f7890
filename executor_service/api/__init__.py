"""The gRPC face of the executor: the servicer, which unpacks requests, calls the run
domain (``runs/``) and relays its events. Nothing below this package imports grpc."""
