"""What the doors (appliance/edge/: the ZeroMQ edge, HTTP, LibreTranslate, Meeshy's gateway) may
ask of the core: one `Service` protocol, which appliance/core/service.py's RequestService
implements. A door imports this module, never the service's own, so it can be tested against
any object of this shape.

`respond` answers one request payload; `reply` is called exactly once (service.py's contract).
Its keywords are the doors' options: `scope` the requester's taskId namespace (ZeroMQ edge,
gateway), `force_sync` and `only_type` (HTTP routes), `each_target` and `max_text_chars`
(Meeshy's gateway). `lifecycle` is the supervisor's, read-only here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from appliance.config import Settings
from appliance.core.protocol import Catalog
from appliance.core.stats import Metrics
from appliance.lifecycle.phase import Lifecycle


class Service(Protocol):
    settings: Settings
    metrics: Metrics
    catalog: Catalog | None  # None until the first worker is ready
    lifecycle: Lifecycle

    def count_request(self) -> None: ...

    def respond(self, payload: bytes, reply: Callable[[dict], None], *, force_sync: bool = False,
                only_type: str | None = None, scope: str = "", each_target: bool = False,
                max_text_chars: int | None = None) -> None: ...

    def ready(self) -> bool: ...
    def ping(self, message_id: str | None) -> dict: ...
    def stats(self) -> dict: ...
