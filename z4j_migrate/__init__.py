"""z4j-migrate: raw-SQL PostgreSQL migrations, paired .up.sql/.down.sql, applied through yoyo.

Kept light on purpose: importing the package must not import yoyo or the SQL
parser, because the start-up call runs on every boot of every replica.
"""

from .adopt import AdoptResult, adopt
from .api import DowngradeResult, UpgradeResult, downgrade, migrate_on_startup, status, upgrade
from .config import Settings, settings_from_env
from .errors import (
    AdoptionMismatch,
    ConfigError,
    ConnectionFailed,
    DeclinedByOperator,
    DriftError,
    ExtensionError,
    ForeignHistory,
    IncompleteRevision,
    IrreversibleRevision,
    LockTimeout,
    PreflightFailed,
    PrivilegeError,
    ReadOnlyServer,
    RefusedError,
    RevisionFailed,
    RevisionFileError,
    VerificationFailed,
    WaitTimeout,
    Z4jMigrateError,
)
from .export import ExportResult, export
from .interrupt import Interrupted
from .lock import LockHolder
from .runner import RevisionRun
from .status import RevisionState, RevisionStatus, StatusReport
from .wait import WaitResult, wait_for_head

__version__ = "0.1.0"

__all__ = [
    "AdoptResult",
    "AdoptionMismatch",
    "ConfigError",
    "ConnectionFailed",
    "DeclinedByOperator",
    "DowngradeResult",
    "DriftError",
    "ExportResult",
    "ExtensionError",
    "ForeignHistory",
    "IncompleteRevision",
    "Interrupted",
    "IrreversibleRevision",
    "LockHolder",
    "LockTimeout",
    "PreflightFailed",
    "PrivilegeError",
    "ReadOnlyServer",
    "RefusedError",
    "RevisionFailed",
    "RevisionFileError",
    "RevisionRun",
    "RevisionState",
    "RevisionStatus",
    "Settings",
    "StatusReport",
    "UpgradeResult",
    "VerificationFailed",
    "WaitResult",
    "WaitTimeout",
    "Z4jMigrateError",
    "adopt",
    "downgrade",
    "export",
    "migrate_on_startup",
    "settings_from_env",
    "status",
    "upgrade",
    "wait_for_head",
]
