"""The base of the typed parts of audit payloads: named, typed fields that write back the keys they were given.

A payload already in the log was written by some older Docket with the keys it had then. Read into a
typed record and written out again (a replay, a restored review cell, a report) it must come out with
those keys and no others, so that what an auditor compares stays what was signed. So a field that was
not given stays out of the dump (its default is only what reading it gives), and a key this Docket does
not know (one a newer Docket wrote) is kept as it was.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, SerializationInfo, SerializerFunctionWrapHandler, model_serializer


class PayloadModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    @model_serializer(mode="wrap")
    def _given_keys_only(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        data = handler(self)
        given = self.model_fields_set | set(self.model_extra or ())
        return {key: value for key, value in data.items() if key in given}

    @property
    def given(self) -> bool:
        """Anything was given (a payload's ``{}`` reads back as a record with nothing given)."""
        return bool(self.model_fields_set or self.model_extra)

    def to_payload(self) -> dict[str, Any]:
        """Plain JSON: the keys given, each as given (a typed part is rendered by its own type)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Self:
        return cls.model_validate(payload)
