"""LibreTranslate's HTTP API on a real appliance's HTTP port: a real client library from PyPI
(libretranslatepy), the exact requests Mastodon's LibreTranslate service sends, and bad input
answered with LibreTranslate's error shape and status. The fake runtime (it reverses text) serves
the shapes; the real runtime with every installed Apertium pair serves the languages and markup."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import socket
import urllib.error
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from libretranslatepy import LibreTranslateAPI

from tests.appliance.conftest import module_appliance
from tests.appliance.edge.test_http_limits import exchange
from workers.apertium import installed_modes

pytestmark = pytest.mark.timeout(180)

TOKEN = "lt-s3cret"
MAX_TEXTS = 4
MAX_CHARS = 200
TAG = re.compile(r"<[^>]*>")
REAL_MODES = ("eng-spa", "spa-eng", "fr-es", "es-fr", "es-pt", "pt-es", "spa-ita", "ita-spa", "spa-cat", "cat-spa",
              "es-gl", "gl-es", "eng-cat", "cat-eng", "ro-es")
MISSING = [m for m in REAL_MODES if m not in installed_modes()]
needs_pairs = pytest.mark.skipif(bool(MISSING), reason=f"Apertium modes {MISSING} not installed: make system-deps")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The fake runtime (en, fr, es, de; it reverses text) behind a token."""
    extra = {"workers": {"count": 1}, "limits": {"max_targets": MAX_TEXTS, "max_text_chars": MAX_CHARS},
             "security": {"http_token": TOKEN}}
    with module_appliance(tmp_path_factory, "libretranslate", extra) as appliance:
        yield appliance


def url(app) -> str:
    return app.endpoints["http"].rstrip("/")


