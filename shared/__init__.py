"""Code shared by the Hookshelf services and their clients."""
