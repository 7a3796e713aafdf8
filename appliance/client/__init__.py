"""The client library and the client commands of `meeshy-appliance`: what a gateway imports.

It imports nothing of the server (only ipc/, the vocabulary both sides share), so a gateway
installs the package and uses `appliance.client` without starting anything. The library is
`library.py` (`Client`, asyncio; `SyncClient`; `request`, one REQ round trip); the commands
`ping | stats | languages | translate | keygen` are `cli.py`.
"""

from appliance.client.library import (
    EVENT_PREFIX,
    MARK_DOWN,
    PROBE_WAIT_S,
    REQ_HWM,
    SUB_HWM,
    TRY_ELSEWHERE,
    Client,
    ClientError,
    Endpoint,
    NoAnswer,
    Outcome,
    SyncClient,
    TranslationFailed,
    TranslationFailure,
    TranslationResult,
    handshake_hint,
    request,
    sync_outcomes,
)

__all__ = [
    "EVENT_PREFIX", "MARK_DOWN", "PROBE_WAIT_S", "REQ_HWM", "SUB_HWM", "TRY_ELSEWHERE", "Client", "ClientError",
    "Endpoint", "NoAnswer", "Outcome", "SyncClient", "TranslationFailed", "TranslationFailure", "TranslationResult",
    "handshake_hint", "request", "sync_outcomes",
]
