"""The Hookshelf script library service (hookshelf.library.v1.ScriptLibraryService)."""
