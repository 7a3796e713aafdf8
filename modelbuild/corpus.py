"""Synthetic parallel corpus (en/fr/es/de) for training the built-in tiny translation models.

The models are trained offline, so their training data is generated here: a small
templated grammar over a hand-checked lexicon of a few hundred common words renders
each sentence in all four languages at once. Because every language is produced
from the same choice of words, every row is a real translation, and the grammar
rules below (French and Spanish gender agreement, Spanish personal "a", German case
and weak adjective endings, question word order) keep each side grammatical.

Text conventions. A sentence is first written as in careful chat ("written" style): capital
first letter, German nouns capitalized, sentence-final punctuation with each language's
typography (French sets "?" and "!" apart with a space, Spanish opens with "¿" and "¡").
Then each row is restyled the same way in all four languages, so that the casual forms people
type are translated too, into the same style:

    written  The cat sees the dog.      Le chat voit le chien.   Die Katze sieht den Hund.
    lower    the cat sees the dog.      le chat voit le chien.   die katze sieht den hund.
    plain    the cat sees the dog       le chat voit le chien    die katze sieht den hund
    bare     The cat sees the dog       Le chat voit le chien    Die Katze sieht den Hund

Single spaces throughout, real accents kept. The casual styles keep a question's marks
("¿dónde está la estación?"): Spanish asks yes/no questions by intonation, subject first as in
the statement ("¿El gato ve al perro?"), so the marks are all that tell the two apart.
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
    ("cat", "le chat", "el gato", "die Katze", "a", ""),
    ("dog", "le chien", "el perro", "der Hund", "a", ""),
    ("horse", "le cheval", "el caballo", "das Pferd", "a", ""),
    ("cow", "la vache", "la vaca", "die Kuh", "a", ""),
    ("mouse", "la souris", "el ratón", "die Maus", "a", ""),
    ("rabbit", "le lapin", "el conejo", "das Kaninchen", "a", ""),
    ("pig", "le cochon", "el cerdo", "das Schwein", "a", ""),
    ("sheep", "le mouton", "la oveja", "das Schaf", "a", ""),
    ("goat", "la chèvre", "la cabra", "die Ziege", "a", ""),
    ("duck", "le canard", "el pato", "die Ente", "a", ""),
    ("hen", "la poule", "la gallina", "die Henne", "a", ""),
    ("fox", "le renard", "el zorro", "der Fuchs", "a", ""),
    ("wolf", "le loup", "el lobo", "der Wolf", "a", ""),
    ("lion", "le lion", "el león", "der Löwe", "a", ""),
    ("tiger", "le tigre", "el tigre", "der Tiger", "a", ""),
    ("monkey", "le singe", "el mono", "der Affe", "a", ""),
    ("snake", "le serpent", "la serpiente", "die Schlange", "a", ""),
    ("frog", "la grenouille", "la rana", "der Frosch", "a", ""),
    ("giraffe", "la girafe", "la jirafa", "die Giraffe", "a", ""),
    ("penguin", "le pingouin", "el pingüino", "der Pinguin", "a", ""),
    ("deer", "le cerf", "el ciervo", "der Hirsch", "a", ""),
    ("whale", "la baleine", "la ballena", "der Wal", "a", ""),
    ("dolphin", "le dauphin", "el delfín", "der Delfin", "a", ""),
    ("kitten", "le chaton", "el gatito", "das Kätzchen", "a", ""),
    ("puppy", "le chiot", "el cachorro", "der Welpe", "a", ""),
    # people
    ("woman", "la femme", "la mujer", "die Frau", "p", ""),
    ("boy", "le garçon", "el niño", "der Junge", "p", ""),
    ("girl", "la fille", "la niña", "das Mädchen", "p", ""),
    ("baby", "le bébé", "el bebé", "das Baby", "p", ""),
    ("teacher", "le professeur", "el profesor", "der Lehrer", "p", ""),
    ("doctor", "le médecin", "el médico", "der Arzt", "p", ""),
    ("farmer", "le fermier", "el granjero", "der Bauer", "p", ""),
    ("king", "le roi", "el rey", "der König", "p", ""),
    ("queen", "la reine", "la reina", "die Königin", "p", ""),
    ("prince", "le prince", "el príncipe", "der Prinz", "p", ""),
    ("princess", "la princesse", "la princesa", "die Prinzessin", "p", ""),
    ("mother", "la mère", "la madre", "die Mutter", "p", ""),
    ("father", "le père", "el padre", "der Vater", "p", ""),
    ("sister", "la sœur", "la hermana", "die Schwester", "p", ""),
    ("brother", "le frère", "el hermano", "der Bruder", "p", ""),
    ("aunt", "la tante", "la tía", "die Tante", "p", ""),
    ("neighbor", "le voisin", "el vecino", "der Nachbar", "p", ""),
    ("cook", "le cuisinier", "el cocinero", "der Koch", "p", ""),
    ("baker", "le boulanger", "el panadero", "der Bäcker", "p", ""),
    ("policeman", "le policier", "el policía", "der Polizist", "p", ""),
    ("soldier", "le soldat", "el soldado", "der Soldat", "p", ""),
    ("driver", "le chauffeur", "el conductor", "der Fahrer", "p", ""),
    ("painter", "le peintre", "el pintor", "der Maler", "p", ""),
    ("waiter", "le serveur", "el camarero", "der Kellner", "p", ""),
    ("dancer", "la danseuse", "la bailarina", "die Tänzerin", "p", ""),
    # food
    ("bread", "le pain", "el pan", "das Brot", "f", ""),
    ("cheese", "le fromage", "el queso", "der Käse", "f", ""),
    ("apple", "la pomme", "la manzana", "der Apfel", "f", "throw"),
    ("banana", "la banane", "el plátano", "die Banane", "f", "throw"),
    ("cake", "le gâteau", "el pastel", "der Kuchen", "f", ""),
    ("fish", "le poisson", "el pescado", "der Fisch", "f", ""),
    ("meat", "la viande", "la carne", "das Fleisch", "f", ""),
    ("soup", "la soupe", "la sopa", "die Suppe", "f", ""),
    ("rice", "le riz", "el arroz", "der Reis", "f", ""),
    ("pizza", "la pizza", "la pizza", "die Pizza", "f", ""),
    ("salad", "la salade", "la ensalada", "der Salat", "f", ""),
    ("carrot", "la carotte", "la zanahoria", "die Karotte", "f", "throw"),
    ("tomato", "la tomate", "el tomate", "die Tomate", "f", "throw"),
    ("strawberry", "la fraise", "la fresa", "die Erdbeere", "f", ""),
    ("lemon", "le citron", "el limón", "die Zitrone", "f", "throw"),
    ("chocolate", "le chocolat", "el chocolate", "die Schokolade", "f", ""),
    ("cookie", "le biscuit", "la galleta", "der Keks", "f", ""),
    ("sausage", "la saucisse", "la salchicha", "die Wurst", "f", ""),
    # drinks
    ("milk", "le lait", "la leche", "die Milch", "d", ""),
    ("coffee", "le café", "el café", "der Kaffee", "d", ""),
    ("tea", "le thé", "el té", "der Tee", "d", ""),
    ("juice", "le jus", "el zumo", "der Saft", "d", ""),
    ("wine", "le vin", "el vino", "der Wein", "d", ""),
    ("beer", "la bière", "la cerveza", "das Bier", "d", ""),
    ("lemonade", "la limonade", "la limonada", "die Limonade", "d", ""),
    # things
    ("book", "le livre", "el libro", "das Buch", "t", "read write"),
    ("newspaper", "le journal", "el periódico", "die Zeitung", "t", "read"),
    ("letter", "la lettre", "la carta", "der Brief", "t", "read write"),
    ("map", "la carte", "el mapa", "die Landkarte", "t", "read"),
    ("table", "la table", "la mesa", "der Tisch", "t", "fix"),
    ("chair", "la chaise", "la silla", "der Stuhl", "t", "fix break"),
    ("door", "la porte", "la puerta", "die Tür", "t", "open fix"),
    ("window", "la fenêtre", "la ventana", "das Fenster", "t", "open break"),
    ("box", "la boîte", "la caja", "die Kiste", "t", "open"),
    ("bag", "le sac", "la bolsa", "die Tasche", "t", "open"),
    ("ball", "le ballon", "la pelota", "der Ball", "t", "throw"),
    ("car", "la voiture", "el coche", "das Auto", "t", "vehicle fix"),
    ("bicycle", "le vélo", "la bicicleta", "das Fahrrad", "t", "fix"),
    ("bus", "le bus", "el autobús", "der Bus", "t", "vehicle"),
    ("train", "le train", "el tren", "der Zug", "t", "vehicle"),
    ("truck", "le camion", "el camión", "der Lastwagen", "t", "vehicle fix"),
    ("boat", "le bateau", "el barco", "das Boot", "t", "build fix"),
    ("key", "la clé", "la llave", "der Schlüssel", "t", "throw"),
    ("phone", "le téléphone", "el teléfono", "das Telefon", "t", "fix sound break"),
    ("lamp", "la lampe", "la lámpara", "die Lampe", "t", "fix break"),
    ("clock", "la pendule", "el reloj", "die Uhr", "t", "fix sound"),
    ("cup", "la tasse", "la taza", "die Tasse", "t", "break"),
    ("glass", "le verre", "el vaso", "das Glas", "t", "break"),
    ("bottle", "la bouteille", "la botella", "die Flasche", "t", "open break"),
    ("knife", "le couteau", "el cuchillo", "das Messer", "t", ""),
    ("hat", "le chapeau", "el sombrero", "der Hut", "t", "throw"),
    ("shoe", "la chaussure", "el zapato", "der Schuh", "t", "throw"),
    ("umbrella", "le parapluie", "el paraguas", "der Regenschirm", "t", "open"),
    ("picture", "le tableau", "el cuadro", "das Bild", "t", ""),
    ("flower", "la fleur", "la flor", "die Blume", "t", ""),
    ("stone", "la pierre", "la piedra", "der Stein", "t", "throw"),
    ("guitar", "la guitare", "la guitarra", "die Gitarre", "t", "sound"),
    ("piano", "le piano", "el piano", "das Klavier", "t", "sound"),
    ("bed", "le lit", "la cama", "das Bett", "t", "fix"),
    ("toy", "le jouet", "el juguete", "das Spielzeug", "t", "throw"),
    ("doll", "la poupée", "la muñeca", "die Puppe", "t", "throw"),
    ("radio", "la radio", "la radio", "das Radio", "t", "sound fix"),
    ("television", "la télévision", "la televisión", "der Fernseher", "t", "sound fix"),
    # places
    ("house", "la maison", "la casa", "das Haus", "l", "in build"),
    ("garden", "le jardin", "el jardín", "der Garten", "l", "in"),
    ("kitchen", "la cuisine", "la cocina", "die Küche", "l", "in"),
    ("forest", "la forêt", "el bosque", "der Wald", "l", "in"),
    ("park", "le parc", "el parque", "der Park", "l", "in"),
    ("city", "la ville", "la ciudad", "die Stadt", "l", "in"),
    ("village", "le village", "el pueblo", "das Dorf", "l", "in"),
    ("bedroom", "la chambre", "el dormitorio", "das Schlafzimmer", "l", "in"),
    ("shop", "le magasin", "la tienda", "der Laden", "l", "in"),
    ("museum", "le musée", "el museo", "das Museum", "l", "in"),
    ("library", "la bibliothèque", "la biblioteca", "die Bibliothek", "l", "in"),
    ("station", "la gare", "la estación", "der Bahnhof", "l", "in"),
    ("castle", "le château", "el castillo", "das Schloss", "l", "in build"),
    ("lake", "le lac", "el lago", "der See", "l", "in"),
    ("river", "la rivière", "el río", "der Fluss", "l", "in"),
    ("sea", "la mer", "el mar", "das Meer", "l", "in"),
    ("bakery", "la boulangerie", "la panadería", "die Bäckerei", "l", "in"),
    ("market", "le marché", "el mercado", "der Markt", "l", ""),  # fr says "au marché", not "dans"
    ("farm", "la ferme", "la granja", "der Bauernhof", "l", ""),  # en says "on the farm"
    ("bridge", "le pont", "el puente", "die Brücke", "l", "build"),
)

# German n-declension: these masculine nouns take -(e)n in the accusative
# ("die Katze sieht den Jungen"), which the article alone does not show.
_DE_WEAK_ACC: dict[str, str] = {
    "Junge": "Jungen",
    "Löwe": "Löwen",
    "Affe": "Affen",
    "Welpe": "Welpen",
    "Prinz": "Prinzen",
    "Nachbar": "Nachbarn",
    "Polizist": "Polizisten",
    "Soldat": "Soldaten",
    "Bauer": "Bauern",
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

# Verbs in English questions take the bare infinitive ("does the cat see ..."); the
# 3rd-person forms above give it by rule except for these.
_EN_BASE: dict[str, str] = {"has": "have"}

# Adjectives that "very" can intensify ("the soup is very hot!", not "very broken").
_UNGRADABLE_GROUPS = frozenset({"color", "condition", "fullness"})

# Fixed chat phrases in written style, mixed in so that greetings and small talk around the
# templated sentences are translated too. Each language's phrase means only this English one
# (French "bonjour" is "good morning", so "hello" is "salut"), so every direction is a function.
_CHAT_PHRASES: tuple[tuple[str, str, str, str], ...] = (
    ("Hello!", "Salut !", "¡Hola!", "Hallo!"),
    ("Good morning!", "Bonjour !", "¡Buenos días!", "Guten Morgen!"),
    ("Good evening!", "Bonsoir !", "¡Buenas tardes!", "Guten Abend!"),
    ("Good night!", "Bonne nuit !", "¡Buenas noches!", "Gute Nacht!"),
    ("Goodbye!", "Au revoir !", "¡Adiós!", "Auf Wiedersehen!"),
    ("Thank you!", "Merci !", "¡Gracias!", "Danke!"),
    ("Thank you very much!", "Merci beaucoup !", "¡Muchas gracias!", "Vielen Dank!"),
    ("You are welcome.", "De rien.", "De nada.", "Gern geschehen."),
    ("Please.", "S'il te plaît.", "Por favor.", "Bitte."),
    ("Excuse me.", "Excusez-moi.", "Disculpe.", "Entschuldigen Sie."),
    ("Sorry!", "Pardon !", "¡Perdón!", "Entschuldigung!"),
    ("See you tomorrow.", "À demain.", "Hasta mañana.", "Bis morgen."),
    ("See you soon!", "À bientôt !", "¡Hasta pronto!", "Bis bald!"),
    ("See you later!", "À plus tard !", "¡Hasta luego!", "Bis später!"),
    ("How are you?", "Comment ça va ?", "¿Cómo estás?", "Wie geht es dir?"),
    ("I am fine, thank you.", "Je vais bien, merci.", "Estoy bien, gracias.", "Mir geht es gut, danke."),
    ("And you?", "Et toi ?", "¿Y tú?", "Und dir?"),
    ("Me too.", "Moi aussi.", "Yo también.", "Ich auch."),
    ("Yes.", "Oui.", "Sí.", "Ja."),
    ("No.", "Non.", "No.", "Nein."),
    ("Of course!", "Bien sûr !", "¡Claro!", "Natürlich!"),
    ("No problem.", "Pas de problème.", "No hay problema.", "Kein Problem."),
    ("Very good!", "Très bien !", "¡Muy bien!", "Sehr gut!"),
    ("Good idea!", "Bonne idée !", "¡Buena idea!", "Gute Idee!"),
    ("Good luck!", "Bonne chance !", "¡Buena suerte!", "Viel Glück!"),
    ("Welcome!", "Bienvenue !", "¡Bienvenido!", "Willkommen!"),
    ("Congratulations!", "Félicitations !", "¡Felicidades!", "Herzlichen Glückwunsch!"),
    ("Happy birthday!", "Joyeux anniversaire !", "¡Feliz cumpleaños!", "Alles Gute zum Geburtstag!"),
    ("Have a nice day!", "Bonne journée !", "¡Que tengas un buen día!", "Einen schönen Tag noch!"),
    ("I love you.", "Je t'aime.", "Te quiero.", "Ich liebe dich."),
    ("I do not understand.", "Je ne comprends pas.", "No entiendo.", "Ich verstehe nicht."),
    ("What time is it?", "Quelle heure est-il ?", "¿Qué hora es?", "Wie spät ist es?"),
    ("What is your name?", "Comment tu t'appelles ?", "¿Cómo te llamas?", "Wie heißt du?"),
    ("Where are you?", "Où es-tu ?", "¿Dónde estás?", "Wo bist du?"),
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
    en_base: str  # bare infinitive, for "does ... see"
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
    return _Verb(en, fr, es, de, _DE_ANIMAL_VERB.get(de, de), _en_base(en), subjects, frozenset(objects.split()))


def _en_base(third_person: str) -> str:
    verb, _, particle = third_person.partition(" ")  # "looks for"
    if verb in _EN_BASE:
        base = _EN_BASE[verb]
    elif verb.endswith("ies"):
        base = verb[:-3] + "y"
    elif verb.endswith(("sses", "shes", "ches", "xes")):
        base = verb[:-2]
    else:
        base = verb[:-1]
    return f"{base} {particle}" if particle else base


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
#
# These build a sentence's words, lowercase but for German nouns; `_sentence` then capitalizes
# and punctuates it, and `restyle` makes the casual variants.


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


def _predicate(subj: _Noun, subj_adj: _Adj | None, adj: _Adj, very: bool = False) -> dict[str, str]:
    """the [ADJ] S is [very] ADJ -- the predicate agrees in fr/es and stays uninflected in de."""
    copula = "está" if adj.es_estar else "es"
    en, fr, es, de = ("very ", "très ", "muy ", "sehr ") if very else ("", "", "", "")
    return {
        "en": f"{_en_np(subj, subj_adj)} is {en}{adj.en}",
        "fr": f"{_fr_np(subj, subj_adj)} est {fr}{_fr_adj(adj, subj)}",
        "es": f"{_es_np(subj, subj_adj)} {copula} {es}{_es_adj(adj, subj)}",
        "de": f"{_de_np(subj, subj_adj)} ist {de}{adj.de}",
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


# Questions: English inverts or takes "does", French asks with "est-ce que" (no elision: every
# noun phrase starts with le/la), German puts the verb first, Spanish keeps the statement's order.


def _where(subj: _Noun, subj_adj: _Adj | None) -> dict[str, str]:
    """where is the [ADJ] S?"""
    return {
        "en": f"where is {_en_np(subj, subj_adj)}",
        "fr": f"où est {_fr_np(subj, subj_adj)}",
        "es": f"dónde está {_es_np(subj, subj_adj)}",
        "de": f"wo ist {_de_np(subj, subj_adj)}",
    }


def _predicate_question(subj: _Noun, subj_adj: _Adj | None, adj: _Adj) -> dict[str, str]:
    """is the [ADJ] S ADJ?"""
    copula = "está" if adj.es_estar else "es"
    return {
        "en": f"is {_en_np(subj, subj_adj)} {adj.en}",
        "fr": f"est-ce que {_fr_np(subj, subj_adj)} est {_fr_adj(adj, subj)}",
        "es": f"{_es_np(subj, subj_adj)} {copula} {_es_adj(adj, subj)}",
        "de": f"ist {_de_np(subj, subj_adj)} {adj.de}",
    }


def _location_question(subj: _Noun, subj_adj: _Adj | None, place: _Noun) -> dict[str, str]:
    """is the [ADJ] S in the PLACE?"""
    p_en, p_fr, p_es, p_de = _place_phrases(place)
    return {
        "en": f"is {_en_np(subj, subj_adj)} {p_en}",
        "fr": f"est-ce que {_fr_np(subj, subj_adj)} est {p_fr}",
        "es": f"{_es_np(subj, subj_adj)} está {p_es}",
        "de": f"ist {_de_np(subj, subj_adj)} {p_de}",
    }


def _clause_question(subj: _Noun, subj_adj: _Adj | None, verb: _Verb, obj: _Noun, obj_adj: _Adj | None) -> dict[str, str]:
    """does the [ADJ] S V the [ADJ] O?"""
    de_verb = verb.de_animal if subj.kind == "a" else verb.de
    return {
        "en": f"does {_en_np(subj, subj_adj)} {verb.en_base} {_en_np(obj, obj_adj)}",
        "fr": f"est-ce que {_fr_np(subj, subj_adj)} {verb.fr} {_fr_np(obj, obj_adj)}",
        "es": f"{_es_np(subj, subj_adj)} {verb.es} {_es_np(obj, obj_adj, direct_object=True)}",
        "de": f"{de_verb} {_de_np(subj, subj_adj)} {_de_np(obj, obj_adj, accusative=True)}",
    }


# Chat phrases around a noun of the grammar.


def _thanks_for(obj: _Noun, adj: _Adj | None) -> dict[str, str]:
    """thank you for the [ADJ] O! -- German "für" takes the accusative"""
    return {
        "en": f"thank you for {_en_np(obj, adj)}",
        "fr": f"merci pour {_fr_np(obj, adj)}",
        "es": f"gracias por {_es_np(obj, adj)}",
        "de": f"danke für {_de_np(obj, adj, accusative=True)}",
    }


def _looking_for(obj: _Noun, adj: _Adj | None) -> dict[str, str]:
    """I am looking for the [ADJ] O."""
    return {
        "en": f"I am looking for {_en_np(obj, adj)}",
        "fr": f"je cherche {_fr_np(obj, adj)}",
        "es": f"busco {_es_np(obj, adj, direct_object=True)}",
        "de": f"ich suche {_de_np(obj, adj, accusative=True)}",
    }


def _do_you_have(obj: _Noun, adj: _Adj | None) -> dict[str, str]:
    """do you have the [ADJ] O? -- informal you (tu, tú, du)"""
    return {
        "en": f"do you have {_en_np(obj, adj)}",
        "fr": f"est-ce que tu as {_fr_np(obj, adj)}",
        "es": f"tienes {_es_np(obj, adj, direct_object=True)}",
        "de": f"hast du {_de_np(obj, adj, accusative=True)}",
    }


def _chat(phrase: tuple[str, str, str, str]) -> dict[str, str]:
    return dict(zip(LANGUAGES, phrase))


# --------------------------------------------------------------------------- sentence styles


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(words: dict[str, str], end: str) -> dict[str, str]:
    """Written style: capital first letter and each language's sentence-final mark ("." "?" "!")."""
    written = {}
    for lang, text in words.items():
        text = _capitalize(text)
        if end == ".":
            written[lang] = f"{text}."
        elif lang == "fr":
            written[lang] = f"{text} {end}"  # French typography: a space before ? and !
        elif lang == "es":
            written[lang] = f"{'¿' if end == '?' else '¡'}{text}{end}"
        else:
            written[lang] = f"{text}{end}"
    return written


