"""Opt-out and opt-in keywords: what counts as a customer asking to stop (or to start again).

A message counts when its **whole text** (or the payload of the button it is) equals a keyword after
:func:`normalise`: case folded, accents removed, punctuation and emoji turned into spaces, whitespace
collapsed. ``"Baja."``, ``"  BAJA!! "``, ``"¡baja 🙏"`` and ``"No enviar"`` are opt-outs; ``"no"``,
``"no gracias"``, ``"quiero la baja de mi plan"`` and ``"stop sending me ads"`` are not (a sentence is
read by a person, never guessed at). Lists are per language; ``MESSAGING_OPTOUT_KEYWORDS_<LANG>`` and
``MESSAGING_OPTIN_KEYWORDS_<LANG>`` (comma-separated) replace a language's list or add a language.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

_NOT_WORD = re.compile(r"[^0-9a-z]+")
#: The longest text worth normalising: every keyword is far shorter.
MAX_KEYWORD_CHARS = 64


class Intent(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


#: Defaults per language (ISO 639-1). Spanish (AR, CL), Portuguese (BR), English (Twilio's standard list,
#: without "yes", which customers send to confirm appointments).
DEFAULT_KEYWORDS: dict[str, dict[Intent, tuple[str, ...]]] = {
    "es": {
        Intent.OPT_OUT: (
            "baja", "darme de baja", "dar de baja", "darse de baja", "stop", "salir", "cancelar", "no enviar",
            "no enviar mas", "no envien mas", "no me envien mas", "no quiero recibir mas", "dejar de recibir",
            "cancelar suscripcion", "parar", "basta", "desuscribir", "desuscribirme", "desuscribirse",
            "no molestar", "no llame",
        ),
        Intent.OPT_IN: ("alta", "darme de alta", "start", "volver", "suscribir", "suscribirme"),
    },
    "pt": {
        Intent.OPT_OUT: (
            "sair", "parar", "pare", "descadastrar", "cancelar", "nao enviar", "nao quero receber",
            "nao quero receber mais",
        ),
        Intent.OPT_IN: ("voltar", "cadastrar", "recadastrar"),
    },
    "en": {
        Intent.OPT_OUT: ("stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "optout", "opt out"),
        Intent.OPT_IN: ("start", "unstop", "subscribe"),
    },
}


def normalise(text: str) -> str:
    """Case, accents, punctuation and whitespace folded away: ``"¡No  Enviár!"`` → ``"no enviar"``.
    Invisible format characters (zero-width spaces and joiners, soft hyphens, direction marks) are
    removed first, so they cannot split a word; full-width letters fold to their ASCII forms (NFKD)."""
    folded = unicodedata.normalize("NFKD", text[: MAX_KEYWORD_CHARS * 4]).casefold()
    folded = "".join(c for c in folded if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")
    return _NOT_WORD.sub(" ", folded).strip()


@dataclass(frozen=True)
class KeywordMatch:
    intent: Intent
    keyword: str  # normalised
    language: str


class KeywordConflictError(ValueError):
    """One keyword is an opt-out in one list and an opt-in in another."""


class Keywords:
    """The lists in force: normalised keyword → (intent, first language that lists it)."""

    def __init__(self, lists: Mapping[str, Mapping[Intent, tuple[str, ...] | list[str]]]):
        self.lists = {lang: {Intent(k): tuple(v) for k, v in by.items()} for lang, by in lists.items()}
        self._index: dict[str, KeywordMatch] = {}
        for language, by_intent in self.lists.items():
            for intent, words in by_intent.items():
                for word in words:
                    key = normalise(word)
                    if not key:
                        continue
                    known = self._index.get(key)
                    if known is not None and known.intent != intent:
                        raise KeywordConflictError(
                            f"{word!r} is an {intent} keyword in {language!r} and an {known.intent} keyword in "
                            f"{known.language!r}: a reply cannot mean both"
                        )
                    self._index.setdefault(key, KeywordMatch(intent, key, language))

    @classmethod
    def from_settings(cls, overrides: Mapping[str, Mapping[str, str]]) -> Keywords:
        """The defaults with ``{lang: {"opt_out"|"opt_in": "a, b, c"}}`` replacing per language and intent."""
        lists = {lang: dict(by) for lang, by in DEFAULT_KEYWORDS.items()}
        for language, by_intent in overrides.items():
            for intent, text in by_intent.items():
                lists.setdefault(language, {})[Intent(intent)] = tuple(w.strip() for w in text.split(",") if w.strip())
        return cls(lists)

    def match(self, *texts: str | None) -> KeywordMatch | None:
        """The first of ``texts`` (a message's text, a button's payload) that is wholly a keyword."""
        for text in texts:
            if not text or len(text) > MAX_KEYWORD_CHARS * 4:
                continue
            found = self._index.get(normalise(text))
            if found is not None:
                return found
        return None
