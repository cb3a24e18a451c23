"""crm-sync's commands beside ``serve``: ``reconcile [--connector NAME] [--dry-run]`` (re-push, re-read owners,
re-try unmatched) and ``salesforce-fields`` (the Account fields an admin creates).

The run is marked in PostgreSQL; the connector's writer does the calls, paced by its budget. When a crm-sync
replica is the writer, the command follows its progress; when none is (crm-sync is not running), the command
is the writer until the run is done. It prints a progress line every few seconds and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.connectors.salesforce import SALESFORCE_TYPE, field_map
from crm_sync.dispatcher import ConnectorWriter
from crm_sync.domain.properties import property_defs
from crm_sync.main import connectors_for, store_options, writers_for
from crm_sync.reconcile import progress, progress_line, start_reconcile
from crm_sync.settings import CrmSyncSettings
from crm_sync.writer_lock import WriterLock
from pulse_shared.db import service_engine
from pulse_shared.producer import EventProducer

PROGRESS_SECONDS = 3.0


def salesforce_fields_command(settings: CrmSyncSettings, _args: argparse.Namespace) -> int:
    """Print the Account fields a Salesforce admin creates for Pulse (label, API name, type)."""
    labels = {d.name: (d.label, d.type) for d in property_defs(settings.salesforce_account_id_field,
                                                                write_comments=settings.write_comments)}
    print(f"{'Label':45} {'API name':40} Type")
    print(f"{'Pulse account id':45} {settings.salesforce_account_id_field:40} Text(255), External ID, Unique")
    for prop, name in field_map(settings.salesforce_field_map, write_comments=settings.write_comments).items():
        label, kind = labels[prop]
        print(f"{label:45} {name:40} {SALESFORCE_TYPE[kind]}")
    return 0


def arguments(parser: argparse.ArgumentParser) -> None:
    """The reconcile command's options."""
    parser.add_argument("--connector", help="reconcile one connector (default: every configured one)")
    parser.add_argument("--dry-run", action="store_true", help="say what a reconcile would cover; change nothing")


def reconcile_command(settings: CrmSyncSettings, args: argparse.Namespace) -> int:
    """Run a reconcile; exit 0 when every account was written, unmatched or dead-lettered, 2 on bad input."""
    return asyncio.run(_reconcile(settings, args))


async def _reconcile(settings: CrmSyncSettings, args: argparse.Namespace) -> int:
    connectors = connectors_for(settings)
    names = [c.name for c in connectors]
    if args.connector and args.connector not in names:
        sys.stderr.write(f"unknown connector {args.connector!r}; configured: {', '.join(names)}\n")
        return 2
    chosen = [args.connector] if args.connector else names
    engine = service_engine(settings)
    producer = EventProducer(settings, client_id="crm-sync-reconcile")
    try:
        summary = await start_reconcile(engine, chosen, options=store_options(settings), dry_run=args.dry_run)
        print(summary.line(), flush=True)
        if summary.run_id is None:
            return 0
        writers = [w for w in writers_for(settings, engine, connectors, producer) if w.connector.name in chosen]
        own = await _free_writers(engine, writers)
        if own:
            await producer.start()
            print(f"no crm-sync replica is writing {', '.join(w.connector.name for w, _ in own)}: "
                  f"this command writes", flush=True)
        while True:
            for writer, _lock in own:
                writer.owners_due_now()
                await writer.cycle()
            state = await progress(engine, summary.run_id)
            assert state is not None
            print(progress_line(state), flush=True)
            if state["finished"]:
                break
            if not own:
                await asyncio.sleep(PROGRESS_SECONDS)
            else:
                await asyncio.sleep(min(w.options.flush_interval for w, _ in own))
        print(f"done: {progress_line(state)}", flush=True)
        for _writer, lock in own:
            await lock.release()
        return 0
    finally:
        for c in connectors:
            await c.close()
        await producer.stop()
        await engine.dispose()


async def _free_writers(engine: AsyncEngine,
                        writers: list[ConnectorWriter]) -> list[tuple[ConnectorWriter, WriterLock]]:
    own = []
    for writer in writers:
        lock = WriterLock(engine, writer.connector.name)
        if await lock.acquire():
            await writer.became_writer()
            own.append((writer, lock))
    return own
