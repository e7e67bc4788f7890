"""The Hookshelf hook executor (hookshelf.executor.v1.HookExecutorService)."""
