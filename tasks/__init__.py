"""nbship: the importable logic behind the notebook pipeline.

Importing this package has no side effects: no folders are created, no logging is
configured and no tracking URI is set. Each stage lives in its own module.
"""

__version__ = "0.1.0"
