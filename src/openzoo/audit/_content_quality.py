"""Hand-written multiple-choice material (CC-BY-4.0, openzoo authors), expanded by ``datagen.py``.

Items follow the ARC / lm-eval multiple-choice design (Clark et al., 2018; Gao et al., lm-evaluation-
harness): a question, a list of answer strings and the index of the right one. Arithmetic and the short
reading passages are generated from templates (like bAbI, Weston et al., 2015) with a fixed seed; the
knowledge and common-sense questions are written one by one. The gold answer is always listed first
here; ``datagen.py`` shuffles the choices with a fixed seed.
"""

from __future__ import annotations

# (question, [gold, distractor, distractor, distractor])
GENERAL_KNOWLEDGE: list[tuple[str, list[str]]] = [
    ("What is the largest planet in the solar system?", ["Jupiter", "Mars", "Venus", "Mercury"]),
    (
        "Which gas do plants take in from the air to make food?",
        ["carbon dioxide", "oxygen", "helium", "neon"],
    ),
    ("At sea level, water boils at what temperature in degrees Celsius?", ["100", "50", "0", "212"]),
    ("How many continents are there on Earth?", ["seven", "five", "nine", "twelve"]),
    (
        "Which organ pumps blood around the human body?",
        ["the heart", "the liver", "the lungs", "the stomach"],
    ),
    ("What is the chemical symbol for gold?", ["Au", "Ag", "Gd", "Go"]),
    ("Which planet is known as the Red Planet?", ["Mars", "Saturn", "Neptune", "Uranus"]),
    ("What is the capital city of Japan?", ["Tokyo", "Osaka", "Kyoto", "Seoul"]),
    ("What is the capital city of Canada?", ["Ottawa", "Toronto", "Vancouver", "Montreal"]),
    ("What is the capital city of Australia?", ["Canberra", "Sydney", "Melbourne", "Perth"]),
    ("What is the capital city of Kenya?", ["Nairobi", "Mombasa", "Lagos", "Addis Ababa"]),
    ("What is the capital city of Brazil?", ["Brasilia", "Rio de Janeiro", "Sao Paulo", "Lima"]),
    ("Which is the longest river in South America?", ["the Amazon", "the Nile", "the Danube", "the Thames"]),
    ("How many legs does a spider have?", ["eight", "six", "ten", "four"]),
    ("How many legs does an insect have?", ["six", "eight", "four", "ten"]),
    ("What do bees make?", ["honey", "silk", "milk", "wax paper"]),
    ("Which animal is the largest mammal?", ["the blue whale", "the elephant", "the giraffe", "the hippo"]),
    ("What is frozen water called?", ["ice", "steam", "fog", "dew"]),
    ("Which star is closest to the Earth?", ["the Sun", "Sirius", "Polaris", "Vega"]),
    ("What force keeps us on the ground?", ["gravity", "magnetism", "friction", "electricity"]),
    ("Which instrument has black and white keys?", ["the piano", "the violin", "the trumpet", "the drum"]),
    (
        "Who wrote the play Romeo and Juliet?",
        ["William Shakespeare", "Charles Dickens", "Jane Austen", "Mark Twain"],
    ),
    ("Which metal is liquid at room temperature?", ["mercury", "iron", "copper", "aluminium"]),
    ("What is the main language spoken in Brazil?", ["Portuguese", "Spanish", "French", "Italian"]),
    ("How many days are there in a leap year?", ["366", "365", "364", "360"]),
    ("Which ocean is the largest?", ["the Pacific", "the Atlantic", "the Indian", "the Arctic"]),
    (
        "What part of the plant absorbs water from the soil?",
        ["the roots", "the flowers", "the leaves", "the seeds"],
    ),
    ("What do caterpillars turn into?", ["butterflies", "beetles", "spiders", "worms"]),
    ("Which body part do we use to smell?", ["the nose", "the ears", "the elbows", "the knees"]),
    ("What is the hardest natural material?", ["diamond", "gold", "granite", "glass"]),
    ("Which continent is Egypt in?", ["Africa", "Asia", "Europe", "South America"]),
    (
        "Which scientist proposed the theory of relativity?",
        ["Albert Einstein", "Isaac Newton", "Charles Darwin", "Louis Pasteur"],
    ),
    ("What is the opposite of north on a compass?", ["south", "east", "west", "up"]),
    ("What colour do you get by mixing blue and yellow paint?", ["green", "purple", "orange", "pink"]),
    ("What colour do you get by mixing red and white paint?", ["pink", "green", "blue", "brown"]),
    ("How many sides does a hexagon have?", ["six", "five", "seven", "eight"]),
    ("How many sides does a triangle have?", ["three", "four", "five", "six"]),
    ("Which month comes after March?", ["April", "February", "May", "June"]),
    ("Which day comes after Friday?", ["Saturday", "Thursday", "Sunday", "Monday"]),
    ("What is the boiling point of water in degrees Fahrenheit at sea level?", ["212", "100", "32", "180"]),
    ("What do we call a baby cat?", ["a kitten", "a puppy", "a calf", "a foal"]),
    ("What do we call a baby dog?", ["a puppy", "a kitten", "a lamb", "a chick"]),
    ("What do we call a baby sheep?", ["a lamb", "a kid", "a cub", "a piglet"]),
    ("Which vitamin does the skin make in sunlight?", ["vitamin D", "vitamin C", "vitamin A", "vitamin K"]),
    ("What is the freezing point of water in degrees Celsius?", ["0", "10", "-10", "32"]),
    ("Which planet has the most famous rings?", ["Saturn", "Mercury", "Mars", "Venus"]),
    (
        "What is the primary source of energy for the Earth's climate?",
        ["the Sun", "the Moon", "volcanoes", "the tides"],
    ),
    ("Which blood cells carry oxygen?", ["red blood cells", "white blood cells", "platelets", "nerve cells"]),
    ("What shape is a stop sign in most countries?", ["an octagon", "a circle", "a triangle", "a square"]),
    ("Which tool is used to measure temperature?", ["a thermometer", "a barometer", "a ruler", "a compass"]),
]

