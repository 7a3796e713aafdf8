"""The external contract: request parsing and validation, replies and events (docs/protocol.md).

Every external message is one UTF-8 JSON object. `parse` turns a request payload into one typed
request or raises `RequestError(code, message)`; it never lets a malformed request through and
never raises anything else. `Catalog` checks languages and model tiers against what the workers
reported in their Ready frames: directly per tier, or through a pivot language that joins two
legs (English preferred; `ipc.routing.pivot_routes`, the workers' routing order). Language codes are folded
onto ISO 639-1 (`ipc.languages`). The builders below give replies their documented shapes;
events are typed in ipc/events.py and built in appliance/core/events.py.

Error codes: invalid_json, invalid_request, text_too_long, too_many_targets,
unsupported_language, unsupported_model, overloaded, shutting_down, not_ready (requests);
timeout, worker_crashed, shutting_down, internal_error and the runtime's own codes (events).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from ipc.languages import canonical
from ipc.frames import FORMATS
from ipc.routing import PIVOT, pivot_routes
from ipc.tiers import MODEL_TYPES

AUTO = "auto"

INVALID_JSON = "invalid_json"
INVALID_REQUEST = "invalid_request"
TEXT_TOO_LONG = "text_too_long"
TOO_MANY_TARGETS = "too_many_targets"
UNSUPPORTED_LANGUAGE = "unsupported_language"
UNSUPPORTED_MODEL = "unsupported_model"
OVERLOADED = "overloaded"
SHUTTING_DOWN = "shutting_down"
NOT_READY = "not_ready"
TIMEOUT = "timeout"
WORKER_CRASHED = "worker_crashed"
INTERNAL_ERROR = "internal_error"
TASK_ID_CONFLICT = "task_id_conflict"
TRANSLATION_FAILED = "translation_failed"


class RequestError(Exception):
    def __init__(self, code: str, message: str, message_id: str | None = None, task_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.message_id = message_id
        self.task_id = task_id


class _Request(msgspec.Struct, rename="camel", kw_only=True):
    type: str = "translation"
    message_id: str | None = None


class _TranslationFields(_Request):
    message_id: str
    text: str
    source_language: str | None = None
    target_language: str | None = None
    target_languages: list[str] | None = None
    model_type: str | None = None
    conversation_id: str | None = None
    task_id: str | None = None
    sync: bool = False
    format: str = "text"


@dataclass(frozen=True, slots=True)
class _BareRequest:
    """A request that carries nothing but its optional messageId."""

    message_id: str | None


class Ping(_BareRequest):
    __slots__ = ()


class StatsRequest(_BareRequest):
    __slots__ = ()


class LanguagesRequest(_BareRequest):
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class DetectRequest:
    message_id: str | None
    text: str


@dataclass(frozen=True, slots=True)
class TranslateRequest:
    message_id: str
    text: str
    source_language: str  # a canonical code (ipc.languages) or "auto"
    targets: tuple[str, ...]  # distinct canonical codes, in the client's order
    model_type: str  # one of MODEL_TYPES
    conversation_id: str | None
    task_id: str | None
    sync: bool
    # None: a target no model serves refuses the request whole. A dict (Meeshy's gateway, whose
    # languages live apart): such a target leaves the request instead, its reason kept here.
    skipped: dict[str, str] | None = None
    format: str = "text"  # "text" (chat text, markdown) | "html" (an HTML fragment): see FORMATS


Request = Ping | StatsRequest | LanguagesRequest | DetectRequest | TranslateRequest

_SIMPLE = {"ping": Ping, "stats": StatsRequest, "languages": LanguagesRequest}


def _message(exc: msgspec.ValidationError) -> str:
    return str(exc).replace("`$.", "`").replace("- at `$`", "").strip()


class _DetectFields(_Request):
    text: str


_translation_decoder = msgspec.json.Decoder(_TranslationFields)


def parse(
    payload: bytes,
    *,
    max_request_bytes: int,
    max_text_chars: int,
    max_targets: int,
    max_id_bytes: int = 256,
    default_type: str = "translation",
    only_type: str | None = None,
) -> Request:
    """One request; `default_type` is the type of a request that names none. HTTP routes pass
    `only_type`: a body of another type is refused. messageId, taskId and conversationId are
    echoed in every reply and event, so each is bounded to `max_id_bytes` UTF-8 bytes."""
    if len(payload) > max_request_bytes:
        raise RequestError(
            INVALID_REQUEST, f"request is {len(payload)} bytes; the limit is {max_request_bytes}"
        )
    # Fast path for the common case, a well-formed translation request: one typed decode.
    # Anything it does not take goes the general way below, which names the problem.
    try:
        fast = _translation_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, ValueError, RecursionError):
        fast = None
    if fast is not None and fast.type == "translation" and default_type == "translation":
        return _check_translation(fast, max_text_chars=max_text_chars, max_targets=max_targets, max_id_bytes=max_id_bytes)
    try:
        obj = msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError) as exc:
        raise RequestError(INVALID_JSON, f"request is not valid UTF-8 JSON: {exc}") from None
    except RecursionError:  # deeply nested arrays or objects, anywhere in the payload
        raise RequestError(INVALID_JSON, "request JSON is nested too deeply") from None
    if not isinstance(obj, dict):
        raise RequestError(INVALID_REQUEST, f"request must be a JSON object, got {type(obj).__name__}")
    message_id = _echoable(obj.get("messageId"), max_id_bytes)
    task_id = _echoable(obj.get("taskId"), max_id_bytes)
    for name in ("messageId", "taskId", "conversationId"):
        value = obj.get(name)
        if isinstance(value, str) and len(value.encode("utf-8", "surrogatepass")) > max_id_bytes:
            raise RequestError(INVALID_REQUEST, f"{name} is longer than {max_id_bytes} bytes", message_id, task_id)
    obj.setdefault("type", default_type)
    try:
        head = msgspec.convert(obj, _Request)
    except msgspec.ValidationError as exc:
        raise RequestError(INVALID_REQUEST, _message(exc), message_id) from None
    if only_type is not None and head.type != only_type:
        raise RequestError(INVALID_REQUEST, f"this endpoint takes {only_type!r} requests, not {head.type!r}", message_id)
    if head.type in _SIMPLE:
        return _SIMPLE[head.type](head.message_id)
    if head.type == "detect":
        try:
            detect = msgspec.convert(obj, _DetectFields)
        except msgspec.ValidationError as exc:
            raise RequestError(INVALID_REQUEST, _message(exc), message_id) from None
        if not detect.text.strip():
            raise RequestError(INVALID_REQUEST, "text is empty", message_id)
        if len(detect.text) > max_text_chars:
            raise RequestError(TEXT_TOO_LONG, f"text is {len(detect.text)} characters; the limit is {max_text_chars}", message_id)
        return DetectRequest(detect.message_id, detect.text)
    if head.type != "translation":
        raise RequestError(
            INVALID_REQUEST,
            f"unknown request type {head.type!r} (translation, detect, ping, stats, languages)",
            message_id,
        )
    try:
        req = msgspec.convert(obj, _TranslationFields)
    except msgspec.ValidationError as exc:
        raise RequestError(INVALID_REQUEST, _message(exc), message_id, task_id) from None
    return _check_translation(req, max_text_chars=max_text_chars, max_targets=max_targets, max_id_bytes=max_id_bytes)


def _echoable(value: object, max_id_bytes: int) -> str | None:
    """An id from a request that failed to parse, if it is fit to echo in the error reply."""
    if isinstance(value, str) and len(value.encode("utf-8", "surrogatepass")) <= max_id_bytes:
        return value
    return None


def _check_translation(
    req: _TranslationFields, *, max_text_chars: int, max_targets: int, max_id_bytes: int
) -> TranslateRequest:
    def fail(code: str, message: str) -> RequestError:
        return RequestError(code, message, _echoable(req.message_id, max_id_bytes) or None,
                            _echoable(req.task_id, max_id_bytes))

    for name, value in (("messageId", req.message_id), ("taskId", req.task_id), ("conversationId", req.conversation_id)):
        # 4 UTF-8 bytes at most per character: most ids are measured without encoding them
        if value is not None and 4 * len(value) > max_id_bytes and len(value.encode("utf-8", "surrogatepass")) > max_id_bytes:
            raise fail(INVALID_REQUEST, f"{name} is longer than {max_id_bytes} bytes")
    if not req.message_id.strip():
        raise fail(INVALID_REQUEST, "messageId must be a non-empty string")
    if req.task_id is not None and not req.task_id.strip():
        raise fail(INVALID_REQUEST, "taskId, when given, must be a non-empty string")
    if not req.text.strip():
        raise fail(INVALID_REQUEST, "text is empty")
    if len(req.text) > max_text_chars:
        raise fail(TEXT_TOO_LONG, f"text is {len(req.text)} characters; the limit is {max_text_chars}")
    targets: list[str] = []
    for code in ([req.target_language] if req.target_language is not None else []) + (
        req.target_languages or []
    ):
        if not code.strip():
            raise fail(INVALID_REQUEST, "a target language is empty")
        code = canonical(code)
        if code not in targets:
            targets.append(code)
    if not targets:
        raise fail(INVALID_REQUEST, "targetLanguage or targetLanguages is required")
    if len(targets) > max_targets:
        raise fail(TOO_MANY_TARGETS, f"{len(targets)} target languages; the limit is {max_targets}")
    source = canonical(req.source_language or AUTO) or AUTO
    model_type = (req.model_type or AUTO).strip().lower()
    if model_type not in MODEL_TYPES:
        raise fail(UNSUPPORTED_MODEL, f"modelType {req.model_type!r} is not one of {', '.join(MODEL_TYPES)}")
    if req.format not in FORMATS:
        raise fail(INVALID_REQUEST, f"format {req.format!r} is not one of {', '.join(FORMATS)}")
    return TranslateRequest(
        message_id=req.message_id,
        text=req.text,
        source_language=source,
        targets=tuple(targets),
        model_type=model_type,
        conversation_id=req.conversation_id,
        task_id=req.task_id,
        sync=req.sync,
        format=req.format,
    )


class Catalog:
    """The language pairs the workers serve: per tier directly (their Ready frames, the rule-based
    `fallback` tier included), and through any language that joins two legs, English preferred."""

    def __init__(self, languages: dict[str, list[tuple[str, str]]], pivot: str = PIVOT) -> None:
        self.pairs = {tier: {(s, t) for s, t in pairs} for tier, pairs in languages.items() if pairs}
        direct = set().union(*self.pairs.values()) if self.pairs else set()
        self.pivot = pivot
        self.via = pivot_routes(self.pairs)  # (source, target) -> the pivot its first route takes
        self.pivot_pairs = set(self.via)
        self.served = direct | self.pivot_pairs
        self.sources = {s for s, _ in self.served}
        self.languages = self.sources | {t for _, t in self.served}

    def _listing(self) -> str:
        return ", ".join(f"{s}-{t}" for s, t in sorted(self.served))

    def check(self, req: TranslateRequest) -> None:
        """Refuse (RequestError) a source or target no model knows, and an explicit pair that
        nothing serves, naming what is supported."""
        def known() -> str:  # only for the refusal: it sorts every pair
            return f"{', '.join(sorted(self.languages))}; pairs: {self._listing()}"

        if req.source_language != AUTO and req.source_language not in self.languages:
            raise RequestError(
                UNSUPPORTED_LANGUAGE,
                f"source language {req.source_language!r} is not supported; languages: {known()}",
                req.message_id,
            )
        for target in req.targets:
            if target not in self.languages:
                raise RequestError(
                    UNSUPPORTED_LANGUAGE, f"target language {target!r} is not supported; languages: {known()}", req.message_id
                )
            if req.source_language != AUTO:
                self.check_pair(req.source_language, target, req.message_id)

    def check_pair(self, source: str, target: str, message_id: str | None, detected: bool = False) -> None:
        if source == target or (source, target) in self.served:
            return
        what = f"{source} (detected)" if detected else source
        raise RequestError(
            UNSUPPORTED_LANGUAGE,
            f"no model translates {what} -> {target}, directly or through another language; pairs: {self._listing()}",
            message_id,
        )

    def as_json(self) -> dict:
        return {tier: [[s, t] for s, t in sorted(pairs)] for tier, pairs in sorted(self.pairs.items())}

    def pivot_json(self) -> dict:
        """`via` is the pivot tried first; `through` names the pivot each pair's first route takes."""
        return {
            "via": self.pivot,
            "pairs": [[s, t] for s, t in sorted(self.pivot_pairs)],
            "through": {f"{s}-{t}": p for (s, t), p in sorted(self.via.items())},
        }


# ---------------------------------------------------------------- replies

_encoder = msgspec.json.Encoder()


def encode(obj: dict) -> bytes:
    return _encoder.encode(obj)


def error_body(code: str, message: str, message_id: str | None = None, task_id: str | None = None) -> dict:
    body: dict = {"status": "error"}
    if message_id is not None:
        body["messageId"] = message_id
    if task_id is not None:
        body["taskId"] = task_id
    body["error"] = {"code": code, "message": message}
    return body


def queued_body(task_id: str, message_id: str, estimate_ms: float, targets: list[str], duplicate: bool) -> dict:
    body = {
        "taskId": task_id,
        "messageId": message_id,
        "status": "queued",
        "estimatedProcessingTime": round(estimate_ms),
        "targetLanguages": targets,
    }
    if duplicate:
        body["duplicate"] = True
    return body
