"""The library's tracked maintenance scripts (library_service.maintenance.framework framework).

Each file runs directly: ``python library_service/maintenance/<script>.py [run|rollback|
status] ...``, from any directory.
"""
