"""Every word the preference pages say, in English and German, in one place.

A company changes its wording here (or adds a language: one more mapping
with the same keys); ``texts_for`` picks the language from Accept-Language.
Values are plain text: the templates escape them.
"""

from __future__ import annotations

from collections.abc import Mapping

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your contact preferences",
        "intro": "Choose how and when {company} may contact you. Your choices apply to "
                 "every part of {company} at once: head office, every dealer, sales, "
                 "service and billing.",
        "for_address": "Preferences for {address}",
        "channels": "How may we contact you?",
        "channel.email": "Email",
        "channel.sms": "Text messages (SMS)",
        "channel.call": "Phone calls",
        "channel.mail": "Letters by post",
        "preferred": "Preferred channel",
        "preferred.none": "No preference",
        "hours": "When may we contact you?",
        "hours.from": "From",
        "hours.to": "Until",
        "hours.hint": "Your local time. Leave the times empty for any time we may call or "
                      "text, on the days you ticked.",
        "days": "On these days",
        "day.mon": "Mon", "day.tue": "Tue", "day.wed": "Wed", "day.thu": "Thu",
        "day.fri": "Fri", "day.sat": "Sat", "day.sun": "Sun",
        "topics": "What may we contact you about?",
        "topic.marketing": "Offers, newsletters and events",
        "topic.sales": "Sales: trade-in and upgrade offers, new products",
        "topic.service": "Service reminders and surveys",
        "always": "Always on",
        "topic.billing": "Bills and payment reminders",
        "topic.billing.why": "We must send these under your contract.",
        "topic.required": "Safety recalls and messages about your orders",
        "topic.required.why": "The law requires us to tell you about safety recalls, and you "
                              "need to hear about what you ordered.",
        "pause": "Pause offers",
        "pause.label": "No offers until",
        "pause.hint": "Leave empty for no pause.",
        "stop": "Stop everything except what the law requires",
        "stop.hint": "No offers, sales or service messages by any channel. Bills, safety "
                     "recalls and order messages still reach you.",
        "save": "Save my preferences",
        "saved": "Saved. Every part of {company} follows your choices from now on.",
        "error": "Please check: {detail}",
        "error.hours": "give both times, like 09:00 and 18:00, or neither",
        "error.pause": "the pause must end on a date after today, within five years",
        "error.channel": "choose one of the listed channels",
        "error.form": "this form is out of date; please reload the page and try again",
        "unsub.title": "Unsubscribe",
        "unsub.ask": "Stop {category} {channel} from {sender}?",
        "unsub.button": "Unsubscribe",
        "unsub.done": "You are unsubscribed from {category} {channel} from {sender}. It "
                      "takes effect at once.",
        "unsub.more": "Choose what else you hear from {company}",
        "category.marketing": "offers and newsletters",
        "category.sales": "sales offers",
        "category.service": "service messages",
        "by.email": "by email",
        "by.sms": "by text message",
        "by.call": "by phone",
        "by.mail": "by post",
        "by.push": "by push notification",
        "notfound.title": "Link not valid",
        "notfound.body": "This link is not valid. It may have expired. Use the link in a "
                         "recent message from us.",
        "limited.title": "Too many requests",
        "limited.body": "Please wait a minute and try again.",
    },
    "de": {
        "title": "Ihre Kontakteinstellungen",
        "intro": "Legen Sie fest, wie und wann {company} Sie kontaktieren darf. Ihre Wahl "
                 "gilt für alle Bereiche von {company} zugleich: Zentrale, jedes Autohaus, "
                 "Vertrieb, Service und Buchhaltung.",
        "for_address": "Einstellungen für {address}",
        "channels": "Wie dürfen wir Sie kontaktieren?",
        "channel.email": "E-Mail",
        "channel.sms": "SMS",
        "channel.call": "Anrufe",
        "channel.mail": "Briefe per Post",
        "preferred": "Bevorzugter Kanal",
        "preferred.none": "Keine Vorliebe",
        "hours": "Wann dürfen wir Sie kontaktieren?",
        "hours.from": "Von",
        "hours.to": "Bis",
        "hours.hint": "Ihre Ortszeit. Ohne Uhrzeiten gilt jede erlaubte Zeit, an den "
                      "angekreuzten Tagen.",
        "days": "An diesen Tagen",
        "day.mon": "Mo", "day.tue": "Di", "day.wed": "Mi", "day.thu": "Do",
        "day.fri": "Fr", "day.sat": "Sa", "day.sun": "So",
        "topics": "Worüber dürfen wir Sie kontaktieren?",
        "topic.marketing": "Angebote, Newsletter und Veranstaltungen",
        "topic.sales": "Vertrieb: Inzahlungnahme- und Upgrade-Angebote, neue Produkte",
        "topic.service": "Service-Erinnerungen und Umfragen",
        "always": "Immer aktiv",
        "topic.billing": "Rechnungen und Zahlungserinnerungen",
        "topic.billing.why": "Diese müssen wir Ihnen aufgrund Ihres Vertrags senden.",
        "topic.required": "Sicherheitsrückrufe und Nachrichten zu Ihren Bestellungen",
        "topic.required.why": "Über Sicherheitsrückrufe müssen wir Sie gesetzlich informieren, "
                              "und über Ihre Bestellungen brauchen Sie Bescheid.",
        "pause": "Angebote pausieren",
        "pause.label": "Keine Angebote bis",
        "pause.hint": "Leer lassen für keine Pause.",
        "stop": "Alles stoppen, außer was gesetzlich vorgeschrieben ist",
        "stop.hint": "Keine Angebote, Vertriebs- oder Service-Nachrichten über irgendeinen "
                     "Kanal. Rechnungen, Rückrufe und Bestellnachrichten erreichen Sie weiter.",
        "save": "Einstellungen speichern",
        "saved": "Gespeichert. Alle Bereiche von {company} halten sich ab sofort an Ihre Wahl.",
        "error": "Bitte prüfen: {detail}",
        "error.hours": "geben Sie beide Zeiten an, etwa 09:00 und 18:00, oder keine",
        "error.pause": "die Pause muss an einem Tag nach heute enden, innerhalb von fünf Jahren",
        "error.channel": "wählen Sie einen der genannten Kanäle",
        "error.form": "dieses Formular ist veraltet; bitte laden Sie die Seite neu",
        "unsub.title": "Abmelden",
        "unsub.ask": "Keine {category} {channel} mehr von {sender}?",
        "unsub.button": "Abmelden",
        "unsub.done": "Sie sind abgemeldet: keine {category} {channel} mehr von {sender}. Das "
                      "gilt ab sofort.",
        "unsub.more": "Wählen Sie, was Sie sonst von {company} erhalten",
        "category.marketing": "Angebote und Newsletter",
        "category.sales": "Verkaufsangebote",
        "category.service": "Service-Nachrichten",
        "by.email": "per E-Mail",
        "by.sms": "per SMS",
        "by.call": "per Telefon",
        "by.mail": "per Post",
        "by.push": "per Push-Nachricht",
        "notfound.title": "Link ungültig",
        "notfound.body": "Dieser Link ist nicht gültig. Vielleicht ist er abgelaufen. Nutzen "
                         "Sie den Link aus einer aktuellen Nachricht von uns.",
        "limited.title": "Zu viele Anfragen",
        "limited.body": "Bitte warten Sie eine Minute und versuchen Sie es erneut.",
    },
}
LANGUAGES = tuple(TEXTS)
DEFAULT_LANGUAGE = "en"


def texts_for(accept_languages) -> tuple[str, Mapping[str, str]]:
    """Return the language the browser prefers among ours, and its texts."""
    chosen = accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE) \
        if accept_languages is not None else DEFAULT_LANGUAGE
    return chosen, TEXTS[chosen]
