"""How the in-app widget looks and speaks, per survey (pure).

A survey's ``widget`` settings carry its brand colour, theme, placement and texts; :func:`presentation`
resolves them for one page: the language asked for (``de-AT`` falls back to ``de``, then to English), the
built-in texts of that language under the survey's own, the follow-up question of each answer category, the
text colour that stays readable on the brand colour, and each score's category (so the widget never
re-implements the classification rules).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from pulse_shared.events import CATEGORIES, SurveyType, category_of, classify

#: A language tag as pages write it in ``lang`` (``en``, ``pt-BR``, ``zh-Hant-TW``).
LocaleTag = Annotated[str, Field(max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")]
Color = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$", description="Brand colour, #RRGGBB.")]
Text = Annotated[str, Field(min_length=1, max_length=500)]

RTL_LANGUAGES = frozenset({"ar", "arc", "ckb", "dv", "fa", "he", "ps", "sd", "ug", "ur", "yi"})
#: The question a survey has when none was written (catalog.Survey's default): then the widget asks the
#: built-in question of the survey's type, in the page's language.
UNSET_QUESTION = "How likely are you to recommend us to a friend?"


class WidgetTexts(BaseModel):
    """A survey's own texts in one language; anything left out comes from the built-in texts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question: Text | None = None
    low_label: Text | None = Field(None, description="Under the lowest score (NPS: 'Not at all likely').")
    high_label: Text | None = Field(None, description="Under the highest score.")
    follow_up: dict[str, Text] = Field(
        default_factory=dict,
        description="The second question, per answer category (NPS: promoter, passive, detractor; CSAT: satisfied, "
                    "neutral, dissatisfied; CES: easy, neutral, difficult).")
    comment_hint: Text | None = Field(None, description="Shown in the empty comment box.")
    send: Text | None = None
    skip: Text | None = None
    later: Text | None = None
    close: Text | None = None
    thanks: Text | None = None
    promoter_link_text: Text | None = None
    dialog_label: Text | None = None


