"""A deterministic sentence generator: each call of `SentenceGenerator.sentence` is new text."""

import numpy as np

_ENGLISH = (
    "the a my your our old new small big green red blue quiet happy clever brave "
    "dog cat river garden window teacher doctor village mountain letter story music "
    "morning winter evening table kitchen station market forest bridge ocean city "
    "walks reads finds opens brings paints watches remembers carries builds follows "
    "slowly quickly often never always today tomorrow yesterday together again "
    "under over near behind across before after with without because and but"
).split()

VOCABULARY: dict[str, tuple[str, ...]] = {
    "en": tuple(_ENGLISH),
    "en-us": tuple(_ENGLISH),
    "de": tuple(
        (
            "der die das ein eine mein dein unser alt neu klein groß grün rot blau leise "
            "glücklich klug mutig Hund Katze Fluss Garten Fenster Lehrer Arzt Dorf Berg "
            "Brief Geschichte Musik Morgen Winter Abend Tisch Küche Bahnhof Markt Wald "
            "Brücke Meer Stadt geht liest findet öffnet bringt malt sieht erinnert trägt "
            "baut folgt langsam schnell oft nie immer heute morgen gestern zusammen "
            "wieder unter über neben hinter vor nach mit ohne weil und aber"
        ).split()
    ),
    "es": tuple(
        (
            "el la un una mi tu nuestro viejo nuevo pequeño grande verde rojo azul "
            "tranquilo feliz listo valiente perro gato río jardín ventana maestro médico "
            "pueblo montaña carta historia música mañana invierno tarde mesa cocina "
            "estación mercado bosque puente océano ciudad camina lee encuentra abre trae "
            "pinta mira recuerda lleva construye sigue despacio rápido siempre nunca hoy "
            "ayer juntos otra vez bajo sobre cerca detrás antes después con sin porque y pero"
        ).split()
    ),
    "fr": tuple(
        (
            "le la un une mon ton notre vieux nouveau petit grand vert rouge bleu calme "
            "heureux malin courageux chien chat rivière jardin fenêtre professeur médecin "
            "village montagne lettre histoire musique matin hiver soir table cuisine gare "
            "marché forêt pont océan ville marche lit trouve ouvre apporte peint regarde "
            "rappelle porte construit suit lentement vite souvent jamais toujours "
            "aujourd'hui demain hier ensemble encore sous sur près derrière avant après "
            "avec sans parce que et mais"
        ).split()
    ),
}


class SentenceGenerator:
    """Random word sequences in a language, never repeating a sentence it has produced.

    Example:
        >>> gen = SentenceGenerator(seed=0)
        >>> len(gen.sentence("en", num_words=6).split())
        6
    """

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._seen: set[str] = set()

    def sentence(self, language: str, num_words: int) -> str:
        words = VOCABULARY[language]
        while True:
            text = " ".join(words[i] for i in self._rng.integers(len(words), size=num_words))
            if text not in self._seen:
                self._seen.add(text)
                return text