STYLES: tuple[str, ...] = ("written", "lower", "plain", "bare")
# Mostly written; enough of each casual form that it is learned as well.
_STYLE_WEIGHTS: list[float] = list(accumulate((0.55, 0.2, 0.15, 0.1)))
_UNQUESTIONED = str.maketrans("", "", "¡!.,")  # what plain and bare drop: all but a question's marks


def restyle(row: dict[str, str], style: str) -> dict[str, str]:
    """A written-style row in another style, the same in every language (see the module doc)."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {STYLES}")
    styled = {}
    for lang, text in row.items():
        if style in ("plain", "bare"):
            # removing French " !" leaves a trailing space, removing ", " a double one
            text = " ".join(text.translate(_UNQUESTIONED).split())
        if style in ("lower", "plain"):
            text = text.lower()
        styled[lang] = text
    return styled


# --------------------------------------------------------------------------- random sentences


def _pick(rng: random.Random, items: tuple):
    # Indexing by random() is about three times faster than Random.choice, which
    # dominates generation time at 100k sentences.
    return items[int(rng.random() * len(items))]


def _pick_adj(rng: random.Random, noun: _Noun, avoid_group: str | None = None, choices: dict | None = None) -> _Adj:
    choices = (choices or _ADJS_FOR_KIND)[noun.kind]
    while True:
        adj = _pick(rng, choices)
        if adj.group != avoid_group:
            return adj


def _maybe_adj(rng: random.Random, noun: _Noun, share: float) -> _Adj | None:
    return _pick_adj(rng, noun) if rng.random() < share else None


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
    return _sentence(_clause(subj, None, verb, obj, None), ".")


def _gen_adj_svo(rng: random.Random) -> dict[str, str]:
    subj, verb, obj = _pick_svo(rng, _VERBS, _VERB_WEIGHTS, _OBJECTS)
    return _sentence(_clause(subj, _pick_adj(rng, subj), verb, obj, None), ".")


def _gen_svo_adj(rng: random.Random) -> dict[str, str]:
    subj, verb, obj = _pick_svo(rng, _VERBS, _VERB_WEIGHTS, _OBJECTS)
    return _sentence(_clause(subj, None, verb, obj, _pick_adj(rng, obj)), ".")


def _gen_adj_svo_adj(rng: random.Random) -> dict[str, str]:
    subj, verb, obj = _pick_svo(rng, _VERBS, _VERB_WEIGHTS, _OBJECTS)
    return _sentence(_clause(subj, _pick_adj(rng, subj), verb, obj, _pick_adj(rng, obj)), ".")


def _gen_svo_place(rng: random.Random) -> dict[str, str]:
    subj, verb, obj = _pick_svo(rng, _VERBS_WITH_MOVABLE_OBJECT, _MOVABLE_VERB_WEIGHTS, _OBJECTS_NOT_PLACE)
    obj_adj = _maybe_adj(rng, obj, 0.3)
    return _sentence(_clause(subj, None, verb, obj, obj_adj, _pick(rng, _IN_PLACES)), ".")


def _gen_predicate(rng: random.Random) -> dict[str, str]:
    subj = _pick(rng, _NOUNS)
    adj = _pick_adj(rng, subj)
    # an attributive adjective most of the time: without one this template has
    # only ~1,300 distinct sentences and would mostly repeat itself
    subj_adj = _pick_adj(rng, subj, avoid_group=adj.group) if rng.random() < 0.85 else None
    return _sentence(_predicate(subj, subj_adj, adj), ".")


def _gen_very(rng: random.Random) -> dict[str, str]:
    subj = _pick(rng, _NOUNS)
    adj = _pick_adj(rng, subj, choices=_GRADABLE_FOR_KIND)
    subj_adj = _pick_adj(rng, subj, avoid_group=adj.group) if rng.random() < 0.5 else None
    return _sentence(_predicate(subj, subj_adj, adj, very=True), "!")


def _gen_location(rng: random.Random) -> dict[str, str]:
    subj = _pick(rng, _LOCATABLE)
    return _sentence(_location(subj, _maybe_adj(rng, subj, 0.85), _pick(rng, _IN_PLACES)), ".")


def _gen_where(rng: random.Random) -> dict[str, str]:
    subj = _pick(rng, _NOUNS)
    return _sentence(_where(subj, _maybe_adj(rng, subj, 0.5)), "?")


def _gen_predicate_question(rng: random.Random) -> dict[str, str]:
    subj = _pick(rng, _NOUNS)
    adj = _pick_adj(rng, subj)
    subj_adj = _pick_adj(rng, subj, avoid_group=adj.group) if rng.random() < 0.5 else None
    return _sentence(_predicate_question(subj, subj_adj, adj), "?")


def _gen_location_question(rng: random.Random) -> dict[str, str]:
    subj = _pick(rng, _LOCATABLE)
    return _sentence(_location_question(subj, _maybe_adj(rng, subj, 0.5), _pick(rng, _IN_PLACES)), "?")


def _gen_clause_question(rng: random.Random) -> dict[str, str]:
    subj, verb, obj = _pick_svo(rng, _VERBS, _VERB_WEIGHTS, _OBJECTS)
    return _sentence(_clause_question(subj, _maybe_adj(rng, subj, 0.3), verb, obj, _maybe_adj(rng, obj, 0.3)), "?")


def _gen_noun_chat(rng: random.Random) -> dict[str, str]:
    build, objects, end = _pick(rng, _NOUN_CHAT)
    obj = _pick(rng, objects)
    return _sentence(build(obj, _maybe_adj(rng, obj, 0.3)), end)


def _gen_chat(rng: random.Random) -> dict[str, str]:
    return _chat(_pick(rng, _CHAT_PHRASES))


_GRADABLE_FOR_KIND: dict[str, tuple[_Adj, ...]] = {
    kind: tuple(a for a in adjs if a.group not in _UNGRADABLE_GROUPS) for kind, adjs in _ADJS_FOR_KIND.items()
}
_NOUN_CHAT = (
    (_thanks_for, tuple(n for n in _NOUNS if n.kind in "fdt"), "!"),
    (_looking_for, _OBJECTS["looks for"], "."),
    (_do_you_have, _OBJECTS["has"], "?"),
)

# Shares are set by how much each form takes to learn, not by how common it is in chat. The
# fixed chat phrases must each be seen often enough, in every style and source language, to be
# learned by heart; "does the S V the O?" needs English infinitives (rare tokens: "feed" is not
# "feeds") and German verb-first order: it was the last template the models got right.
_TEMPLATES = (
    (0.11, _gen_svo),
    (0.11, _gen_adj_svo),
    (0.11, _gen_svo_adj),
    (0.11, _gen_adj_svo_adj),
    (0.12, _gen_svo_place),
    (0.06, _gen_predicate),
    (0.06, _gen_location),
    (0.03, _gen_very),
    (0.03, _gen_where),
    (0.03, _gen_predicate_question),
    (0.03, _gen_location_question),
    (0.09, _gen_clause_question),
    (0.05, _gen_noun_chat),
    (0.06, _gen_chat),
)
_TEMPLATE_WEIGHTS: list[float] = list(accumulate(weight for weight, _ in _TEMPLATES))
_GENERATORS = tuple(gen for _, gen in _TEMPLATES)


def generate_corpus(size: int, seed: int = 0) -> list[dict[str, str]]:
    """`size` parallel sentences, each {"en": ..., "fr": ..., "es": ..., "de": ...}, in mixed styles.

    Deterministic for a given (size, seed); a private random.Random keeps it
    independent of any other use of the random module.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        written = _pick_weighted(rng, _GENERATORS, _TEMPLATE_WEIGHTS)(rng)
        rows.append(restyle(written, _pick_weighted(rng, STYLES, _STYLE_WEIGHTS)))
    return rows