class WidgetSettings(BaseModel):
    """How a survey's widget looks and behaves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    color: Color = "#1a5fd0"
    theme: Literal["auto", "light", "dark"] = Field(
        "auto", description="auto follows the visitor's prefers-color-scheme.")
    placement: Literal["bottom-right", "bottom-left", "center"] = "bottom-right"
    faces: bool = Field(False, description="CSAT: show faces with the numbers.")
    escape: Literal["dismiss", "later"] = Field(
        "dismiss", description="What Escape and the close button record: a dismissal, or 'ask me later'.")
    promoter_link: HttpUrl | None = Field(
        None, description="Offered to promoters (NPS 9-10) on the thanks step, e.g. a review site.")
    texts: dict[LocaleTag, WidgetTexts] = Field(
        default_factory=dict, description="The survey's texts per language (en, de, pt-BR, ar...).")

    @model_validator(mode="after")
    def _one_entry_per_language(self) -> WidgetSettings:
        seen: dict[str, str] = {}
        for tag in self.texts:
            if tag.lower() in seen:
                raise ValueError(f"texts has {seen[tag.lower()]!r} and {tag!r}: the same language twice")
            seen[tag.lower()] = tag
        return self


_BUILT_IN: dict[str, dict[str, str]] = {
    "en": {
        "question.nps": "How likely are you to recommend us to a friend or colleague?",
        "question.csat": "How satisfied are you with us?",
        "question.ces": "How easy was it to get what you needed?",
        "low.nps": "Not at all likely", "high.nps": "Extremely likely",
        "low.csat": "Very unsatisfied", "high.csat": "Very satisfied",
        "low.ces": "Very difficult", "high.ces": "Very easy",
        "up.good": "Thank you! What do you like most?",
        "up.mid": "Thanks! What would make it even better?",
        "up.bad": "We are sorry to hear that. What could we do better?",
        "comment_hint": "Your answer (optional)", "send": "Send", "skip": "Skip", "later": "Ask me later",
        "close": "Close survey", "thanks": "Thank you for your feedback!",
        "promoter_link_text": "Leave us a review", "dialog_label": "Feedback survey",
    },
    "de": {
        "question.nps": "Wie wahrscheinlich ist es, dass Sie uns einem Freund oder Kollegen empfehlen?",
        "question.csat": "Wie zufrieden sind Sie mit uns?",
        "question.ces": "Wie einfach war es, das zu erledigen, was Sie wollten?",
        "low.nps": "Sehr unwahrscheinlich", "high.nps": "Sehr wahrscheinlich",
        "low.csat": "Sehr unzufrieden", "high.csat": "Sehr zufrieden",
        "low.ces": "Sehr schwierig", "high.ces": "Sehr einfach",
        "up.good": "Danke! Was gefällt Ihnen am besten?",
        "up.mid": "Danke! Was würde es noch besser machen?",
        "up.bad": "Das tut uns leid. Was können wir besser machen?",
        "comment_hint": "Ihre Antwort (optional)", "send": "Senden", "skip": "Überspringen",
        "later": "Später fragen", "close": "Umfrage schließen", "thanks": "Vielen Dank für Ihr Feedback!",
        "promoter_link_text": "Bewerten Sie uns", "dialog_label": "Feedback-Umfrage",
    },
    "fr": {
        "question.nps": "Quelle est la probabilité que vous nous recommandiez à un ami ou un collègue ?",
        "question.csat": "Êtes-vous satisfait de nous ?",
        "question.ces": "Dans quelle mesure a-t-il été facile d'obtenir ce dont vous aviez besoin ?",
        "low.nps": "Pas du tout probable", "high.nps": "Très probable",
        "low.csat": "Très insatisfait", "high.csat": "Très satisfait",
        "low.ces": "Très difficile", "high.ces": "Très facile",
        "up.good": "Merci ! Qu'appréciez-vous le plus ?",
        "up.mid": "Merci ! Qu'est-ce qui rendrait l'expérience encore meilleure ?",
        "up.bad": "Nous en sommes désolés. Que pourrions-nous améliorer ?",
        "comment_hint": "Votre réponse (facultatif)", "send": "Envoyer", "skip": "Passer",
        "later": "Me demander plus tard", "close": "Fermer le sondage", "thanks": "Merci pour votre avis !",
        "promoter_link_text": "Laissez-nous un avis", "dialog_label": "Sondage de satisfaction",
    },
    "es": {
        "question.nps": "¿Qué probabilidad hay de que nos recomiende a un amigo o colega?",
        "question.csat": "¿Qué tan satisfecho está con nosotros?",
        "question.ces": "¿Qué tan fácil fue conseguir lo que necesitaba?",
        "low.nps": "Nada probable", "high.nps": "Muy probable",
        "low.csat": "Muy insatisfecho", "high.csat": "Muy satisfecho",
        "low.ces": "Muy difícil", "high.ces": "Muy fácil",
        "up.good": "¡Gracias! ¿Qué es lo que más le gusta?",
        "up.mid": "¡Gracias! ¿Qué lo haría aún mejor?",
        "up.bad": "Lamentamos oír eso. ¿Qué podríamos mejorar?",
        "comment_hint": "Su respuesta (opcional)", "send": "Enviar", "skip": "Omitir",
        "later": "Preguntarme más tarde", "close": "Cerrar encuesta", "thanks": "¡Gracias por sus comentarios!",
        "promoter_link_text": "Déjenos una reseña", "dialog_label": "Encuesta de opinión",
    },
    "pt": {
        "question.nps": "Qual a probabilidade de você nos recomendar a um amigo ou colega?",
        "question.csat": "Quão satisfeito você está conosco?",
        "question.ces": "Quão fácil foi conseguir o que você precisava?",
        "low.nps": "Nada provável", "high.nps": "Extremamente provável",
        "low.csat": "Muito insatisfeito", "high.csat": "Muito satisfeito",
        "low.ces": "Muito difícil", "high.ces": "Muito fácil",
        "up.good": "Obrigado! Do que você mais gosta?",
        "up.mid": "Obrigado! O que tornaria a experiência ainda melhor?",
        "up.bad": "Lamentamos. O que poderíamos melhorar?",
        "comment_hint": "Sua resposta (opcional)", "send": "Enviar", "skip": "Pular",
        "later": "Perguntar mais tarde", "close": "Fechar pesquisa", "thanks": "Obrigado pela sua opinião!",
        "promoter_link_text": "Deixe-nos uma avaliação", "dialog_label": "Pesquisa de opinião",
    },
}
BUILT_IN_LANGUAGES = tuple(_BUILT_IN)
#: Which built-in follow-up each category gets.
_FOLLOW_UP_TONE = {"promoter": "good", "satisfied": "good", "easy": "good", "passive": "mid", "neutral": "mid",
                   "detractor": "bad", "dissatisfied": "bad", "difficult": "bad"}
_PLAIN = ("comment_hint", "send", "skip", "later", "close", "thanks", "promoter_link_text", "dialog_label")


class Presentation(BaseModel):
    """Everything the widget needs to draw one survey on one page."""

    locale: str = Field(description="The language the texts are in (a tag of the survey's texts or a built-in one).")
    dir: Literal["ltr", "rtl"]
    color: str
    on_color: str = Field(description="Text colour on the brand colour: black or white, whichever contrasts more.")
    theme: Literal["auto", "light", "dark"]
    placement: Literal["bottom-right", "bottom-left", "center"]
    faces: bool
    escape: Literal["dismiss", "later"]
    promoter_link: str | None
    categories: list[str] = Field(description="Each score's category, from the scale's lowest score up.")
    texts: dict[str, str]
    follow_up: dict[str, str] = Field(description="The follow-up question per category.")


def choose_locale(asked: str | None, configured: list[str]) -> str:
    """The best language for a page asking ``asked``: the survey's texts or built-in texts for the exact tag,
    then for its language; English otherwise. Returns the tag as the survey wrote it."""
    by_lower = {tag.lower(): tag for tag in (*BUILT_IN_LANGUAGES, *configured)}
    tag = (asked or "").strip().replace("_", "-").lower()
    for candidate in (tag, tag.split("-")[0]):
        if candidate in by_lower:
            return by_lower[candidate]
    return "en"


def on_color(color: str) -> str:
    """Black or white text on ``color``, whichever has the larger WCAG contrast (always at least 4.58:1)."""
    luminance = relative_luminance(color)
    return "#000000" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "#ffffff"


def relative_luminance(color: str) -> float:
    """WCAG 2 relative luminance of ``#RRGGBB``."""
    channels = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours."""
    hi, lo = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def presentation(settings: WidgetSettings, *, survey_type: SurveyType, question: str, scale: tuple[int, int],
                 locale: str | None) -> Presentation:
    """Resolve a survey's widget settings for a page asking ``locale``."""
    chosen = choose_locale(locale, list(settings.texts))
    language = chosen.split("-")[0].lower()
    built_in = _BUILT_IN.get(language, _BUILT_IN["en"])
    own = _own_texts(settings, chosen)
    lo, hi = scale
    categories = [category_of(survey_type, classify(survey_type, score, lo, hi)) for score in range(lo, hi + 1)]
    asked = own.question or (built_in[f"question.{survey_type}"] if question == UNSET_QUESTION else question)
    texts = {
        "question": asked,
        "low_label": own.low_label or built_in[f"low.{survey_type}"],
        "high_label": own.high_label or built_in[f"high.{survey_type}"],
        **{name: getattr(own, name) or built_in[name] for name in _PLAIN},
    }
    follow_up: dict[str, str] = {category: own.follow_up.get(category) or built_in[f"up.{_FOLLOW_UP_TONE[category]}"]
                 for category in CATEGORIES[survey_type].values()}
    return Presentation(
        locale=chosen, dir="rtl" if language in RTL_LANGUAGES else "ltr", color=settings.color.lower(),
        on_color=on_color(settings.color), theme=settings.theme, placement=settings.placement,
        faces=settings.faces and survey_type == "csat" and hi - lo == 4, escape=settings.escape,
        promoter_link=str(settings.promoter_link) if settings.promoter_link else None, categories=categories,
        texts=texts, follow_up=follow_up)


def _own_texts(settings: WidgetSettings, chosen: str) -> WidgetTexts:
    """The survey's texts for the chosen tag, its language's filling the gaps (``pt-BR`` over ``pt``)."""
    by_lower = {tag.lower(): texts for tag, texts in settings.texts.items()}
    exact = by_lower.get(chosen.lower())
    base = by_lower.get(chosen.split("-", maxsplit=1)[0].lower()) if "-" in chosen else None
    if exact is None:
        return base or WidgetTexts()
    if base is None:
        return exact
    merged = {**base.model_dump(exclude_none=True), **exact.model_dump(exclude_none=True)}
    merged["follow_up"] = {**base.follow_up, **exact.follow_up}
    return WidgetTexts.model_validate(merged)


def unknown_follow_up_categories(settings: WidgetSettings, survey_type: SurveyType) -> list[str]:
    """Follow-up texts named by a category the survey type does not have (a typo would never be shown)."""
    known = set(CATEGORIES[survey_type].values())
    return sorted({f"{tag}: {name}" for tag, texts in settings.texts.items() for name in texts.follow_up
                   if name not in known})

