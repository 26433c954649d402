"""The ``autotune`` command line: the click group (``cli``) and its command modules, thin
wrappers over the library."""
