"""The API's routers, one module per concern."""

from __future__ import annotations

from fastapi import APIRouter

from app.routes import events, experiment, health, items, recommend, users

# The hot route first: routes are matched in order.
routers: list[APIRouter] = [
    recommend.router,
    health.router,
    items.router,
    users.router,
    events.router,
    experiment.router,
]
