"""The reference for the ingest benchmark: a bare FastAPI endpoint taking the same JSON body, doing nothing."""

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.post("/v1/responses", status_code=202)
async def accept(body: dict[str, Any]) -> dict[str, str]:
    return {"response_id": str(body.get("response_id")), "status": "accepted"}
