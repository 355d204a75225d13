"""The five ready-made z4j-migrate tests, switched on with one line."""

from z4j_migrate.testing import *  # noqa: F401,F403
