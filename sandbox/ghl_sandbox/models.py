"""Request bodies of the GHL Contacts API (contacts.json DTOs), validated the way GHL's whitelist does.

``extra="forbid"`` mirrors GHL's class-validator whitelist: an unknown property is a 422
("property locationId should not exist").
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DTO(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactFields(DTO):
    firstName: str | None = None
    lastName: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address1: str | None = None
    city: str | None = None
    state: str | None = None
    postalCode: str | None = None
    website: str | None = None
    timezone: str | None = None
    dnd: bool | None = None
    dndSettings: dict[str, Any] | None = None
    inboundDndSettings: dict[str, Any] | None = None
    tags: list[str] | None = None
    customFields: list[dict[str, Any]] | None = None
    source: str | None = None
    dateOfBirth: str | None = None
    country: str | None = None
    assignedTo: str | None = None


class UpdateContactDto(ContactFields):
    pass


class CreateContactDto(ContactFields):
    locationId: str
    gender: str | None = None
    companyName: str | None = None


class UpsertContactDto(CreateContactDto):
    createNewIfDuplicateAllowed: bool | None = None


class CreateTaskParams(DTO):
    title: str
    body: str | None = None
    dueDate: str
    completed: bool
    assignedTo: str | None = None


class UpdateTaskBody(DTO):
    title: str | None = None
    body: str | None = None
    dueDate: str | None = None
    completed: bool | None = None
    assignedTo: str | None = None


class UpdateTaskStatusParams(DTO):
    completed: bool


class NotesDTO(DTO):
    body: str
    userId: str | None = None
    title: str | None = None
    color: str | None = None
    pinned: bool | None = None


class UpdateNoteDTO(DTO):
    body: str | None = None
    userId: str | None = None
    title: str | None = None
    color: str | None = None
    pinned: bool | None = None


class TagsDTO(DTO):
    tags: list[str]


class FollowersDTO(DTO):
    followers: list[str]


class AddContactToCampaignDto(DTO):
    pass


class CreateWorkflowDto(DTO):
    eventStartTime: str | None = None


class UpdateTagsDTO(DTO):
    contacts: list[str]
    tags: list[str]
    locationId: str
    removeAllTags: bool | None = None


class ContactsBusinessUpdate(DTO):
    locationId: str
    ids: list[str] = Field(max_length=500)
    businessId: str | None


class TaskSearchParamsDto(DTO):
    contactId: list[str] | None = None
    completed: bool | None = None
    assignedTo: list[str] | None = None
    query: str | None = None
    limit: int = Field(default=25, ge=1, le=100)
    skip: int = Field(default=0, ge=0)
    businessId: str | None = None
