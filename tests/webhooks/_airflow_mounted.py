"""Airflow's own plugin loading and mounting, served on a port: ``python -m tests.webhooks._airflow_mounted PORT``.

Builds an app the way the api-server does (``airflow.api_fastapi.app.init_plugins`` over the plugins Airflow
finds), prints the mounts, then serves it with uvicorn.
"""

from __future__ import annotations

import sys

import uvicorn
from airflow.api_fastapi.app import init_plugins
from fastapi import FastAPI
from starlette.routing import Mount


def main(port: int) -> None:
    app = FastAPI()
    init_plugins(app)
    print("mounts:", ",".join(r.path for r in app.routes if isinstance(r, Mount)), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main(int(sys.argv[1]))
