"""LibreTranslate's HTTP API on the appliance's HTTP port, over the native request path.

Platforms that speak LibreTranslate (Mastodon, Discourse, Weblate, Nextcloud, Misskey, the PyPI
and npm client libraries) use the appliance with a URL and a key. The shapes, status codes and
error messages are LibreTranslate's own (libretranslate/app.py); docs/protocol.md has the table.

    POST /translate   JSON or form (urlencoded, multipart): q (a string or a list of strings),
                      source (a code or "auto"), target, format ("text" | "html"), alternatives,
                      api_key
                      200 {"translatedText": str | [str], "detectedLanguage"?: {"language",
                      "confidence"} | [...] (source "auto" only; confidence 0..100),
                      "alternatives"?: [] | [[]] (alternatives > 0; none are produced)}
    POST /detect      q, api_key -> 200 [{"language", "confidence"}], best first
    GET  /languages   200 [{"code", "name", "targets"}]: every language some route serves
    GET  /frontend/settings   200 {"charLimit", "frontendTimeout", "apiKeys", "keyRequired", ...}

    errors            {"error": "<LibreTranslate's message>"} with 400 (bad input, unknown
                      language or pair, a text or list over the limits), 403 (a wrong api_key),
                      429 (overloaded: "Slowdown: ..."), 500 (a translation failed), and 503
                      (not ready, shutting down: LibreTranslate has no such state)

Which requests are LibreTranslate's: GET /languages and /frontend/settings always; a POST to
/translate or /detect when its body is a JSON object with `q` (or, for /translate, `target`) and
no native `text`, or, not being JSON, is a form. Everything else is a native request, unchanged.

Same path, limits, cache, routing and metrics as the native API: each text of `q` becomes one
native synchronous translation request (`Service.respond`, as the native POST /translate), so a
list of n texts is n requests, answered together. Limits, checked before any is sent: each text at
most [limits] max_text_chars, a list at most [limits] max_targets texts (the most tasks one native
request makes), the body at most max_request_bytes (the HTTP layer).

Keys: with [security] http_token set, a request passes with `Authorization: Bearer <token>` (as
native ones) or with the token as `api_key` in its body or form (LibreTranslate's way); a wrong
api_key is 403 "Invalid API key", none is 400 (LibreTranslate's answer when a key is required).
GET /languages and /frontend/settings are open, as in LibreTranslate (Mastodon asks for languages
without a key).

format=html is the native request's `format: "html"` (docs/protocol.md, "Markup"): every tag,
attribute and comment comes back byte for byte, script, style, pre and textarea are never
translated, and a sentence with inline tags is translated whole with its tags put back.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hmac
from typing import NamedTuple
from urllib.parse import parse_qs

import msgspec

from appliance.core import protocol
from appliance.core.ports import Service
from ipc.languages import canonical

GET_ROUTES = ("/languages", "/frontend/settings")
POST_ROUTES = ("/translate", "/detect")
FRONTEND_TIMEOUT_MS = 500  # LibreTranslate's default; its web UI waits this long after typing

# English names, as LibreTranslate's /languages gives them (argos-translate's names).
NAMES = {
    "ar": "Arabic", "az": "Azerbaijani", "bg": "Bulgarian", "bn": "Bengali", "ca": "Catalan", "cs": "Czech",
    "da": "Danish", "de": "German", "el": "Greek", "en": "English", "eo": "Esperanto", "es": "Spanish",
    "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French", "ga": "Irish",
    "gl": "Galician", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian",
    "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "ms": "Malay", "nb": "Norwegian",
    "nl": "Dutch", "oc": "Occitan", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "sk": "Slovak", "sl": "Slovenian", "sq": "Albanian", "sv": "Swedish", "th": "Thai", "tl": "Tagalog",
    "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese", "zh-hant": "Chinese (traditional)",
}

# Native error codes -> LibreTranslate's status (anything else is a bad request, 400).
STATUS = {
    protocol.OVERLOADED: 429,
    protocol.NOT_READY: 503,
    protocol.SHUTTING_DOWN: 503,
    protocol.INTERNAL_ERROR: 500,
}
KEY_NEEDED = "Please contact the server operator to get an API key"



class Refused(Exception):
    """A LibreTranslate error answer: {"error": message} with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Claim(NamedTuple):
    fields: dict  # the request's parameters (JSON members or form fields)
    is_json: bool


