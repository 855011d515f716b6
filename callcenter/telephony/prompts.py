"""Voice prompts: the custom recordings the IVR plays, Russian first, English available.

Each name is a sound file under the channel language's sound folder, e.g.
``/var/lib/asterisk/sounds/ru/callcenter/welcome.wav``. Digits, dates and numbers come from
Asterisk's core sounds (``SAY DIGITS``, ``SAY NUMBER``, ``SAY DATETIME``).
"""

PREFIX = "callcenter/"

PROMPTS: dict[str, dict[str, str]] = {
    "welcome": {
        "ru": "Здравствуйте! Вы позвонили в службу технической поддержки.",
        "en": "Hello, you have reached technical support.",
    },
    "other-language": {
        # the offer of the other language, said in that language
        "ru": "For English, press star.",
        "en": "Чтобы продолжить на русском языке, нажмите звёздочку.",
    },
    "closed": {
        "ru": "Служба поддержки по телефону работает в рабочие дни с девяти до восемнадцати "
        "часов по московскому времени. Сейчас линия закрыта.",
        "en": "Phone support is open on working days from 9 a.m. to 6 p.m. Moscow time. "
        "The line is closed now.",
    },
    "opens-at": {
        "ru": "Линия откроется",
        "en": "The line opens on",
    },
    "hours-moscow": {
        "ru": "часов по московскому времени.",
        "en": "hours, Moscow time.",
    },
    "portal": {
        "ru": "Письменные обращения принимаются круглосуточно на портале технической поддержки.",
        "en": "Written requests are accepted at any time on the support portal.",
    },
    "enter-number": {
        "ru": "Введите регистрационный номер сертификата технической поддержки и нажмите решётку.",
        "en": "Please enter the registration number of your support certificate, "
        "followed by the hash key.",
    },
    "offer-cert-ending": {
        "ru": "Чтобы обратиться по сертификату, номер которого оканчивается на",
        "en": "To use the certificate whose number ends in",
    },
    "offer-press-1": {
        "ru": "нажмите один. Чтобы ввести другой номер, нажмите два.",
        "en": "press 1. To enter another number, press 2.",
    },
    "invalid-number": {
        "ru": "Номер введён неверно.",
        "en": "That number is not valid.",
    },
    "no-input": {
        "ru": "Мы не услышали номер.",
        "en": "We did not hear a number.",
    },
    "not-found": {
        "ru": "Сертификат с таким номером не найден.",
        "en": "No certificate with that number was found.",
    },
    "expired": {
        "ru": "Срок действия этого сертификата истёк.",
        "en": "This certificate has expired.",
    },
    "not-yet-valid": {
        "ru": "Срок действия этого сертификата ещё не начался.",
        "en": "This certificate is not valid yet.",
    },
    "try-again": {
        "ru": "Попробуйте ещё раз.",
        "en": "Please try again.",
    },
    "refused": {
        "ru": "К сожалению, техническая поддержка оказывается только владельцам действующего "
        "сертификата. Обратитесь к вашему поставщику или на портал поддержки. До свидания.",
        "en": "Sorry, support is given only to holders of a valid certificate. Please contact "
        "your supplier or the support portal. Goodbye.",
    },
    "locked": {
        "ru": "Слишком много неверных номеров. Обращения с этого телефона временно не "
        "принимаются. До свидания.",
        "en": "Too many wrong numbers. Calls from this phone are not accepted for a while. "
        "Goodbye.",
    },
    "connecting": {
        "ru": "Соединяем со специалистом. Пожалуйста, оставайтесь на линии.",
        "en": "Connecting you to a specialist. Please stay on the line.",
    },
    "vm-offer": {
        "ru": "Чтобы оставить номер сертификата и голосовое сообщение, нажмите один.",
        "en": "To leave your certificate number and a voice message, press 1.",
    },
    "vm-record": {
        "ru": "После сигнала назовите себя и опишите ваш вопрос. Чтобы закончить, нажмите решётку.",
        "en": "After the tone, say your name and describe your question. "
        "Press the hash key when you are done.",
    },
    "vm-saved": {
        "ru": "Ваше сообщение принято как письменное обращение. Номер обращения:",
        "en": "Your message has been taken as a written request. Its number is",
    },
    "vm-empty": {
        "ru": "Мы не услышали сообщения.",
        "en": "We did not hear a message.",
    },
    "vm-refused": {
        "ru": "Сообщение можно оставить только по действующему сертификату. До свидания.",
        "en": "A message can be left only with a valid certificate. Goodbye.",
    },
    "vm-kept": {
        "ru": "Ваше сообщение сохранено и будет зарегистрировано как письменное обращение. "
        "До свидания.",
        "en": "Your message has been kept and will be registered as a written request. Goodbye.",
    },
    "vm-unavailable": {
        "ru": "Сейчас мы не можем принять сообщение. Пожалуйста, воспользуйтесь порталом "
        "поддержки. До свидания.",
        "en": "We cannot take a message now. Please use the support portal. Goodbye.",
    },
    "goodbye": {
        "ru": "До свидания.",
        "en": "Goodbye.",
    },
}

#: prompts said in another language than the folder they are played from: the offer of the
#: other language is said in that language (the Russian menu offers English in English)
SPOKEN_IN: dict[str, dict[str, str]] = {"other-language": {"ru": "en", "en": "ru"}}


def spoken_in(name: str, lang: str) -> str:
    """The language prompt ``name`` of the ``lang`` folder is said in (its voice's)."""
    return SPOKEN_IN.get(name, {}).get(lang, lang)


LANGUAGES = ("ru", "en")


def sound(name: str) -> str:
    """The Asterisk file name of a prompt (no extension, no language folder)."""
    if name not in PROMPTS:
        raise KeyError(f"unknown prompt {name!r}")
    return PREFIX + name
