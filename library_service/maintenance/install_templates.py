"""Install the built-in templates as library scripts; upgrade them when the package
ships newer ones. Idempotent. Runs at every library start (``run_script``), and again
without --force whenever a template file (or this code) changed.

    python library_service/maintenance/install_templates.py [run [--force] | status]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import structlog

from library_service.context import LibraryContext
from library_service.maintenance.context import standalone_context
from library_service.maintenance.framework import (
    BaseScript,
    Outcome,
    VerifyFailed,
    run_cli,
    run_script,
)
from library_service.store.database import Database
from library_service.templates import catalog, installed

log = structlog.get_logger("hookshelf.templates")


class InstallTemplates(BaseScript):
    """Install or upgrade the built-in templates."""

    # The templates ship with the package: a changed file is a reason to run again.
    rerun_when_changed = True

    def __init__(
        self, context: LibraryContext | None = None, directory: Path = catalog.TEMPLATES_DIR
    ) -> None:
        super().__init__("install_templates")
        self.context = context
        self.directory = directory

    def source_files(self) -> list[Path]:
        """This file, the code that installs, and every template file."""
        code = [Path(catalog.__file__), Path(installed.__file__)]
        return [*super().source_files(), *code, *sorted(self.directory.glob("*.sh"))]

    def _context(self, db: Database) -> LibraryContext:
        return self.context or standalone_context(db)

    async def execute(self, db: Database) -> None:
        templates = catalog.load_catalog(self.directory)
        report = await installed.install(self._context(db), templates)
        for outcome, names in report.summary().items():
            self.log(f"{outcome.replace('_', ' ')}: {', '.join(names)}")
        self.details = report.summary()

    async def verify(self, db: Database) -> bool:
        problems = await installed.problems(self._context(db), catalog.load_catalog(self.directory))
        if problems:
            raise VerifyFailed("; ".join(problems))
        return True


async def install_at_startup(context: LibraryContext) -> Outcome:
    """For start_library: install or upgrade before serving. A failure is logged, not
    raised: the library serves without (new) templates rather than not at all."""
    try:
        outcome = await run_script(InstallTemplates(context), database=context.database)
    except Exception as error:
        log.exception("templates.install_failed", error=str(error))
        return Outcome("install_templates", "run", "failed", f"install_templates: {error}")
    if not outcome.ok:
        log.error("templates.install_failed", status=outcome.status, message=outcome.message)
    return outcome


if __name__ == "__main__":
    run_cli(InstallTemplates())