def handles(method: str, path: str, content_type: str, body: bytes) -> Claim | None:
    """The request's parameters when it is one of this API's, else None (a native request).
    `content_type` is the whole header. GET routes get no parameters (a body is ignored)."""
    if method == "GET" and path in GET_ROUTES:
        return Claim({}, False)
    if method != "POST" or path not in POST_ROUTES:
        return None
    try:
        obj = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict):
        ours = "q" in obj or (path == "/translate" and "target" in obj)
        return Claim(obj, True) if ours and "text" not in obj else None
    mimetype = content_type.split(";", 1)[0].strip().lower()
    if mimetype == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            fields = {}
        return Claim({name: values[0] for name, values in fields.items()}, False)  # Flask's values.get: the first
    if mimetype == "multipart/form-data":
        return Claim(multipart_fields(content_type, body), False)
    return None


def multipart_fields(content_type_header: str, body: bytes) -> dict:
    """The text fields of a multipart/form-data body (browsers' FormData)."""
    head = f"Content-Type: {content_type_header}\r\n\r\n".encode("latin-1", "replace")
    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str) and name not in fields and part.get_content_maintype() == "text":
                fields[name] = part.get_content()
        return fields
    except Exception:  # a malformed body is a form with no fields: "missing q"
        return {}


