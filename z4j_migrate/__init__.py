"""z4j-migrate: raw-SQL PostgreSQL migrations, paired .up.sql/.down.sql, applied through yoyo.

Kept light on purpose: importing the package must not import yoyo or the SQL
parser, because the start-up call runs on every boot of every replica.
"""

from .api import (
    DowngradeResult,
    RevisionRun,
    RevisionStatus,
    StatusReport,
    UpgradeResult,
    downgrade,
    migrate_on_startup,
    status,
    upgrade,
)
from .config import Settings, settings_from_env
from .errors import (
    ConfigError,
    ConnectionFailed,
    DriftError,
    IncompleteRevision,
    IrreversibleRevision,
    LockTimeout,
    PreflightFailed,
    PrivilegeError,
    RefusedError,
    RevisionFailed,
    RevisionFileError,
    VerificationFailed,
    Z4jMigrateError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ConnectionFailed",
    "DowngradeResult",
    "DriftError",
    "IncompleteRevision",
    "IrreversibleRevision",
    "LockTimeout",
    "PreflightFailed",
    "PrivilegeError",
    "RefusedError",
    "RevisionFailed",
    "RevisionFileError",
    "RevisionRun",
    "RevisionStatus",
    "Settings",
    "StatusReport",
    "UpgradeResult",
    "VerificationFailed",
    "Z4jMigrateError",
    "downgrade",
    "migrate_on_startup",
    "settings_from_env",
    "status",
    "upgrade",
]