COMMON_SENSE: list[tuple[str, list[str]]] = [
    ("If you are cold, what should you put on?", ["a warm coat", "sunglasses", "sandals", "a swimsuit"]),
    (
        "Where do people usually keep milk to stop it going bad?",
        ["in the fridge", "in the oven", "on the roof", "in the bath"],
    ),
    ("What do you use to cut paper?", ["scissors", "a spoon", "a pillow", "a towel"]),
    (
        "If it is raining and you must go outside, what should you take?",
        ["an umbrella", "a kite", "a candle", "a fan"],
    ),
    (
        "What do you do when you are thirsty?",
        ["drink water", "go to sleep", "read a book", "sharpen a pencil"],
    ),
    (
        "Where would you go to borrow a book for free?",
        ["a library", "a bakery", "a petrol station", "a garage"],
    ),
    (
        "What should you do before crossing a busy road?",
        ["look both ways", "close your eyes", "run without looking", "lie down"],
    ),
    (
        "Why do people wear seat belts in cars?",
        ["to stay safe in a crash", "to keep warm", "to drive faster", "to look taller"],
    ),
    (
        "What happens to ice cream left in the sun?",
        ["it melts", "it freezes harder", "it turns into bread", "it grows"],
    ),
    (
        "If a glass falls onto a stone floor, what will most likely happen?",
        [
            "it will break",
            "it will bounce to the ceiling",
            "it will turn into water",
            "it will start singing",
        ],
    ),
    ("What do you need to light a dark room at night?", ["a lamp", "a spoon", "a blanket", "a sandwich"]),
    ("Where do fish live?", ["in water", "in trees", "in deserts", "in clouds"]),
    ("What do you usually do with a bed?", ["sleep in it", "cook in it", "drive it", "plant it"]),
    (
        "Why do people brush their teeth?",
        ["to keep them clean", "to make them longer", "to change their colour to blue", "to make them grow"],
    ),
    (
        "When you are tired at night, what do you usually do?",
        ["go to bed", "start running", "paint the house", "wash the car"],
    ),
    (
        "What would you use to dig a hole in the garden?",
        ["a shovel", "a fork and knife", "a toothbrush", "a comb"],
    ),
    (
        "Which is heavier, a car or a feather?",
        ["a car", "a feather", "they weigh the same", "neither has weight"],
    ),
    (
        "If you drop a ball, which way does it fall?",
        ["down", "up", "sideways forever", "it stays in the air"],
    ),
    ("What do people usually eat soup with?", ["a spoon", "a fork", "a hammer", "chopsticks only"]),
    (
        "Where would you most likely see a doctor?",
        ["at a hospital", "at a car wash", "at a cinema", "at a zoo"],
    ),
    (
        "If your phone battery is empty, what should you do?",
        ["charge it", "freeze it", "wash it", "paint it"],
    ),
    ("What do you wear on your feet to go for a run?", ["trainers", "gloves", "a hat", "a scarf"]),
    ("Why do we put food in the oven?", ["to cook it", "to cool it down", "to wash it", "to hide it"]),
    (
        "What should you do if you see a fire in a building?",
        [
            "leave and call the fire service",
            "open all the windows and stay",
            "go back to sleep",
            "throw paper on it",
        ],
    ),
    ("What do plants need to grow besides water?", ["sunlight", "darkness only", "salt water", "loud music"]),
    (
        "Which season usually has the shortest days in northern countries?",
        ["winter", "summer", "spring", "autumn"],
    ),
    ("What do you use a key for?", ["to open a lock", "to eat soup", "to write a letter", "to comb hair"]),
    ("If you want to know the time, what do you look at?", ["a clock", "a plate", "a carpet", "a shoe"]),
    (
        "What happens when you mix sugar into hot tea and stir?",
        ["the sugar dissolves", "the tea turns into ice", "the cup gets bigger", "the sugar turns into salt"],
    ),
    (
        "Why would someone carry a map on a hike?",
        ["to find the way", "to keep dry", "to cook food", "to light a fire"],
    ),
]

