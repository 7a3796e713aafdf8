"""Markup kept whole and honest output through a real appliance (real runtime, one worker, the
built-in models and the registered Apertium pairs): a native request with `format: "html"` keeps
every tag and attribute in place, and off-domain German comes back as typed with
`untranslatedSegments`, confidence 0."""

from __future__ import annotations

import regex
import pytest

from tests.appliance.conftest import module_appliance
from workers.apertium import installed_modes

pytestmark = pytest.mark.timeout(300)

MISSING = [m for m in ("eng-spa", "spa-eng") if m not in installed_modes()]
TAG = regex.compile(r"<[^>]*>")
HTML = '<p>I <b>really</b> like <a href="https://example.org/x" title="the song">this song</a>.</p><pre>do not translate</pre>'


@pytest.fixture(scope="module")
def app(tmp_path_factory, builtin_models_dir):
    if MISSING:
        pytest.skip(f"Apertium modes {MISSING} not installed (make system-deps)")
    workers = {"count": 1, "runtime_factory": "workers.runtime:Runtime.load",
               "models_dir": str(builtin_models_dir), "startup_timeout_s": 300.0}
    with module_appliance(tmp_path_factory, "markup-app", {"workers": workers}, ready_within=300) as appliance:
        yield appliance


def translate(app, text, target, **extra) -> dict:
    reply = app.request({"messageId": "m", "text": text, "targetLanguage": target, "sync": True, **extra}, timeout=120)
    assert reply is not None and reply["status"] == "completed", reply
    return reply["results"][0]


def test_html_comes_back_with_every_tag_in_place_and_is_cached_apart_from_text(app):
    result = translate(app, HTML, "es", sourceLanguage="en", format="html")
    out = result["translatedText"]
    assert TAG.findall(out) == TAG.findall(HTML) and "<pre>do not translate</pre>" in out and "canción" in out
    as_text = translate(app, HTML, "es", sourceLanguage="en")  # the same characters as chat text
    assert as_text["fromCache"] is False and as_text["translatedText"] != out


def test_a_bad_format_is_refused(app):
    reply = app.request({"messageId": "m", "text": "hi", "targetLanguage": "es", "format": "pdf"})
    assert reply["status"] == "error" and reply["error"]["code"] == "invalid_request"


def test_off_domain_german_comes_back_as_typed_and_says_so(app):
    text = "Das Wetter ist heute schön."
    result = translate(app, text, "en", sourceLanguage="de")
    assert result["translatedText"] == text and result["untranslatedSegments"] == [0]
    assert result["confidenceScore"] == 0
