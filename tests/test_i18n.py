"""One language per page: every page string has its Korean, the language follows the
browser or the remembered switch, and an English page carries no Korean of ours."""

from __future__ import annotations

import re

import pytest

from safezone.web.i18n import choose_language, translations
from safezone.web.i18n_extract import extract, missing, translated
from safezone.web.kit import environment, human_size
from safezone.web.labels import LABELS

HANGUL = re.compile(r"[\uac00-\ud7a3]")
OTHER_LANGUAGE = re.compile(r'<a [^>]*lang="ko"[^>]*>[^<]*</a>')
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def test_every_page_string_has_its_korean():
    absent = missing("ko")
    assert not absent, "untranslated page strings (python -m safezone.web.i18n_extract):\n" \
        + "\n".join(f"{where[0]}: {msgid}" for msgid, where in absent.items())


def test_translations_keep_their_placeholders_and_are_korean():
    done = translated("ko")
    for msgid in extract():
        assert PLACEHOLDER.findall(msgid) == PLACEHOLDER.findall(done[msgid]) or \
            sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(done[msgid])), msgid
        assert HANGUL.search(done[msgid]) or not re.search("[a-z]{3}", msgid), \
            f"{msgid!r} is 'translated' without Korean: {done[msgid]!r}"


def test_every_label_is_a_page_string():
    strings = extract()
    for kind in LABELS.values():
        for text in kind.values():
            assert text in strings


@pytest.mark.parametrize(("cookie", "header", "chosen"), [
    (None, None, "ko"),
    (None, "en-US,en;q=0.9", "en"),
    (None, "ko-KR,ko;q=0.9,en;q=0.8", "ko"),
    (None, "fr-FR,fr;q=0.9,en;q=0.5", "en"),
    (None, "fr-FR", "ko"),
    (None, "en;q=0,ko;q=0.1", "ko"),
    ("en", "ko-KR", "en"),
    ("ko", "en", "ko"),
    ("de", "en", "en"),          # a cookie we do not have is ignored
    (None, "en;q=abc", "ko"),    # a broken weight is no preference
])
def test_language_choice(cookie, header, chosen):
    assert choose_language(cookie, header) == chosen


def test_korean_catalogue_is_used_and_english_is_the_source():
    assert translations("ko").gettext("Log out") == "로그아웃"
    assert translations("en").gettext("Log out") == "Log out"


def test_english_templates_render_no_korean_of_ours():
    """Every template, rendered in English with English data, holds no Hangul."""
    env = environment("en")
    for name in env.list_templates():
        if name == "base.html":
            continue
        try:
            html = env.get_template(name).render(prefix="/p/", me={"name": "alice"},
                                                 csrf="x", here="/p/pages/")
        except Exception as exc:  # a template that needs data it was not given
            pytest.fail(f"{name} does not render with empty data: {exc}")
        ours = OTHER_LANGUAGE.sub("", html)  # the switch names Korean in Korean
        assert not HANGUL.search(ours), f"{name}: {HANGUL.findall(ours)[:10]}"


def test_sizes_are_human():
    assert human_size(999, "en") == "999 B"
    assert human_size(1_234_567, "en") == "1.2 MB"
    assert human_size(12_345, "ko") == "12.3 kB"
    assert human_size(None, "en") == "—"
