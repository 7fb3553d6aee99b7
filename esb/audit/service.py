"""The audit trail inside a worker: records requests and signs checkpoints at intervals.

A ``mode`` service the runtime starts after the database is open. Recording awaits the append
(the entry exists before the client sees the answer), batched per tenant's log
(:mod:`esb.audit.batch`); a failed append never changes the answer
of a request whose effect already happened: it is logged (ids only) and counted, and
``esb audit verify`` still proves what was recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mode import Service

from esb.audit.batch import AppendBatcher
from esb.audit.checkpoints import Signer, signer_from
from esb.audit.entry import AuditRecord
from esb.audit.log import AuditLog
from esb.db import Database
from esb.errors import EsbError
from esb.metrics import AUDIT_APPEND_FAILURES
from esb.settings import Settings

log = logging.getLogger(__name__)


class AuditService(Service):
    """Append entries for the HTTP layer; sign every grown log every interval."""

    def __init__(self, settings: Settings, database: Callable[[], Database | None],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self._database = database
        key = settings.audit_signing_key
        self.signer: Signer = signer_from(key.get_secret_value() if key else None,
                                          development=settings.mode == "development",
                                          data_dir=settings.data_dir)
        #: one writer per tenant's log: a burst of changes is appended in a few transactions
        self.batcher = AppendBatcher(lambda log, records: self.log_store.append_many(log, records))

    @property
    def log_store(self) -> AuditLog:
        database = self._database()
        if database is None:
            from esb.errors import StorageUnavailable

            raise StorageUnavailable("the audit trail needs the database")
        return AuditLog(database)

    async def record(self, record: AuditRecord) -> int | None:
        """Append ``record``; None (logged, counted) if the store refused it."""
        try:
            return await self.batcher.append(record)
        except Exception as exc:  # never turn a done change into an error answer
            AUDIT_APPEND_FAILURES.inc()
            log.error("audit entry not recorded (tenant %r, %s %s, request %s): %s",
                      record.tenant, record.method, record.operation, record.request_id,
                      type(exc).__name__)
            return None

    @Service.task
    async def _checkpoints(self) -> None:
        interval = self.settings.audit_checkpoint_interval_s
        while not self.should_stop:
            await self.sleep(interval)
            if self.should_stop:
                break
            try:
                await self.log_store.checkpoint_all(self.signer)
            except EsbError as exc:
                log.warning("audit checkpoints not signed this round: %s", exc.code)
