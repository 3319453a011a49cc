"""What counts as an opt-out or an opt-in reply (``consent/keywords.py``): the whole message, after
case, accents, punctuation, emoji and whitespace are folded away; never a word inside a sentence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from latam_messaging.consent.keywords import DEFAULT_KEYWORDS, Intent, KeywordConflictError, Keywords, normalise
from latam_messaging.settings import Settings

KEYWORDS = Keywords(DEFAULT_KEYWORDS)
EVERY = [(word, intent, lang) for lang, by in DEFAULT_KEYWORDS.items() for intent, words in by.items() for word in words]


@pytest.mark.parametrize(
    "text",
    ["BAJA", "baja.", "  Baja!! ", "¡Bája!", "baja 🙏", "BAJA\n", "b a j a".replace(" ", ""), "No enviar", "NO  ENVIAR.",
     "no-enviar", "Stop", "SALIR", "cancelar", "PARAR", "sair", "Descadastrar", "não enviar", "STOP ALL", "Unsubscribe"],
)
def test_an_opt_out_reply_matches_whatever_its_case_accents_punctuation_and_spacing(text):
    found = KEYWORDS.match(text)
    assert found is not None and found.intent == Intent.OPT_OUT, text


@pytest.mark.parametrize("text", ["ALTA", "alta.", "Start", "VOLVER!", "voltar", "unstop"])
def test_an_opt_in_reply_matches(text):
    found = KEYWORDS.match(text)
    assert found is not None and found.intent == Intent.OPT_IN, text


@pytest.mark.parametrize(
    "text",
    ["no", "No gracias", "quiero la baja de mi plan", "stop sending me ads", "bajá el precio y compro", "si", "ok",
     "baja baja", "🙏", "", "   ", "Hola, quiero info", "alta calidad", "no, enviar a mi otro número"],
)
def test_a_sentence_that_merely_contains_a_keyword_is_not_one(text):
    assert KEYWORDS.match(text) is None, text


def test_a_button_payload_counts_when_it_is_a_keyword():
    assert KEYWORDS.match("Quiero más info", "STOP").intent == Intent.OPT_OUT
    assert KEYWORDS.match(None, "baja") .intent == Intent.OPT_OUT
    assert KEYWORDS.match("No me interesa", "STOP_PROMOS") is None  # a payload is matched whole too


def test_the_match_names_its_keyword_and_language():
    found = KEYWORDS.match("Descadastrar!")
    assert (found.keyword, found.language) == ("descadastrar", "pt")


def test_lists_are_configured_per_language_from_the_environment():
    settings = Settings.from_env(
        {"MESSAGING_OPTOUT_KEYWORDS_ES": "baja, chau", "MESSAGING_OPTIN_KEYWORDS_IT": "inizia", "MESSAGING_OPTOUT_KEYWORDS_IT": "basta"}
    )
    keywords = Keywords.from_settings(settings.consent_keywords)
    assert keywords.match("chau!").intent == Intent.OPT_OUT
    assert keywords.match("salir") is None  # the Spanish opt-out list was replaced
    assert keywords.match("Alta").intent == Intent.OPT_IN  # its opt-in list was not
    assert keywords.match("inizia").language == "it"
    assert keywords.match("STOP").intent == Intent.OPT_OUT  # English still lists it


def test_a_keyword_cannot_be_an_opt_out_and_an_opt_in():
    with pytest.raises(KeywordConflictError, match="cannot mean both"):
        Keywords({"es": {Intent.OPT_OUT: ("baja",)}, "xx": {Intent.OPT_IN: ("BAJA!",)}})


def test_the_default_lists_hold_every_keyword_the_issue_names():
    for word in ("BAJA", "STOP", "SALIR", "CANCELAR", "NO ENVIAR", "PARAR", "SAIR", "DESCADASTRAR"):
        assert KEYWORDS.match(word).intent == Intent.OPT_OUT
    for word in ("ALTA", "START", "VOLVER"):
        assert KEYWORDS.match(word).intent == Intent.OPT_IN


noise = st.text(alphabet=" \t\n.,;:!¡?¿-_()*\"'🙏👍", max_size=4)


@given(st.sampled_from(EVERY), noise, noise, st.booleans())
def test_any_keyword_with_noise_around_it_and_any_casing_still_matches(entry, before, after, upper):
    word, intent, _ = entry
    text = before + (word.upper() if upper else word.title()) + after
    found = KEYWORDS.match(text)
    assert found is not None and found.intent == intent


@given(st.sampled_from(EVERY), st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8))
def test_a_keyword_followed_by_another_word_is_not_a_keyword(entry, word):
    text = f"{entry[0]} {word}"
    found = KEYWORDS.match(text)
    assert found is None or normalise(text) == found.keyword  # only when the whole is itself a keyword


@given(st.text(max_size=80))
def test_normalising_is_idempotent_and_leaves_only_lowercase_ascii_words(text):
    once = normalise(text)
    assert normalise(once) == once
    assert all(c.isascii() and (c.isdigit() or c.islower() or c == " ") for c in once)
    assert "  " not in once and once == once.strip()
