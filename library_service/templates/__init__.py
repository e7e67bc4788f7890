"""The built-in templates: the shipped *.sh files (catalog.py reads them), their
installation as library scripts (installed.py) and user copies (instantiate.py)."""
