"""The package logger, with a filter that masks passwords in every record."""

from __future__ import annotations

import logging

from .errors import redact


class RedactFilter(logging.Filter):
    """Runs on every record of the z4j_migrate logger, whoever configured handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = redact(str(record.msg))
        return True


log = logging.getLogger("z4j_migrate")
if not any(isinstance(f, RedactFilter) for f in log.filters):
    log.addFilter(RedactFilter())

# Tags on the records of events the CLI also prints itself (it filters them from its log handler,
# so a person sees each applied revision once): `extra=EVENT_APPLIED` in a logging call.
EVENT = "z4j_event"
EVENT_APPLIED = {EVENT: "applied"}
EVENT_ROLLED_BACK = {EVENT: "rolled_back"}