def post(app, path: str, body: bytes, content_type: str = "application/json", headers: dict | None = None):
    """A raw exchange: (status, headers, JSON body)."""
    host = urlsplit(app.endpoints["http"])
    head = (f"POST {path} HTTP/1.1\r\nHost: {host.hostname}\r\nContent-Type: {content_type}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    status, resp_headers, reply, _ = exchange(app, head + body)
    return status, resp_headers, reply


def lt_json(app, path: str, obj: dict, headers: dict | None = None):
    status, _, reply = post(app, path, json.dumps(obj).encode(), headers=headers)
    return status, reply


# ------------------------------------------------------------------ a real client library


def test_libretranslatepy_translates_detects_and_lists_languages(app):
    client = LibreTranslateAPI(url(app), api_key=TOKEN)
    assert client.translate("Hello world", "en", "fr") == "dlrow olleH"
    assert client.translate("Bonjour à tous", "auto", "es") == "suot à ruojnoB"
    detected = client.detect("Merci beaucoup pour ton message, à demain !")
    assert detected[0]["language"] == "fr" and 50 < detected[0]["confidence"] <= 100
    languages = client.languages()
    assert [lang["code"] for lang in languages] == ["de", "en", "es", "fr"]
    assert languages[1] == {"code": "en", "name": "English", "targets": ["de", "es", "fr"]}
    with pytest.raises(urllib.error.HTTPError) as refused:
        LibreTranslateAPI(url(app), api_key="wrong").translate("Hello", "en", "fr")
    assert refused.value.code == 403 and json.loads(refused.value.read()) == {"error": "Invalid API key"}


NPM_DIR = Path(__file__).parents[1] / "npm"  # its package.json pins the npm clients; `make test` installs them


@pytest.mark.skipif(shutil.which("node") is None or not (NPM_DIR / "node_modules" / "libretranslate").is_dir(),
                    reason="node or the npm clients are missing: `make test` installs them (npm install in tests/appliance/npm)")
def test_the_npm_libretranslate_client_translates(tmp_path_factory):
    # It reads /languages, then posts {q, source, target, format, apiKey}: no token here, as the
    # misspelt apiKey is no LibreTranslate key (LibreTranslate reads api_key).
    script = ("require('libretranslate').translate({query: process.argv[2], source: process.argv[3], "
              "target: 'es', apiurl: process.argv[1]}).then(t => console.log(JSON.stringify(t)))")
    with module_appliance(tmp_path_factory, "libretranslate_npm", {"workers": {"count": 1}}) as open_app:
        for source, text, expected in (("en", "Hello world", "dlrow olleH"), ("auto", "Merci beaucoup", "puocuaeb icreM")):
            done = subprocess.run(["node", "-e", script, url(open_app), text, source], cwd=NPM_DIR,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout) == expected


# ------------------------------------------------------------------ LibreTranslate's shapes


def test_translate_takes_a_list_and_auto_adds_the_detected_language(app):
    status, reply = lt_json(app, "/translate", {"q": ["Hello my friend", "Thank you very much"], "source": "auto",
                                                "target": "fr", "api_key": TOKEN, "alternatives": 2})
    assert status == 200, reply
    assert reply["translatedText"] == ["dneirf ym olleH", "hcum yrev uoy knahT"]
    assert [d["language"] for d in reply["detectedLanguage"]] == ["en", "en"]
    assert all(0 <= d["confidence"] <= 100 for d in reply["detectedLanguage"])
    assert reply["alternatives"] == [[], []]
    # The Bearer header passes too; an explicit source adds no detectedLanguage.
    status, reply = lt_json(app, "/translate", {"q": "abc", "source": "en", "target": "de"},
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, reply) == (200, {"translatedText": "cba"})


def test_a_form_request_goes_through_the_native_path_and_its_cache(app):
    before = app.stats()
    form = urlencode({"q": "cache me\r\nplease", "source": "en", "target": "es", "api_key": TOKEN}).encode()
    for _ in range(2):
        status, _, reply = post(app, "/translate", form, "application/x-www-form-urlencoded")
        assert (status, reply) == (200, {"translatedText": "esaelp\nem ehcac"})  # CRLF read as LF, as LibreTranslate
    after = app.stats()
    assert after["cache"]["hits"] >= before["cache"]["hits"] + 1
    assert after["service"]["total_requests"] >= before["service"]["total_requests"] + 2


def test_detect_and_frontend_settings(app):
    status, reply = lt_json(app, "/detect", {"q": "Gracias por tu mensaje, hasta mañana", "api_key": TOKEN})
    assert status == 200 and reply[0]["language"] == "es" and set(reply[0]) == {"language", "confidence"}
    host = urlsplit(app.endpoints["http"])
    with socket.create_connection((host.hostname, host.port), timeout=20) as sock:  # open, without a key
        sock.sendall(b"GET /frontend/settings HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    settings = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert settings["charLimit"] == MAX_CHARS and settings["keyRequired"] is True
    assert settings["language"]["source"] == {"code": "auto", "name": "Auto Detect"}


@pytest.mark.parametrize(
    "body, status, error",
    [
        ({"q": "", "source": "en", "target": "fr"}, 400, "Invalid request: missing q parameter"),
        ({"q": [], "source": "en", "target": "fr"}, 400, "Invalid request: missing q parameter"),
        ({"q": "hi", "target": "fr"}, 400, "Invalid request: missing source parameter"),
        ({"q": "hi", "source": "en"}, 400, "Invalid request: missing target parameter"),
        ({"q": "hi", "source": "xx", "target": "fr"}, 400, "xx is not supported"),
        ({"q": "hi", "source": "en", "target": "zz"}, 400, "zz is not supported"),
        ({"q": "hi", "source": "en", "target": "fr", "format": "pdf"}, 400, "pdf format is not supported"),
        ({"q": "hi", "source": "en", "target": "fr", "alternatives": "x"}, 400,
         "Invalid request: alternatives parameter is not a number"),
        ({"q": ["a"] * (MAX_TEXTS + 1), "source": "en", "target": "fr"}, 400,
         f"Invalid request: request ({MAX_TEXTS + 1}) exceeds text limit ({MAX_TEXTS})"),
        ({"q": "a" * (MAX_CHARS + 1), "source": "en", "target": "fr"}, 400,
         f"Invalid request: request ({MAX_CHARS + 1}) exceeds text limit ({MAX_CHARS})"),
        ({"q": [1, 2], "source": "en", "target": "fr"}, 400, "Invalid request: q must be a string or a list of strings"),
    ],
)
def test_bad_input_gets_libretranslates_error_shape(app, body, status, error):
    got, reply = lt_json(app, "/translate", {**body, "api_key": TOKEN})
    assert (got, reply) == (status, {"error": error})


def test_keys_are_checked_like_libretranslates(app):
    body = {"q": "hi", "source": "en", "target": "fr"}
    assert lt_json(app, "/translate", {**body, "api_key": "nope"}) == (403, {"error": "Invalid API key"})
    assert lt_json(app, "/detect", {"q": "hi", "api_key": "nope"}) == (403, {"error": "Invalid API key"})
    assert lt_json(app, "/translate", body) == (400, {"error": "Please contact the server operator to get an API key"})
    # A native request keeps the native contract: no Bearer, 401 and the connection closed.
    status, headers, reply = post(app, "/translate", json.dumps({"messageId": "m", "text": "x", "targetLanguage": "fr"}).encode())
    assert status == 401 and reply["error"]["code"] == "unauthorized" and headers["connection"] == "close"


def test_a_failed_translation_is_a_500(app):
    status, reply = lt_json(app, "/translate", {"q": "__error__", "source": "en", "target": "fr", "api_key": TOKEN})
    assert status == 500 and reply["error"].startswith("Cannot translate text: ")


# ------------------------------------------------------------------ real languages, Mastodon


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The real runtime serving every installed Apertium pair (no neural model)."""
    if MISSING:
        pytest.skip(needs_pairs.kwargs["reason"])
    from modelbuild.apertium_modes import export_apertium

    models = tmp_path_factory.mktemp("lt-apertium-models")
    export_apertium(models, list(REAL_MODES))
    workers = {"count": 1, "runtime_factory": "workers.runtime:Runtime.load", "models_dir": str(models),
               "startup_timeout_s": 120.0}
    with module_appliance(tmp_path_factory, "lt-real", {"workers": workers, "security": {"http_token": TOKEN}},
                          ready_within=120) as appliance:
        yield appliance


def raw(app, request: bytes):
    status, headers, reply, _ = exchange(app, request)
    return status, reply


def mastodon_request(app, method: str, path: str, body: bytes | None) -> bytes:
    """What Mastodon's Request sends (app/lib/request.rb with http.rb): its common headers in its
    order (User-Agent, Host without the port, Date), Digest for a body, then the service's
    Content-Type; http.rb adds Connection: close and Content-Length."""
    host = urlsplit(app.endpoints["http"]).hostname
    lines = [f"{method} {path} HTTP/1.1", "User-Agent: http.rb/5.2.0 (Mastodon/4.3.2; +https://joinmastodon.org/)",
             f"Host: {host}", f"Date: {formatdate(usegmt=True)}"]
    if body is not None:
        lines.append(f"Digest: SHA-256={base64.b64encode(hashlib.sha256(body).digest()).decode()}")
    lines.append("Content-Type: application/json")
    lines.append("Connection: close")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


MASTODON_STATUS = ('<p>Hola <span class="h-card" translate="no"><a href="https://social.example/@ana" '
                   'class="u-url mention">@<span>ana</span></a></span>, ¿dónde está la estación de tren?</p>'
                   '<p>Gracias por tu mensaje.<br />Hasta mañana.</p>')


@needs_pairs
def test_mastodon_translates_a_status_and_reads_languages(real):
    # TranslationService::LibreTranslate#languages: code => targets without itself, unkeyed.
    status, languages = raw(real, mastodon_request(real, "GET", "/languages", None))
    assert status == 200
    table = {lang["code"]: [t for t in lang["targets"] if t != lang["code"]] for lang in languages}
    assert {"en", "es", "fr", "pt", "it", "ca", "gl", "ro"} <= set(table)
    assert {"pt", "it", "ca", "gl", "fr", "en"} <= set(table["es"]) and "fr" in table["pt"] and "pt" in table["en"]
    # #translate: Oj.dump(q: texts, source:, target:, format: 'html', api_key:), compat mode.
    for source in ("es", "auto"):
        body = json.dumps({"q": [MASTODON_STATUS], "source": source, "target": "en", "format": "html",
                           "api_key": TOKEN}, separators=(",", ":"), ensure_ascii=False).encode()
        status, reply = raw(real, mastodon_request(real, "POST", "/translate", body))
        assert status == 200, reply
        (text,) = reply["translatedText"]  # data['translatedText'].map.with_index
        assert TAG.findall(text) == TAG.findall(MASTODON_STATUS)  # every tag and attribute, in order
        assert "station" in text and "Thank you" in text and "@<span>ana</span>" in text
        if source == "auto":
            assert reply["detectedLanguage"][0]["language"] == "es"  # data.dig('detectedLanguage', index, 'language')
    # A wrong key: Mastodon's QuotaExceededError (403).
    body = json.dumps({"q": ["Hola"], "source": "es", "target": "en", "format": "html", "api_key": "x"}).encode()
    assert raw(real, mastodon_request(real, "POST", "/translate", body))[0] == 403


@needs_pairs
def test_portuguese_italian_catalan_galician_romanian_are_served_through_pivots(real):
    client = LibreTranslateAPI(url(real), api_key=TOKEN)
    assert len(client.languages()) >= 7
    # Rule-based, word for word through es: real words, not fluent ("canale" for "station").
    assert client.translate("Onde está a estação de comboios?", "pt", "fr") == "Où il est la gare de trains?"
    assert client.translate("Where is the train station?", "en", "it") == "Dov'è il canale di treno?"
    assert client.translate("Where is the train station?", "en", "ca") == "On és l'estació de tren?"
    assert client.translate("Where is the train station?", "en", "gl") == "Onde é a canle de tren?"
    assert client.translate("Merg la piață cu sora mea.", "ro", "en") == "They go to market with my sister."
