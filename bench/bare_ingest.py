"""The baseline for bench_events.py: a bare aiohttp handler doing the same event insert.

No auth, no validation, no projection: parse JSON, INSERT one call_events row, commit.
Run as: python bench/bare_ingest.py DATABASE_URL PORT
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web
from sqlalchemy import insert

from callcenter.adapters import db, tables


async def make_app(url: str) -> web.Application:
    engine = db.create_engine(url)
    await db.upgrade(engine)

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            await conn.execute(
                insert(tables.call_events).values(
                    call_id=body["call_id"],
                    event=body["event"],
                    at=now,
                    received_at=now,
                    source="api",
                    data=json.dumps(body),
                    dedup_key=hashlib.sha256(json.dumps(body).encode()).hexdigest(),
                )
            )
        return web.json_response({"stored": True}, status=201)

    app = web.Application()
    app.router.add_post("/api/v1/events", handle)
    return app


if __name__ == "__main__":
    web.run_app(make_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), print=None)
