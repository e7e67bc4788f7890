"""The largest messages the services exchange, one definition for servers and clients.

A request is at most MAX_REQUEST_BYTES: gRPC refuses a longer one from its length prefix,
before reading it (RESOURCE_EXHAUSTED), so an oversized request costs the server nothing
(per-method limits below it: request_budget.py). Responses may be larger: a plan carrying
its scripts' content inline, a page of executions with their output. Clients accept
responses up to MAX_RESPONSE_BYTES (gRPC's default, 4 MiB, is less).
"""

MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
