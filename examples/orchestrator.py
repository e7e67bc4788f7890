"""A minimal backup orchestrator using the Hookshelf client.

    python examples/orchestrator.py --repository demo -- borg create /repo::{now} /data

It does what `hookshelf backup` does, in ~60 lines you can copy into your own scheduler:
open a run (pre chain), back up only on PROCEED while a lease keeper renews the run,
report the outcome (post chain). Targets come from HOOKSHELF_EXECUTOR_TARGET and
HOOKSHELF_AUTH_TOKEN, like the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from shared.client import ExecutorClient, HookshelfCallError
from shared.stubs import executor_pb2, library_pb2


def show(event: executor_pb2.HookEvent) -> None:
    kind = event.WhichOneof("event")
    if kind == "output":
        sys.stdout.write(event.output.data.decode(errors="replace"))
    elif kind == "step_finished":
        step = event.step_finished
        status = library_pb2.ExecutionStatus.Name(step.status)
        print(f"  step {step.script_name}: {status} (exit {step.exit_code})")
    elif kind == "summary":
        print(f"  summary: {event.summary.message or 'done'}")


async def backup(repository: str, command: list[str]) -> int:
    target = os.environ.get("HOOKSHELF_EXECUTOR_TARGET", "unix:./.data/executor.sock")
    token = os.environ.get("HOOKSHELF_AUTH_TOKEN", "")
    async with ExecutorClient(target, auth_token=token) as executor:
        # 1. The pre chain. Its summary's verdict decides whether we back up.
        pre = executor.begin_backup(repository_id=repository, job_id="example", lease_seconds=120)
        async for event in pre:
            show(event)
        assert pre.summary is not None
        if pre.summary.verdict != executor_pb2.VERDICT_PROCEED:
            # SKIP or ABORT: the executor has already run the post chain.
            print(f"not backing up: {executor_pb2.Verdict.Name(pre.summary.verdict)}")
            return 75 if pre.summary.verdict == executor_pb2.VERDICT_SKIP else 70

        # 2. The backup, with the lease renewed every lease/3 while it runs. Should this
        #    process die here, the executor runs the post chain once the lease expires.
        keeper = executor.keep_alive(120, on_problem=print)
        keeper.start(pre.run_id)
        try:
            process = await asyncio.create_subprocess_exec(*command)
            status = await process.wait()
        finally:
            await keeper.stop()

        # 3. The post chain, for the outcome the exit status means.
        outcome = (
            library_pb2.BACKUP_OUTCOME_SUCCESS
            if status == 0
            else library_pb2.BACKUP_OUTCOME_FAILURE
        )
        async for event in executor.end_backup(pre.run_id, outcome):
            show(event)
        return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repository", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the backup command after --")
    try:
        sys.exit(asyncio.run(backup(args.repository, command)))
    except HookshelfCallError as error:  # one line, e.g. "cannot reach the executor at ..."
        sys.exit(f"orchestrator: {error}")


if __name__ == "__main__":
    main()
