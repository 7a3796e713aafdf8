"""Synthetic parallel corpus (en/fr/es/de) for training the built-in tiny translation models.

The models are trained offline, so their training data is generated here: a small
templated grammar over a hand-checked lexicon of a few hundred common words renders
each sentence in all four languages at once. Because every language is produced
from the same choice of words, every row is a real translation, and the grammar
rules below (French and Spanish gender agreement, Spanish personal "a", German case
and weak adjective endings) keep each side grammatical.

Text conventions, shared by every sentence: lowercase (German nouns too, to keep
vocabularies small), single spaces, no punctuation, real accents kept.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate

LANGUAGES: tuple[str, ...] = ("en", "fr", "es", "de")

# --------------------------------------------------------------------------- lexicon
#
# Nouns: (en, fr with article, es with article, de with nominative article, kind, tags).
# The article carries the gender, so one table row is enough to agree everything.
# kind: a animal, p person, f food, d drink, t thing, l place (location).
# tags: extra object classes that some verbs need ("open", "read", ...); "in" marks
# places where "in the X" is natural in all four languages.
# French nouns start with a consonant (no h) so "le"/"la" never elide to "l'";
# Spanish feminine nouns with a stressed initial "a" (el agua) are left out for the
# same reason.
_NOUN_TABLE: tuple[tuple[str, str, str, str, str, str], ...] = (
    # animals
    ("cat", "le chat", "el gato", "die katze", "a", ""),
    ("dog", "le chien", "el perro", "der hund", "a", ""),
    ("horse", "le cheval", "el caballo", "das pferd", "a", ""),
    ("cow", "la vache", "la vaca", "die kuh", "a", ""),
    ("mouse", "la souris", "el ratón", "die maus", "a", ""),
    ("rabbit", "le lapin", "el conejo", "das kaninchen", "a", ""),
    ("pig", "le cochon", "el cerdo", "das schwein", "a", ""),
    ("sheep", "le mouton", "la oveja", "das schaf", "a", ""),
    ("goat", "la chèvre", "la cabra", "die ziege", "a", ""),
    ("duck", "le canard", "el pato", "die ente", "a", ""),
    ("hen", "la poule", "la gallina", "die henne", "a", ""),
    ("fox", "le renard", "el zorro", "der fuchs", "a", ""),
    ("wolf", "le loup", "el lobo", "der wolf", "a", ""),
    ("lion", "le lion", "el león", "der löwe", "a", ""),
    ("tiger", "le tigre", "el tigre", "der tiger", "a", ""),
    ("monkey", "le singe", "el mono", "der affe", "a", ""),
    ("snake", "le serpent", "la serpiente", "die schlange", "a", ""),
    ("frog", "la grenouille", "la rana", "der frosch", "a", ""),
    ("giraffe", "la girafe", "la jirafa", "die giraffe", "a", ""),
    ("penguin", "le pingouin", "el pingüino", "der pinguin", "a", ""),
    ("deer", "le cerf", "el ciervo", "der hirsch", "a", ""),
    ("whale", "la baleine", "la ballena", "der wal", "a", ""),
    ("dolphin", "le dauphin", "el delfín", "der delfin", "a", ""),
    ("kitten", "le chaton", "el gatito", "das kätzchen", "a", ""),
    ("puppy", "le chiot", "el cachorro", "der welpe", "a", ""),
    # people
    ("woman", "la femme", "la mujer", "die frau", "p", ""),
    ("boy", "le garçon", "el niño", "der junge", "p", ""),
    ("girl", "la fille", "la niña", "das mädchen", "p", ""),
    ("baby", "le bébé", "el bebé", "das baby", "p", ""),
    ("teacher", "le professeur", "el profesor", "der lehrer", "p", ""),
    ("doctor", "le médecin", "el médico", "der arzt", "p", ""),
    ("farmer", "le fermier", "el granjero", "der bauer", "p", ""),
    ("king", "le roi", "el rey", "der könig", "p", ""),
    ("queen", "la reine", "la reina", "die königin", "p", ""),
    ("prince", "le prince", "el príncipe", "der prinz", "p", ""),
    ("princess", "la princesse", "la princesa", "die prinzessin", "p", ""),
    ("mother", "la mère", "la madre", "die mutter", "p", ""),
    ("father", "le père", "el padre", "der vater", "p", ""),
    ("sister", "la sœur", "la hermana", "die schwester", "p", ""),
    ("brother", "le frère", "el hermano", "der bruder", "p", ""),
    ("aunt", "la tante", "la tía", "die tante", "p", ""),
    ("neighbor", "le voisin", "el vecino", "der nachbar", "p", ""),
    ("cook", "le cuisinier", "el cocinero", "der koch", "p", ""),
    ("baker", "le boulanger", "el panadero", "der bäcker", "p", ""),
    ("policeman", "le policier", "el policía", "der polizist", "p", ""),
    ("soldier", "le soldat", "el soldado", "der soldat", "p", ""),
    ("driver", "le chauffeur", "el conductor", "der fahrer", "p", ""),
    ("painter", "le peintre", "el pintor", "der maler", "p", ""),
    ("waiter", "le serveur", "el camarero", "der kellner", "p", ""),
    ("dancer", "la danseuse", "la bailarina", "die tänzerin", "p", ""),
    # food
    ("bread", "le pain", "el pan", "das brot", "f", ""),
    ("cheese", "le fromage", "el queso", "der käse", "f", ""),
    ("apple", "la pomme", "la manzana", "der apfel", "f", "throw"),
    ("banana", "la banane", "el plátano", "die banane", "f", "throw"),
    ("cake", "le gâteau", "el pastel", "der kuchen", "f", ""),
    ("fish", "le poisson", "el pescado", "der fisch", "f", ""),
    ("meat", "la viande", "la carne", "das fleisch", "f", ""),
    ("soup", "la soupe", "la sopa", "die suppe", "f", ""),
    ("rice", "le riz", "el arroz", "der reis", "f", ""),
    ("pizza", "la pizza", "la pizza", "die pizza", "f", ""),
    ("salad", "la salade", "la ensalada", "der salat", "f", ""),
    ("carrot", "la carotte", "la zanahoria", "die karotte", "f", "throw"),
    ("tomato", "la tomate", "el tomate", "die tomate", "f", "throw"),
    ("strawberry", "la fraise", "la fresa", "die erdbeere", "f", ""),
    ("lemon", "le citron", "el limón", "die zitrone", "f", "throw"),
    ("chocolate", "le chocolat", "el chocolate", "die schokolade", "f", ""),
    ("cookie", "le biscuit", "la galleta", "der keks", "f", ""),
    ("sausage", "la saucisse", "la salchicha", "die wurst", "f", ""),
    # drinks
    ("milk", "le lait", "la leche", "die milch", "d", ""),
    ("coffee", "le café", "el café", "der kaffee", "d", ""),
    ("tea", "le thé", "el té", "der tee", "d", ""),
    ("juice", "le jus", "el zumo", "der saft", "d", ""),
    ("wine", "le vin", "el vino", "der wein", "d", ""),
    ("beer", "la bière", "la cerveza", "das bier", "d", ""),
    ("lemonade", "la limonade", "la limonada", "die limonade", "d", ""),
    # things
    ("book", "le livre", "el libro", "das buch", "t", "read write"),
    ("newspaper", "le journal", "el periódico", "die zeitung", "t", "read"),
    ("letter", "la lettre", "la carta", "der brief", "t", "read write"),
    ("map", "la carte", "el mapa", "die landkarte", "t", "read"),
    ("table", "la table", "la mesa", "der tisch", "t", "fix"),
    ("chair", "la chaise", "la silla", "der stuhl", "t", "fix break"),
    ("door", "la porte", "la puerta", "die tür", "t", "open fix"),
    ("window", "la fenêtre", "la ventana", "das fenster", "t", "open break"),
    ("box", "la boîte", "la caja", "die kiste", "t", "open"),
    ("bag", "le sac", "la bolsa", "die tasche", "t", "open"),
    ("ball", "le ballon", "la pelota", "der ball", "t", "throw"),
    ("car", "la voiture", "el coche", "das auto", "t", "vehicle fix"),
    ("bicycle", "le vélo", "la bicicleta", "das fahrrad", "t", "fix"),
    ("bus", "le bus", "el autobús", "der bus", "t", "vehicle"),
    ("train", "le train", "el tren", "der zug", "t", "vehicle"),
    ("truck", "le camion", "el camión", "der lastwagen", "t", "vehicle fix"),
    ("boat", "le bateau", "el barco", "das boot", "t", "build fix"),
    ("key", "la clé", "la llave", "der schlüssel", "t", "throw"),
    ("phone", "le téléphone", "el teléfono", "das telefon", "t", "fix sound break"),
    ("lamp", "la lampe", "la lámpara", "die lampe", "t", "fix break"),
    ("clock", "la pendule", "el reloj", "die uhr", "t", "fix sound"),
    ("cup", "la tasse", "la taza", "die tasse", "t", "break"),
    ("glass", "le verre", "el vaso", "das glas", "t", "break"),
    ("bottle", "la bouteille", "la botella", "die flasche", "t", "open break"),
    ("knife", "le couteau", "el cuchillo", "das messer", "t", ""),
    ("hat", "le chapeau", "el sombrero", "der hut", "t", "throw"),
    ("shoe", "la chaussure", "el zapato", "der schuh", "t", "throw"),
    ("umbrella", "le parapluie", "el paraguas", "der regenschirm", "t", "open"),
    ("picture", "le tableau", "el cuadro", "das bild", "t", ""),
    ("flower", "la fleur", "la flor", "die blume", "t", ""),
    ("stone", "la pierre", "la piedra", "der stein", "t", "throw"),
    ("guitar", "la guitare", "la guitarra", "die gitarre", "t", "sound"),
    ("piano", "le piano", "el piano", "das klavier", "t", "sound"),
    ("bed", "le lit", "la cama", "das bett", "t", "fix"),
    ("toy", "le jouet", "el juguete", "das spielzeug", "t", "throw"),
    ("doll", "la poupée", "la muñeca", "die puppe", "t", "throw"),
    ("radio", "la radio", "la radio", "das radio", "t", "sound fix"),
    ("television", "la télévision", "la televisión", "der fernseher", "t", "sound fix"),
    # places
    ("house", "la maison", "la casa", "das haus", "l", "in build"),
    ("garden", "le jardin", "el jardín", "der garten", "l", "in"),
    ("kitchen", "la cuisine", "la cocina", "die küche", "l", "in"),
    ("forest", "la forêt", "el bosque", "der wald", "l", "in"),
    ("park", "le parc", "el parque", "der park", "l", "in"),
    ("city", "la ville", "la ciudad", "die stadt", "l", "in"),
    ("village", "le village", "el pueblo", "das dorf", "l", "in"),
    ("bedroom", "la chambre", "el dormitorio", "das schlafzimmer", "l", "in"),
    ("shop", "le magasin", "la tienda", "der laden", "l", "in"),
    ("museum", "le musée", "el museo", "das museum", "l", "in"),
    ("library", "la bibliothèque", "la biblioteca", "die bibliothek", "l", "in"),
    ("station", "la gare", "la estación", "der bahnhof", "l", "in"),
    ("castle", "le château", "el castillo", "das schloss", "l", "in build"),
    ("lake", "le lac", "el lago", "der see", "l", "in"),
    ("river", "la rivière", "el río", "der fluss", "l", "in"),
    ("sea", "la mer", "el mar", "das meer", "l", "in"),
    ("bakery", "la boulangerie", "la panadería", "die bäckerei", "l", "in"),
    ("market", "le marché", "el mercado", "der markt", "l", ""),  # fr says "au marché", not "dans"
    ("farm", "la ferme", "la granja", "der bauernhof", "l", ""),  # en says "on the farm"
    ("bridge", "le pont", "el puente", "die brücke", "l", "build"),
)

# German n-declension: these masculine nouns take -(e)n in the accusative
# ("die katze sieht den jungen"), which the article alone does not show.
_DE_WEAK_ACC: dict[str, str] = {
    "junge": "jungen",
    "löwe": "löwen",
    "affe": "affen",
    "welpe": "welpen",
    "prinz": "prinzen",
    "nachbar": "nachbarn",
    "polizist": "polizisten",
    "soldat": "soldaten",
    "bauer": "bauern",
}

# Adjectives: (en, fr masc, fr fem, es masc, es fem, de predicative, domain, flags, group).
# domain: noun kinds the adjective may describe (letters as for nouns), so that
# "the hot soup" is generated but "the hot giraffe" is not.
# flags: "pre" = French adjective placed before the noun (le petit chat);
# "estar" = Spanish predicate uses "está" (a state) rather than "es" (a property).
# group: adjectives of one group contradict or repeat each other, so a sentence never
# pairs two of them ("the hot soup is cold").
_ADJ_TABLE: tuple[tuple[str, str, str, str, str, str, str, str, str], ...] = (
    ("big", "grand", "grande", "grande", "grande", "groß", "apftl", "pre", "size"),
    ("small", "petit", "petite", "pequeño", "pequeña", "klein", "apftl", "pre", "size"),
    ("old", "vieux", "vieille", "viejo", "vieja", "alt", "aptl", "pre", "age"),
    ("young", "jeune", "jeune", "joven", "joven", "jung", "ap", "pre", "age"),
    ("new", "nouveau", "nouvelle", "nuevo", "nueva", "neu", "tl", "pre", "age"),
    ("beautiful", "beau", "belle", "hermoso", "hermosa", "schön", "aptl", "pre", "looks"),
    ("good", "bon", "bonne", "bueno", "buena", "gut", "afd", "pre", "quality"),
    ("black", "noir", "noire", "negro", "negra", "schwarz", "at", "", "color"),
    ("white", "blanc", "blanche", "blanco", "blanca", "weiß", "at", "", "color"),
    ("red", "rouge", "rouge", "rojo", "roja", "rot", "tf", "", "color"),
    ("green", "vert", "verte", "verde", "verde", "grün", "tf", "", "color"),
    ("blue", "bleu", "bleue", "azul", "azul", "blau", "t", "", "color"),
    ("yellow", "jaune", "jaune", "amarillo", "amarilla", "gelb", "tf", "", "color"),
    ("gray", "gris", "grise", "gris", "gris", "grau", "at", "", "color"),
    ("happy", "heureux", "heureuse", "contento", "contenta", "glücklich", "ap", "estar", "mood"),
    ("sad", "triste", "triste", "triste", "triste", "traurig", "ap", "estar", "mood"),
    ("angry", "fâché", "fâchée", "enfadado", "enfadada", "wütend", "ap", "estar", "mood"),
    ("tired", "fatigué", "fatiguée", "cansado", "cansada", "müde", "ap", "estar", "energy"),
    ("hungry", "affamé", "affamée", "hambriento", "hambrienta", "hungrig", "ap", "estar", "hunger"),
    ("strong", "fort", "forte", "fuerte", "fuerte", "stark", "ap", "", "strength"),
    ("fast", "rapide", "rapide", "rápido", "rápida", "schnell", "ap", "", "speed"),
    ("smart", "intelligent", "intelligente", "inteligente", "inteligente", "klug", "ap", "", "mind"),
    ("funny", "drôle", "drôle", "gracioso", "graciosa", "lustig", "ap", "", "humor"),
    ("kind", "gentil", "gentille", "amable", "amable", "nett", "p", "", "character"),
    ("brave", "courageux", "courageuse", "valiente", "valiente", "mutig", "ap", "", "character"),
    ("dangerous", "dangereux", "dangereuse", "peligroso", "peligrosa", "gefährlich", "a", "", "danger"),
    ("rich", "riche", "riche", "rico", "rica", "reich", "p", "", "wealth"),
    ("hot", "chaud", "chaude", "caliente", "caliente", "heiß", "fd", "estar", "temperature"),
    ("cold", "froid", "froide", "frío", "fría", "kalt", "fd", "estar", "temperature"),
    ("sweet", "sucré", "sucrée", "dulce", "dulce", "süß", "fd", "", "taste"),
    ("fresh", "frais", "fraîche", "fresco", "fresca", "frisch", "fd", "estar", "freshness"),
    ("delicious", "délicieux", "délicieuse", "delicioso", "deliciosa", "lecker", "fd", "estar", "quality"),
    ("expensive", "cher", "chère", "caro", "cara", "teuer", "tfd", "", "price"),
    ("clean", "propre", "propre", "limpio", "limpia", "sauber", "tl", "estar", "cleanliness"),
    ("dirty", "sale", "sale", "sucio", "sucia", "schmutzig", "aptl", "estar", "cleanliness"),
    ("empty", "vide", "vide", "vacío", "vacía", "leer", "l", "estar", "fullness"),
    ("broken", "cassé", "cassée", "roto", "rota", "kaputt", "t", "estar", "condition"),
    ("heavy", "lourd", "lourde", "pesado", "pesada", "schwer", "t", "", "weight"),
)

# Attributive stems that differ from the predicative form (teuer -> der teure ...).
_DE_ADJ_STEM: dict[str, str] = {"teuer": "teur"}

# Verbs: (en, fr 3sg, es 3sg, de 3sg, subject kinds, object kinds/tags).
# Only German verbs that govern the accusative are used, so every object is
# accusative; Spanish "gustar"-type and French "avoir besoin de"-type verbs are
# avoided for the same reason (they would need a different sentence shape).
_VERB_TABLE: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("sees", "voit", "ve", "sieht", "ap", "a p f d t l"),
    ("hears", "entend", "oye", "hört", "ap", "a p sound"),
    ("finds", "trouve", "encuentra", "findet", "ap", "a p f t"),
    ("looks for", "cherche", "busca", "sucht", "ap", "a p f t l"),
    ("loves", "aime", "ama", "liebt", "ap", "a p"),
    ("has", "a", "tiene", "hat", "ap", "f t"),
    ("knows", "connaît", "conoce", "kennt", "ap", "a p l"),
    ("calls", "appelle", "llama", "ruft", "p", "a p"),
    ("carries", "porte", "lleva", "trägt", "ap", "a f d t"),
    ("buys", "achète", "compra", "kauft", "p", "f d t"),
    ("sells", "vend", "vende", "verkauft", "p", "f d t"),
    ("eats", "mange", "come", "isst", "ap", "f"),
    ("drinks", "boit", "bebe", "trinkt", "ap", "d"),
    ("paints", "peint", "pinta", "malt", "p", "a p t l"),
    ("draws", "dessine", "dibuja", "zeichnet", "p", "a p t l"),
    ("feeds", "nourrit", "alimenta", "füttert", "p", "a"),
    ("washes", "lave", "lava", "wäscht", "p", "a f t"),
    ("brings", "apporte", "trae", "bringt", "ap", "f d t"),
    ("takes", "prend", "toma", "nimmt", "ap", "f d t"),
    ("holds", "tient", "sostiene", "hält", "p", "a f d t"),
    ("watches", "regarde", "mira", "beobachtet", "ap", "a p"),
    ("chases", "poursuit", "persigue", "jagt", "ap", "a p"),
    ("bites", "mord", "muerde", "beißt", "a", "a p"),
    ("kisses", "embrasse", "besa", "küsst", "p", "a p"),
    ("opens", "ouvre", "abre", "öffnet", "p", "open"),
    ("closes", "ferme", "cierra", "schließt", "p", "open"),
    ("builds", "construit", "construye", "baut", "p", "build"),
    ("repairs", "répare", "repara", "repariert", "p", "fix"),
    ("reads", "lit", "lee", "liest", "p", "read"),
    ("writes", "écrit", "escribe", "schreibt", "p", "write"),
    ("cooks", "cuisine", "cocina", "kocht", "p", "f"),
    ("touches", "touche", "toca", "berührt", "ap", "a p f t"),
    ("throws", "lance", "lanza", "wirft", "p", "throw"),
    ("catches", "attrape", "atrapa", "fängt", "ap", "a throw"),
    ("drives", "conduit", "conduce", "fährt", "p", "vehicle"),
    ("cleans", "nettoie", "limpia", "putzt", "p", "t"),
    ("breaks", "casse", "rompe", "zerbricht", "ap", "break"),
    ("photographs", "photographie", "fotografía", "fotografiert", "p", "a p t l"),
    ("wants", "veut", "quiere", "möchte", "ap", "f d t"),
    ("visits", "visite", "visita", "besucht", "p", "l"),
)

# German distinguishes eating by people (essen) from eating by animals (fressen).
_DE_ANIMAL_VERB: dict[str, str] = {"isst": "frisst"}

# Fixed chat phrases, mixed in so the models also handle greetings and small talk.
# French phrases needing an apostrophe or hyphen (s'il vous plaît, excusez-moi) are
# left out to respect the no-punctuation rule.
_CHAT_PHRASES: tuple[tuple[str, str, str, str], ...] = (
    ("hello", "bonjour", "hola", "hallo"),
    ("good morning", "bonjour", "buenos días", "guten morgen"),
    ("good night", "bonne nuit", "buenas noches", "gute nacht"),
    ("goodbye", "au revoir", "adiós", "auf wiedersehen"),
    ("thank you", "merci", "gracias", "danke"),
    ("thank you very much", "merci beaucoup", "muchas gracias", "vielen dank"),
    ("you are welcome", "de rien", "de nada", "gern geschehen"),
    ("see you tomorrow", "à demain", "hasta mañana", "bis morgen"),
    ("see you soon", "à bientôt", "hasta pronto", "bis bald"),
    ("how are you", "comment ça va", "cómo estás", "wie geht es dir"),
    ("i am fine", "je vais bien", "estoy bien", "mir geht es gut"),
    ("yes", "oui", "sí", "ja"),
    ("no", "non", "no", "nein"),
    ("sorry", "pardon", "perdón", "entschuldigung"),
    ("good luck", "bonne chance", "buena suerte", "viel glück"),
    ("welcome", "bienvenue", "bienvenido", "willkommen"),
    ("i do not understand", "je ne comprends pas", "no entiendo", "ich verstehe nicht"),
    ("where is the station", "où est la gare", "dónde está la estación", "wo ist der bahnhof"),
)


# --------------------------------------------------------------------------- lexicon objects


@dataclass(frozen=True, slots=True)
class _Noun:
    en: str
    fr: str
    fr_fem: bool
    es: str
    es_fem: bool
    de: str
    de_gender: str  # "m", "f" or "n"
    de_acc: str
    kind: str
    classes: frozenset[str]  # kind plus tags: what a verb's object spec is matched against

    @property
    def animate(self) -> bool:
        return self.kind in "ap"


@dataclass(frozen=True, slots=True)
class _Adj:
    en: str
    fr_m: str
    fr_f: str
    es_m: str
    es_f: str
    de: str
    de_stem: str
    domain: str
    fr_pre: bool
    es_estar: bool
    group: str


@dataclass(frozen=True, slots=True)
class _Verb:
    en: str
    fr: str
    es: str
    de: str
    de_animal: str
    subjects: str
    objects: frozenset[str]


def _split_article(text: str) -> tuple[str, str]:
    article, _, noun = text.partition(" ")
    return article, noun


def _make_noun(row: tuple[str, str, str, str, str, str]) -> _Noun:
    en, fr, es, de, kind, tags = row
    fr_art, fr_noun = _split_article(fr)
    es_art, es_noun = _split_article(es)
    de_art, de_noun = _split_article(de)
    gender = {"der": "m", "die": "f", "das": "n"}[de_art]
    return _Noun(
        en=en,
        fr=fr_noun,
        fr_fem=fr_art == "la",
        es=es_noun,
        es_fem=es_art == "la",
        de=de_noun,
        de_gender=gender,
        de_acc=_DE_WEAK_ACC.get(de_noun, de_noun),
        kind=kind,
        classes=frozenset([kind, *tags.split()]),
    )


def _de_attributive_stem(predicative: str) -> str:
    if predicative in _DE_ADJ_STEM:
        return _DE_ADJ_STEM[predicative]
    # müde -> der müde / den müden: the ending's "e" merges with the stem's.
    return predicative[:-1] if predicative.endswith("e") else predicative


def _make_adj(row: tuple[str, ...]) -> _Adj:
    en, fr_m, fr_f, es_m, es_f, de, domain, flags, group = row
    return _Adj(
        en=en,
        fr_m=fr_m,
        fr_f=fr_f,
        es_m=es_m,
        es_f=es_f,
        de=de,
        de_stem=_de_attributive_stem(de),
        domain=domain,
        fr_pre="pre" in flags.split(),
        es_estar="estar" in flags.split(),
        group=group,
    )


def _make_verb(row: tuple[str, str, str, str, str, str]) -> _Verb:
    en, fr, es, de, subjects, objects = row
    return _Verb(en, fr, es, de, _DE_ANIMAL_VERB.get(de, de), subjects, frozenset(objects.split()))


_NOUNS: tuple[_Noun, ...] = tuple(_make_noun(row) for row in _NOUN_TABLE)
_ADJS: tuple[_Adj, ...] = tuple(_make_adj(row) for row in _ADJ_TABLE)
_VERBS: tuple[_Verb, ...] = tuple(_make_verb(row) for row in _VERB_TABLE)

_NOUN_BY_EN = {n.en: n for n in _NOUNS}
_ADJ_BY_EN = {a.en: a for a in _ADJS}
_VERB_BY_EN = {v.en: v for v in _VERBS}

# Which words may fill which slot, precomputed so generation is just random picks.
_SUBJECTS: dict[str, tuple[_Noun, ...]] = {
    v.en: tuple(n for n in _NOUNS if n.kind in v.subjects) for v in _VERBS
}
_OBJECTS: dict[str, tuple[_Noun, ...]] = {
    v.en: tuple(n for n in _NOUNS if n.classes & v.objects) for v in _VERBS
}
# "the dog sees the castle in the garden" is nonsense: with a place phrase the
# object must be something that can be inside the place.
_OBJECTS_NOT_PLACE: dict[str, tuple[_Noun, ...]] = {
    verb: tuple(n for n in nouns if n.kind != "l") for verb, nouns in _OBJECTS.items()
}
_VERBS_WITH_MOVABLE_OBJECT: tuple[_Verb, ...] = tuple(v for v in _VERBS if _OBJECTS_NOT_PLACE[v.en])


def _verb_cumulative_weights(verbs: tuple[_Verb, ...], objects: dict[str, tuple[_Noun, ...]]) -> list[float]:
    # Uniform verbs would repeat "the cat drinks the milk" endlessly (few objects)
    # while uniform (subject, object) pairs would starve such verbs; sqrt of the
    # pair count sits between the two.
    return list(accumulate(math.sqrt(len(_SUBJECTS[v.en]) * len(objects[v.en])) for v in verbs))


_VERB_WEIGHTS = _verb_cumulative_weights(_VERBS, _OBJECTS)
_MOVABLE_VERB_WEIGHTS = _verb_cumulative_weights(_VERBS_WITH_MOVABLE_OBJECT, _OBJECTS_NOT_PLACE)
_ADJS_FOR_KIND: dict[str, tuple[_Adj, ...]] = {
    kind: tuple(a for a in _ADJS if kind in a.domain) for kind in "apfdtl"
}
_IN_PLACES: tuple[_Noun, ...] = tuple(n for n in _NOUNS if "in" in n.classes)
_LOCATABLE: tuple[_Noun, ...] = tuple(n for n in _NOUNS if n.kind != "l")


# --------------------------------------------------------------------------- per-language rendering


def _en_np(noun: _Noun, adj: _Adj | None) -> str:
    return f"the {noun.en}" if adj is None else f"the {adj.en} {noun.en}"


def _fr_adj(adj: _Adj, noun: _Noun) -> str:
    return adj.fr_f if noun.fr_fem else adj.fr_m


def _fr_np(noun: _Noun, adj: _Adj | None) -> str:
    article = "la" if noun.fr_fem else "le"
    if adj is None:
        return f"{article} {noun.fr}"
    form = _fr_adj(adj, noun)
    if adj.fr_pre:
        return f"{article} {form} {noun.fr}"
    return f"{article} {noun.fr} {form}"


def _es_adj(adj: _Adj, noun: _Noun) -> str:
    return adj.es_f if noun.es_fem else adj.es_m


def _es_np(noun: _Noun, adj: _Adj | None, direct_object: bool = False) -> str:
    article = "la" if noun.es_fem else "el"
    phrase = noun.es if adj is None else f"{noun.es} {_es_adj(adj, noun)}"
    if direct_object and noun.animate:
        # personal "a" before animate direct objects, contracted a + el = al
        return f"a la {phrase}" if noun.es_fem else f"al {phrase}"
    return f"{article} {phrase}"


def _de_np(noun: _Noun, adj: _Adj | None, accusative: bool = False) -> str:
    gender = noun.de_gender
    if gender == "m":
        article = "den" if accusative else "der"
    else:
        article = "die" if gender == "f" else "das"
    word = noun.de_acc if accusative else noun.de
    if adj is None:
        return f"{article} {word}"
    # weak declension after the definite article: -e, except masculine accusative -en
    ending = "en" if accusative and gender == "m" else "e"
    return f"{article} {adj.de_stem}{ending} {word}"


def _place_phrases(place: _Noun) -> tuple[str, str, str, str]:
    fr = f"dans {'la' if place.fr_fem else 'le'} {place.fr}"
    es = f"en {'la' if place.es_fem else 'el'} {place.es}"
    # "in" + dative: in dem -> im, in der
    de = f"in der {place.de}" if place.de_gender == "f" else f"im {place.de}"
    return f"in the {place.en}", fr, es, de


def _clause(
    subj: _Noun,
    subj_adj: _Adj | None,
    verb: _Verb,
    obj: _Noun,
    obj_adj: _Adj | None,
    place: _Noun | None = None,
) -> dict[str, str]:
    """the [ADJ] S V the [ADJ] O [in the PLACE]"""
    de_verb = verb.de_animal if subj.kind == "a" else verb.de
    en = f"{_en_np(subj, subj_adj)} {verb.en} {_en_np(obj, obj_adj)}"
    fr = f"{_fr_np(subj, subj_adj)} {verb.fr} {_fr_np(obj, obj_adj)}"
    es = f"{_es_np(subj, subj_adj)} {verb.es} {_es_np(obj, obj_adj, direct_object=True)}"
    de = f"{_de_np(subj, subj_adj)} {de_verb} {_de_np(obj, obj_adj, accusative=True)}"
    if place is not None:
        p_en, p_fr, p_es, p_de = _place_phrases(place)
        en, fr, es, de = f"{en} {p_en}", f"{fr} {p_fr}", f"{es} {p_es}", f"{de} {p_de}"
    return {"en": en, "fr": fr, "es": es, "de": de}


def _predicate(subj: _Noun, subj_adj: _Adj | None, adj: _Adj) -> dict[str, str]:
    """the [ADJ] S is ADJ -- the predicate agrees in fr/es and stays uninflected in de."""
    copula = "está" if adj.es_estar else "es"
    return {
        "en": f"{_en_np(subj, subj_adj)} is {adj.en}",
        "fr": f"{_fr_np(subj, subj_adj)} est {_fr_adj(adj, subj)}",
        "es": f"{_es_np(subj, subj_adj)} {copula} {_es_adj(adj, subj)}",
        "de": f"{_de_np(subj, subj_adj)} ist {adj.de}",
    }


def _location(subj: _Noun, subj_adj: _Adj | None, place: _Noun) -> dict[str, str]:
    """the [ADJ] S is in the PLACE -- Spanish location always takes estar."""
    p_en, p_fr, p_es, p_de = _place_phrases(place)
    return {
        "en": f"{_en_np(subj, subj_adj)} is {p_en}",
        "fr": f"{_fr_np(subj, subj_adj)} est {p_fr}",
        "es": f"{_es_np(subj, subj_adj)} está {p_es}",
        "de": f"{_de_np(subj, subj_adj)} ist {p_de}",
    }


def _chat(phrase: tuple[str, str, str, str]) -> dict[str, str]:
    return dict(zip(LANGUAGES, phrase))


# --------------------------------------------------------------------------- random sentences


def _pick(rng: random.Random, items: tuple):
    # Indexing by random() is about three times faster than Random.choice, which
    # dominates generation time at 100k sentences.
    return items[int(rng.random() * len(items))]


def _pick_adj(rng: random.Random, noun: _Noun, avoid_group: str | None = None) -> _Adj:
    choices = _ADJS_FOR_KIND[noun.kind]
    while True:
        adj = _pick(rng, choices)
        if adj.group != avoid_group:
            return adj


def _pick_weighted(rng: random.Random, items: tuple, cumulative: list[float]):
    # min() guards the float edge case where random() * total rounds up to total
    return items[min(bisect(cumulative, rng.random() * cumulative[-1]), len(items) - 1)]


def _pick_svo(
    rng: random.Random,
    verbs: tuple[_Verb, ...],
    weights: list[float],
    objects: dict[str, tuple[_Noun, ...]],
) -> tuple[_Noun, _Verb, _Noun]:
    verb = _pick_weighted(rng, verbs, weights)
    subj = _pick(rng, _SUBJECTS[verb.en])
    obj = _pick(rng, objects[verb.en])
    # "the cat sees the cat" is grammatical but useless; redraw the object
    while obj is subj:
        obj = _pick(rng, objects[verb.en])
    return subj, verb, obj


def _gen_svo(rng: random.Random) -> dict[str, str]:
    subj, verb, obj = _pick_svo(rng, _VERBS, _VERB_WEIGHTS, _OBJECTS)
    return _clause(subj, None, verb, obj, None)


def _gen_adj_svo(rng: random.Random) -> dict[str, str]:
    subj, verb, obj = _pick_svo(rng, _VERBS, _VERB_WEIGHTS, _OBJECTS)
    return _clause(subj, _pick_adj(rng, subj), verb, obj, None)


def _gen_svo_adj(rng: random.Random) -> dict[str, str]:
    subj, verb, obj = _pick_svo(rng, _VERBS, _VERB_WEIGHTS, _OBJECTS)
    return _clause(subj, None, verb, obj, _pick_adj(rng, obj))


def _gen_adj_svo_adj(rng: random.Random) -> dict[str, str]:
    subj, verb, obj = _pick_svo(rng, _VERBS, _VERB_WEIGHTS, _OBJECTS)
    return _clause(subj, _pick_adj(rng, subj), verb, obj, _pick_adj(rng, obj))


def _gen_svo_place(rng: random.Random) -> dict[str, str]:
    subj, verb, obj = _pick_svo(rng, _VERBS_WITH_MOVABLE_OBJECT, _MOVABLE_VERB_WEIGHTS, _OBJECTS_NOT_PLACE)
    obj_adj = _pick_adj(rng, obj) if rng.random() < 0.3 else None
    return _clause(subj, None, verb, obj, obj_adj, _pick(rng, _IN_PLACES))


def _gen_predicate(rng: random.Random) -> dict[str, str]:
    subj = _pick(rng, _NOUNS)
    adj = _pick_adj(rng, subj)
    # an attributive adjective most of the time: without one this template has
    # only ~1,300 distinct sentences and would mostly repeat itself
    subj_adj = _pick_adj(rng, subj, avoid_group=adj.group) if rng.random() < 0.85 else None
    return _predicate(subj, subj_adj, adj)


def _gen_location(rng: random.Random) -> dict[str, str]:
    subj = _pick(rng, _LOCATABLE)
    subj_adj = _pick_adj(rng, subj) if rng.random() < 0.85 else None
    return _location(subj, subj_adj, _pick(rng, _IN_PLACES))


def _gen_chat(rng: random.Random) -> dict[str, str]:
    return _chat(_pick(rng, _CHAT_PHRASES))


_TEMPLATES = (
    (0.14, _gen_svo),
    (0.17, _gen_adj_svo),
    (0.17, _gen_svo_adj),
    (0.18, _gen_adj_svo_adj),
    (0.18, _gen_svo_place),
    (0.07, _gen_predicate),
    (0.07, _gen_location),
    (0.02, _gen_chat),
)
_TEMPLATE_WEIGHTS: list[float] = list(accumulate(weight for weight, _ in _TEMPLATES))
_GENERATORS = tuple(gen for _, gen in _TEMPLATES)


def generate_corpus(size: int, seed: int = 0) -> list[dict[str, str]]:
    """`size` parallel sentences, each {"en": ..., "fr": ..., "es": ..., "de": ...}.

    Deterministic for a given (size, seed); a private random.Random keeps it
    independent of any other use of the random module.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    rng = random.Random(seed)
    return [_pick_weighted(rng, _GENERATORS, _TEMPLATE_WEIGHTS)(rng) for _ in range(size)]


