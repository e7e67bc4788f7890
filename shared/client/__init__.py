"""The typed async client for both Hookshelf services, used by orchestrators and the CLI.

```python
async with LibraryClient("127.0.0.1:50051") as library, ExecutorClient("unix:exec.sock") as ex:
    ...
```
Every call has a deadline; idempotent unary calls are retried on UNAVAILABLE; every
failure is a ``HookshelfCallError`` carrying the server's error details.
"""

from shared.client.errors import HookshelfCallError
from shared.client.executor import ExecutorClient, HookStream, LeaseKeeper
from shared.client.library import LibraryClient

__all__ = ["ExecutorClient", "HookStream", "HookshelfCallError", "LeaseKeeper", "LibraryClient"]
