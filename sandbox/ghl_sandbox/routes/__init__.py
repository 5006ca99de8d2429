"""The sandbox's routes, one module per group; :data:`ROUTERS` lists them in registration order.

The order matters where paths overlap: ``/contacts/business/{businessId}`` (contacts) must come before
``/contacts/{contactId}/tasks`` (children), so that ``/contacts/business/tasks`` stays the business route.
"""

from __future__ import annotations

from fastapi import APIRouter

from ghl_sandbox.routes import admin, associations, children, contacts, locations, marketplace, oauth, webhooks

ROUTERS: tuple[APIRouter, ...] = (
    contacts.router,
    associations.router,
    children.router,
    locations.router,
    oauth.router,
    marketplace.router,
    admin.router,
    webhooks.router,
)

__all__ = ["ROUTERS"]
