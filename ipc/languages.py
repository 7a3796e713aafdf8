"""Language codes as clients write them, folded onto the codes the appliance speaks.

Clients send ISO 639-1 (`fr`), ISO 639-2/3 (`fra`, `fre`), or BCP-47 tags with a region or
script (`pt-BR`, `en_US`, `zh-Hant`, `sr-Latn-RS`), in any case. The appliance speaks ISO 639-1
codes, lower case (a model's manifest pairs, the events' `sourceLanguage`); each model family's
own spelling (NLLB `fra_Latn`, M2M100 `__fr__`, opus-mt `>>fra<<`) is the exporter's business,
recorded in the manifest framing. Chinese keeps its script, since the scripts are distinct
targets: `zh-Hant`, `zh-TW` → `zh-hant`; `zh`, `zh-CN`, `zh-Hans` → `zh`.

`canonical` never guesses: a code it cannot read comes back as written (lower-cased), and the
catalog then refuses it with the list of what is served.
"""

from __future__ import annotations

import functools
import re

AUTO = "auto"
MAX_CODE_CHARS = 35  # the longest well-formed BCP-47 tags a client would send are far shorter

# ISO 639-2/T, 639-2/B and 639-3 codes of languages translation models commonly serve.
_THREE_LETTER = {
    "afr": "af", "amh": "am", "ara": "ar", "arb": "ar", "aze": "az", "bel": "be", "ben": "bn", "bos": "bs",
    "bul": "bg", "cat": "ca", "ces": "cs", "cze": "cs", "cym": "cy", "wel": "cy", "dan": "da", "deu": "de",
    "ger": "de", "ell": "el", "gre": "el", "eng": "en", "epo": "eo", "est": "et", "eus": "eu", "baq": "eu",
    "fas": "fa", "per": "fa", "pes": "fa", "fin": "fi", "fra": "fr", "fre": "fr", "gle": "ga", "glg": "gl",
    "guj": "gu", "hau": "ha", "heb": "he", "hin": "hi", "hrv": "hr", "hun": "hu", "hye": "hy", "arm": "hy",
    "ind": "id", "isl": "is", "ice": "is", "ita": "it", "jpn": "ja", "kat": "ka", "geo": "ka", "kaz": "kk",
    "khm": "km", "kor": "ko", "lao": "lo", "lit": "lt", "lav": "lv", "lvs": "lv", "mkd": "mk", "mac": "mk",
    "mal": "ml", "mar": "mr", "msa": "ms", "may": "ms", "zsm": "ms", "mya": "my", "bur": "my", "nep": "ne",
    "npi": "ne", "nld": "nl", "dut": "nl", "nor": "no", "nob": "nb", "nno": "nn", "pan": "pa", "pol": "pl",
    "por": "pt", "ron": "ro", "rum": "ro", "rus": "ru", "sin": "si", "slk": "sk", "slo": "sk", "slv": "sl",
    "som": "so", "spa": "es", "sqi": "sq", "alb": "sq", "srp": "sr", "swa": "sw", "swh": "sw", "swe": "sv", "tam": "ta",
    "tel": "te", "tha": "th", "tgl": "tl", "tur": "tr", "ukr": "uk", "urd": "ur", "uzb": "uz", "vie": "vi",
    "yor": "yo", "zho": "zh", "chi": "zh", "cmn": "zh", "zul": "zu",
}
_TRADITIONAL_CHINESE = {"hant", "tw", "hk", "mo"}
_TAG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")


def canonical(code: str) -> str:
    """`pt-BR` → `pt`, `FRA` → `fr`, `en_US` → `en`, `zh-Hant` → `zh-hant`, `auto` → `auto`."""
    # Every request names its languages, most of them the same few: remembered, when short
    # enough that the memory holds 1,024 of them in a few hundred KB whatever clients send.
    return _remembered(code) if len(code) <= MAX_CODE_CHARS else _canonical(code)


def _canonical(code: str) -> str:
    tag = code.strip().lower().replace("_", "-")
    if tag == AUTO or not _TAG.fullmatch(tag):
        return tag
    language, *subtags = tag.split("-")
    language = _THREE_LETTER.get(language, language)
    if language == "zh":
        return "zh-hant" if _TRADITIONAL_CHINESE.intersection(subtags) else "zh"
    return language


_remembered = functools.lru_cache(maxsize=1024)(_canonical)


def three_letter_codes(code: str) -> list[str]:
    """The ISO 639-2/3 spellings of a canonical code (`fr` → `fra`, `fre`), as models name targets."""
    return [three for three, two in _THREE_LETTER.items() if two == code]
