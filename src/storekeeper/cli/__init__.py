"""The ``storekeeper`` command line: thin wrappers over the core functions."""