# Hand-checked sentences covering every template; each is also what the grammar
# renders for the same word choice (tests/modelbuild/test_corpus.py checks both).
SAMPLE_SENTENCES: list[dict[str, str]] = [
    {"en": "the cat sees the dog", "fr": "le chat voit le chien",
     "es": "el gato ve al perro", "de": "die katze sieht den hund"},
    {"en": "the farmer feeds the cow", "fr": "le fermier nourrit la vache",
     "es": "el granjero alimenta a la vaca", "de": "der bauer füttert die kuh"},
    {"en": "the queen calls the boy", "fr": "la reine appelle le garçon",
     "es": "la reina llama al niño", "de": "die königin ruft den jungen"},
    {"en": "the big dog eats the bread", "fr": "le grand chien mange le pain",
     "es": "el perro grande come el pan", "de": "der große hund frisst das brot"},
    {"en": "the woman sees the black cat", "fr": "la femme voit le chat noir",
     "es": "la mujer ve al gato negro", "de": "die frau sieht die schwarze katze"},
    {"en": "the boy reads the new book", "fr": "le garçon lit le nouveau livre",
     "es": "el niño lee el libro nuevo", "de": "der junge liest das neue buch"},
    {"en": "the small girl loves the old horse", "fr": "la petite fille aime le vieux cheval",
     "es": "la niña pequeña ama al caballo viejo", "de": "das kleine mädchen liebt das alte pferd"},
    {"en": "the white cat drinks the cold milk", "fr": "le chat blanc boit le lait froid",
     "es": "el gato blanco bebe la leche fría", "de": "die weiße katze trinkt die kalte milch"},
    {"en": "the mother cooks the soup in the kitchen", "fr": "la mère cuisine la soupe dans la cuisine",
     "es": "la madre cocina la sopa en la cocina", "de": "die mutter kocht die suppe in der küche"},
    {"en": "the house is big", "fr": "la maison est grande",
     "es": "la casa es grande", "de": "das haus ist groß"},
    {"en": "the old car is broken", "fr": "la vieille voiture est cassée",
     "es": "el coche viejo está roto", "de": "das alte auto ist kaputt"},
    {"en": "the cat is in the garden", "fr": "le chat est dans le jardin",
     "es": "el gato está en el jardín", "de": "die katze ist im garten"},
    {"en": "good morning", "fr": "bonjour", "es": "buenos días", "de": "guten morgen"},
    {"en": "thank you", "fr": "merci", "es": "gracias", "de": "danke"},
]
