"""The page strings, extracted from the templates and Python with Babel, and the ones a
language's catalogues lack. ``python -m safezone.web.i18n_extract [ko]`` lists those;
``--add DOMAIN`` appends them, untranslated, to ``locale/ko/LC_MESSAGES/DOMAIN.po``."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

from .i18n import LOCALE_DIR, catalogue_files

WEB = Path(__file__).parent
TEMPLATES = "templates/**.html"


def extract() -> dict[str, list[str]]:
    """Every translatable string → where it is used (``file:line``)."""
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found: dict[str, list[str]] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
            str(WEB), keywords=keywords,
            method_map=[(TEMPLATES, "jinja2.ext:babel_extract"), ("**.py", "python")],
            options_map={TEMPLATES: {"extensions": "jinja2.ext.i18n",
                                     "newstyle_gettext": "true"}}):
        ids = message if isinstance(message, tuple) else (message,)
        for msgid in ids:
            if msgid:
                found.setdefault(msgid, []).append(f"{filename}:{line}")
    return found


def translated(language: str) -> dict[str, str]:
    """msgid → translation over every catalogue of ``language`` (fuzzy ones do not count)."""
    done: dict[str, str] = {}
    for path in catalogue_files(language):
        with path.open("rb") as po:
            for message in read_po(po, locale=language):
                if message.id and message.string and not message.fuzzy:
                    done[str(message.id)] = str(message.string)
    return done


def missing(language: str = "ko") -> dict[str, list[str]]:
    have = translated(language)
    return {msgid: where for msgid, where in extract().items() if msgid not in have}


def add_untranslated(language: str, domain: str) -> int:
    """Append the missing strings to one catalogue, with empty translations."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.po"
    catalog = Catalog(locale=language, domain=domain, project="Safezone",
                      fuzzy=False)
    if path.exists():
        with path.open("rb") as po:
            catalog = read_po(po, locale=language, domain=domain)
    absent = missing(language)
    for msgid, where in absent.items():
        if msgid not in catalog:
            catalog.add(msgid, "", locations=[(w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1]))
                                              for w in where])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as po:
        write_po(po, catalog, width=100, no_location=True)
    return len(absent)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--add"]:
        print(f"{add_untranslated('ko', args[1])} strings added to {args[1]}.po")
    else:
        for msgid, where in missing(args[0] if args else "ko").items():
            print(f"{where[0]}: {msgid}")
