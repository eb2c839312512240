"""dbsplit: split the ``handled`` database into PRIMARY and DATA, exactly and resumably."""

__version__ = "0.1.0"