# (word, opposite): distractors are the opposites of other entries.
ANTONYMS: list[tuple[str, str]] = [
    ("hot", "cold"),
    ("tall", "short"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("light", "dark"),
    ("open", "closed"),
    ("full", "empty"),
    ("early", "late"),
    ("strong", "weak"),
    ("rich", "poor"),
    ("wet", "dry"),
    ("loud", "quiet"),
    ("hard", "soft"),
    ("young", "old"),
    ("clean", "dirty"),
    ("heavy", "light"),
    ("thick", "thin"),
    ("inside", "outside"),
    ("above", "below"),
    ("first", "last"),
    ("brave", "cowardly"),
    ("cheap", "expensive"),
    ("sweet", "sour"),
    ("win", "lose"),
    ("buy", "sell"),
    ("push", "pull"),
    ("arrive", "leave"),
    ("remember", "forget"),
    ("accept", "refuse"),
    ("ancient", "modern"),
]

# (category, members, non-members): "Which of these is a ...?" items.
CATEGORIES: list[tuple[str, list[str], list[str]]] = [
    (
        "fruit",
        ["an apple", "a banana", "a cherry", "a mango", "a pear", "a plum"],
        ["a carrot", "a brick", "a hammer", "a shoe", "a cloud", "a pencil", "a potato", "a spoon"],
    ),
    (
        "mammal",
        ["a horse", "a dolphin", "a bat", "a rabbit", "a whale", "a cow"],
        ["a trout", "a parrot", "a frog", "a snake", "a beetle", "a shark", "a lizard", "an ant"],
    ),
    (
        "musical instrument",
        ["a violin", "a flute", "a guitar", "a cello", "a trumpet", "a harp"],
        ["a kettle", "a ladder", "a towel", "a lamp", "a wallet", "a chair", "a broom", "a sock"],
    ),
    (
        "vegetable",
        ["a carrot", "a cabbage", "an onion", "a leek", "a turnip", "a pea"],
        ["a strawberry", "a stone", "a coin", "a button", "a kite", "a mirror", "a pillow", "a glove"],
    ),
    (
        "means of transport",
        ["a bicycle", "a train", "a bus", "a ferry", "a tram", "a plane"],
        ["a teapot", "a sofa", "a carpet", "a candle", "a notebook", "a sandwich", "a bucket", "a hat"],
    ),
]

NAMES: list[str] = ["Maria", "John", "Aisha", "Kenji", "Sofia", "Daniel", "Lena", "Omar", "Priya", "Tom"]
OBJECTS: list[str] = ["keys", "book", "umbrella", "phone", "wallet", "scarf", "camera", "ticket"]
PLACES: list[str] = [
    "the kitchen",
    "the garden",
    "the office",
    "the hallway",
    "the garage",
    "the bedroom",
    "the attic",
    "the cellar",
]
