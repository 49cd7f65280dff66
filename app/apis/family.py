"""An API family as the app registers it: one package under `app/apis/`, one `FAMILY` in its
`__init__`, one line in `app.http.FAMILIES`.

Registering a family adds its blueprint, its error shape for its path prefixes (`shapes`), its
stream wire (`app.streaming.wire`) with where its streams start and resume (`streams`), what it
keeps per app (its request schemas, bounded by the settings) and its part of the served contract.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app

from ..config import Settings
from ..service.services import Reviver, Services
from ..streaming import wire
from . import shapes, streams
from .items import references


@dataclasses.dataclass(frozen=True)
class StreamWire:
    """A family's stream format: its wire's name, its writer, and where its streams start and resume."""

    name: str
    writer: wire.WriterFactory
    started_at: str
    resumed_at: str  # `{id}` stands for the stream's id


@dataclasses.dataclass(frozen=True)
class Family:
    """One API family: its name, blueprint, error shape and the paths it takes, its stream wire,
    what it keeps per app, and how it fills this deployment's bounds into the served contract."""

    name: str
    blueprint: Blueprint
    error_prefixes: tuple[str, ...]
    error_shape: shapes.Shape
    stream_wire: StreamWire | None = None
    per_app: Callable[[Settings], Any] | None = None
    contract: Callable[[dict[str, Any], Settings], None] | None = None  # (the contract's schemas, settings)
    error_status: shapes.Status | None = None  # its statuses where they differ from the catalogue's
    # What a takeover of one of its streams does when the stream ends on the worker that took it
    # over (the stream's `Retention.ended`, rebuilt from the arguments it kept): made once per app
    # from the app's services, and called with the stream's client and those arguments.
    reviver: Callable[[Services], Reviver] | None = None
    # Where its streams' output items are found by id (an `item_reference`), one lookup per request.
    output_items: Callable[[], references.OutputItem] | None = None

    def register_formats(self) -> None:
        """Its error shape and stream wire, which need no app (the server shell and the stores use them)."""
        shapes.register(self.error_prefixes, self.error_shape, self.error_status)
        if self.stream_wire is not None:
            found = self.stream_wire
            wire.register(found.name, found.writer)
            streams.register_paths(found.name, found.started_at, found.resumed_at)

    def init_app(self, app: Flask, settings: Settings) -> None:
        """Register it with `app`."""
        self.register_formats()
        app.register_blueprint(self.blueprint)
        if self.reviver is not None and self.stream_wire is not None:
            found = app.extensions["chatwait"]
            found.revivers[self.stream_wire.name] = self.reviver(found)
        if self.per_app is not None:
            app.extensions[f"chatwait.{self.name}"] = self.per_app(settings)
        if self.output_items is not None:
            references.register(app, self.output_items)


def kept(name: str) -> Any:
    """What the family `name` keeps for the current app (`Family.per_app`)."""
    return current_app._get_current_object().extensions[f"chatwait.{name}"]