class LibreTranslateApi:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.settings = service.settings
        self.token = service.settings.security.http_token.encode()

    async def serve(self, path: str, claim: Claim, *, bearer_ok: bool) -> tuple[int, object]:
        """(status, JSON body) for one request `handles` claimed; `bearer_ok`: the HTTP layer
        found a valid Bearer token (or none is configured)."""
        fields = claim.fields
        try:
            if path == "/languages":
                return 200, self.languages()
            if path == "/frontend/settings":
                return 200, self.frontend_settings()
            self._check_key(fields, bearer_ok)
            self.service.count_request()
            if path == "/detect":
                return 200, await self.detect(fields)
            return 200, await self.translate(fields, claim.is_json)
        except Refused as exc:
            if exc.status < 500:
                self.service.metrics.count_error(protocol.INVALID_REQUEST if exc.status == 400 else "forbidden")
            return exc.status, {"error": str(exc)}

    # ------------------------------------------------------------------ keys

    def _check_key(self, fields: dict, bearer_ok: bool) -> None:
        if bearer_ok:
            return
        key = fields.get("api_key")
        if not isinstance(key, str) or not key:
            raise Refused(400, KEY_NEEDED)
        if not hmac.compare_digest(key.encode("utf-8", "replace"), self.token):
            raise Refused(403, "Invalid API key")

    # ------------------------------------------------------------------ GET routes

    def languages(self) -> list[dict]:
        catalog = self.service.catalog
        if catalog is None:
            return []
        targets: dict[str, list[str]] = {lang: [] for lang in sorted(catalog.languages)}
        for source, target in sorted(catalog.served):
            targets[source].append(target)
        return [{"code": code, "name": NAMES.get(code, code), "targets": t} for code, t in targets.items()]

    def frontend_settings(self) -> dict:
        languages = self.service.catalog.languages if self.service.catalog else set()
        target = "en" if "en" in languages else min(languages, default="en")
        return {
            "charLimit": self.settings.limits.max_text_chars,
            "frontendTimeout": FRONTEND_TIMEOUT_MS,
            "apiKeys": bool(self.token),
            "keyRequired": bool(self.token),
            "suggestions": False,
            "filesTranslation": False,
            "supportedFilesFormat": [],
            "language": {
                "source": {"code": "auto", "name": "Auto Detect"},
                "target": {"code": target, "name": NAMES.get(target, target)},
            },
        }

    # ------------------------------------------------------------------ POST /detect

    async def detect(self, fields: dict) -> list[dict]:
        q = fields.get("q")
        if isinstance(q, list) and all(isinstance(t, str) for t in q):
            q = "\n".join(q)  # LibreTranslate averages a list's detections; one pass over all its text
        if not q or not isinstance(q, str):
            raise Refused(400, "Invalid request: missing q parameter")
        self._check_length(q)
        reply = await self._native({"type": "detect", "text": q}, "detect")
        if reply.get("status") == "error":
            if reply["error"]["message"] == "text is empty":  # only spaces: LibreTranslate's default guess
                return [{"confidence": 0.0, "language": "en"}]
            raise self._refusal(reply["error"])
        return [{"confidence": round(x["confidence"] * 100, 1), "language": x["language"]} for x in reply["languages"]]

    # ------------------------------------------------------------------ POST /translate

    async def translate(self, fields: dict, is_json: bool) -> dict:
        q, source, target = fields.get("q"), fields.get("source"), fields.get("target")
        if not q:
            raise Refused(400, "Invalid request: missing q parameter")
        if not source:
            raise Refused(400, "Invalid request: missing source parameter")
        if not target:
            raise Refused(400, "Invalid request: missing target parameter")
        if not isinstance(source, str) or not isinstance(target, str):
            raise Refused(400, "Invalid request: source and target must be strings")
        try:
            alternatives = max(0, int(fields.get("alternatives", 0) or 0))
        except (TypeError, ValueError):
            raise Refused(400, "Invalid request: alternatives parameter is not a number") from None
        batch = isinstance(q, list)
        texts = q if batch else [q]
        if not all(isinstance(t, str) for t in texts):
            raise Refused(400, "Invalid request: q must be a string or a list of strings")
        if not is_json:
            texts = ["\n".join(t.splitlines()) for t in texts]  # as LibreTranslate: LF only, then count
        limit = self.settings.limits.max_targets
        if batch and len(texts) > limit:
            raise Refused(400, f"Invalid request: request ({len(texts)}) exceeds text limit ({limit})")
        for text in texts:
            self._check_length(text)
        source, target = canonical(source), canonical(target)
        self._check_languages(source, target)
        text_format = fields.get("format") or "text"
        if text_format not in ("text", "html"):
            raise Refused(400, f"{text_format} format is not supported")
        results = await asyncio.gather(*(self._translate_one(t, source, target, text_format) for t in texts))
        translated = [text for text, _ in results]
        body: dict = {"translatedText": translated if batch else translated[0]}
        if source == protocol.AUTO:
            detected = [d for _, d in results]
            body["detectedLanguage"] = detected if batch else detected[0]
        if alternatives > 0:
            body["alternatives"] = [[] for _ in texts] if batch else []
        return body

    def _check_length(self, text: str) -> None:
        limit = self.settings.limits.max_text_chars
        if len(text) > limit:
            raise Refused(400, f"Invalid request: request ({len(text)}) exceeds text limit ({limit})")

    def _check_languages(self, source: str, target: str) -> None:
        catalog = self.service.catalog
        if catalog is None:
            raise Refused(503, "workers are still loading their models")
        if source != protocol.AUTO and source not in catalog.languages:
            raise Refused(400, f"{source} is not supported")
        if target not in catalog.languages:
            raise Refused(400, f"{target} is not supported")
        if source != protocol.AUTO and source != target and (source, target) not in catalog.served:
            raise Refused(400, f"{NAMES.get(target, target)} ({target}) is not available as a target language "
                               f"from {NAMES.get(source, source)} ({source})")

    async def _translate_one(self, text: str, source: str, target: str, text_format: str) -> tuple[str, dict]:
        """One text's translation and detected source, through one native request."""
        if not text.strip():  # nothing to translate (LibreTranslate: sent back as it came)
            return text, {"confidence": 0.0, "language": "en"}
        reply = await self._native({"messageId": "libretranslate", "text": text, "sourceLanguage": source,
                                    "targetLanguage": target, "format": text_format}, "translation")
        if reply.get("status") != "completed":
            error = reply["errors"][0]["error"] if reply.get("errors") else reply["error"]
            raise self._refusal(error)
        result = reply["results"][0]
        detected = {"confidence": 100.0, "language": result["sourceLanguage"]}
        if "detectionConfidence" in result:
            confidence = 0.0 if result.get("defaultSourceUsed") else round(result["detectionConfidence"] * 100, 1)
            detected = {"confidence": confidence, "language": result["sourceLanguage"]}
        return result["translatedText"], detected

    async def _native(self, request: dict, only_type: str) -> dict:
        done: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

        def reply(obj: dict) -> None:
            if not done.done():
                done.set_result(obj)

        self.service.respond(protocol.encode(request), reply, force_sync=True, only_type=only_type)
        return await done

    @staticmethod
    def _refusal(error: dict) -> Refused:
        code, message = error["code"], error["message"]
        status = STATUS.get(code, 400 if code in (protocol.INVALID_REQUEST, protocol.UNSUPPORTED_LANGUAGE,
                                                  protocol.TEXT_TOO_LONG, protocol.INVALID_JSON) else 500)
        if status == 429:
            return Refused(429, f"Slowdown: {message}")
        if status == 500:
            return Refused(500, f"Cannot translate text: {message}")
        return Refused(status, message)

