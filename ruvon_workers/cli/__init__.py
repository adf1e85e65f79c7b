"""The ``ruvon-workers`` command line."""