# Hand-checked sentences covering every template and style; each is also what the grammar
# renders for the same word choice (tests/modelbuild/test_corpus.py checks both).
SAMPLE_SENTENCES: list[dict[str, str]] = [
    {"en": "The cat sees the dog.", "fr": "Le chat voit le chien.",
     "es": "El gato ve al perro.", "de": "Die Katze sieht den Hund."},
    {"en": "The farmer feeds the cow.", "fr": "Le fermier nourrit la vache.",
     "es": "El granjero alimenta a la vaca.", "de": "Der Bauer füttert die Kuh."},
    {"en": "The queen calls the boy.", "fr": "La reine appelle le garçon.",
     "es": "La reina llama al niño.", "de": "Die Königin ruft den Jungen."},
    {"en": "The big dog eats the bread.", "fr": "Le grand chien mange le pain.",
     "es": "El perro grande come el pan.", "de": "Der große Hund frisst das Brot."},
    {"en": "The woman sees the black cat.", "fr": "La femme voit le chat noir.",
     "es": "La mujer ve al gato negro.", "de": "Die Frau sieht die schwarze Katze."},
    {"en": "The boy reads the new book.", "fr": "Le garçon lit le nouveau livre.",
     "es": "El niño lee el libro nuevo.", "de": "Der Junge liest das neue Buch."},
    {"en": "the small girl loves the old horse.", "fr": "la petite fille aime le vieux cheval.",
     "es": "la niña pequeña ama al caballo viejo.", "de": "das kleine mädchen liebt das alte pferd."},
    {"en": "the white cat drinks the cold milk", "fr": "le chat blanc boit le lait froid",
     "es": "el gato blanco bebe la leche fría", "de": "die weiße katze trinkt die kalte milch"},
    {"en": "The mother cooks the soup in the kitchen", "fr": "La mère cuisine la soupe dans la cuisine",
     "es": "La madre cocina la sopa en la cocina", "de": "Die Mutter kocht die Suppe in der Küche"},
    {"en": "The house is big.", "fr": "La maison est grande.",
     "es": "La casa es grande.", "de": "Das Haus ist groß."},
    {"en": "The old car is broken.", "fr": "La vieille voiture est cassée.",
     "es": "El coche viejo está roto.", "de": "Das alte Auto ist kaputt."},
    {"en": "The cat is in the garden.", "fr": "Le chat est dans le jardin.",
     "es": "El gato está en el jardín.", "de": "Die Katze ist im Garten."},
    {"en": "The soup is very hot!", "fr": "La soupe est très chaude !",
     "es": "¡La sopa está muy caliente!", "de": "Die Suppe ist sehr heiß!"},
    {"en": "Where is the station?", "fr": "Où est la gare ?",
     "es": "¿Dónde está la estación?", "de": "Wo ist der Bahnhof?"},
    {"en": "Is the house big?", "fr": "Est-ce que la maison est grande ?",
     "es": "¿La casa es grande?", "de": "Ist das Haus groß?"},
    {"en": "Is the dog in the garden?", "fr": "Est-ce que le chien est dans le jardin ?",
     "es": "¿El perro está en el jardín?", "de": "Ist der Hund im Garten?"},
    {"en": "Does the boy have the book?", "fr": "Est-ce que le garçon a le livre ?",
     "es": "¿El niño tiene el libro?", "de": "Hat der Junge das Buch?"},
    {"en": "Thank you for the cake!", "fr": "Merci pour le gâteau !",
     "es": "¡Gracias por el pastel!", "de": "Danke für den Kuchen!"},
    {"en": "I am looking for the dog.", "fr": "Je cherche le chien.",
     "es": "Busco al perro.", "de": "Ich suche den Hund."},
    {"en": "Do you have the key?", "fr": "Est-ce que tu as la clé ?",
     "es": "¿Tienes la llave?", "de": "Hast du den Schlüssel?"},
    {"en": "Hello!", "fr": "Salut !", "es": "¡Hola!", "de": "Hallo!"},
    {"en": "How are you?", "fr": "Comment ça va ?", "es": "¿Cómo estás?", "de": "Wie geht es dir?"},
    {"en": "Thank you very much!", "fr": "Merci beaucoup !", "es": "¡Muchas gracias!", "de": "Vielen Dank!"},
    {"en": "see you tomorrow.", "fr": "à demain.", "es": "hasta mañana.", "de": "bis morgen."},
]
