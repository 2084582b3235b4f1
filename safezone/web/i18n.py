"""One language per page: Korean or English, chosen from a remembered switch or the
browser's ``Accept-Language``.

Page strings are written in English in the templates and Python (``gettext`` / ``N_``);
their Korean lives in gettext catalogues, ``locale/ko/LC_MESSAGES/*.po`` (one per page
module), read with Babel and merged at first use. ``tests/test_i18n.py`` extracts every
string and fails on one without a Korean translation.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel import Locale, negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = ("ko", "en")
DEFAULT_LANGUAGE = "ko"  # a Korean public-sector zone: Korean unless the browser asks otherwise
LANGUAGE_COOKIE = "safezone-lang"
LOCALE_DIR = Path(__file__).parent / "locale"
SOURCE_LANGUAGE = "en"


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is shown."""
    return message


def catalogue_files(language: str) -> list[Path]:
    return sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.po"))


@cache
def translations(language: str) -> NullTranslations:
    """Every page module's catalogue for ``language``, merged (English needs none)."""
    if language == SOURCE_LANGUAGE:
        return NullTranslations()
    merged: Translations | None = None
    for path in catalogue_files(language):
        with path.open("rb") as po:
            catalog = read_po(po, locale=language)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        loaded = Translations(compiled)
        if merged is None:
            merged = loaded
        else:
            merged.merge(loaded)
    return merged or NullTranslations()


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    """The remembered switch wins; else the browser's first language we have."""
    if cookie in LANGUAGES:
        return cookie
    preferred = []
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            preferred.append((quality, tag.replace("_", "-")))
    ordered = [tag for _, tag in sorted(preferred, key=lambda p: -p[0])]
    found = negotiate_locale(ordered, list(LANGUAGES), sep="-")
    return found or DEFAULT_LANGUAGE


def language_name(language: str) -> str:
    """The language's own name for the switch (한국어, English)."""
    return Locale.parse(language).get_display_name(language).capitalize()
