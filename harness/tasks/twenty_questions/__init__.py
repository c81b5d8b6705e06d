"""Twenty Questions (LMRL-Gym §5.1): find the everyday object the oracle thinks of with yes/no questions.

**Objects.** 158 everyday objects in the paper's 17 categories (Sports 10, Animals 10, Fruits 10,
Vehicles 10, Clothes 11, Electronics 10, Musical Instruments 10, Furniture 10, Office Supplies 14,
Vegetables 10, Art 7, Kitchen Tools 10, Nature 11, Toys 5, Jewelry 9, Garden Supplies 5, Tools 6),
our own list, in ``data/twenty_questions_objects.json``: a knowledge base (KB) giving every object
its accepted variants ("TV" for "Television") and attributes (category, size, materials, where it is
found, uses, colors, counts of legs and wheels, body parts it is worn on, and boolean traits such as
alive, edible, man-made, electric, worn). The file is validated when the package loads
(``knowledge.py``).

**Secret.** Option ``secret``: ``"index"`` (default) plays ``OBJECTS[secret_index(index)]``, a seeded
stratified permutation (``lmrl.sampling``): any first N episodes cover the categories in proportion
(the first 17 hit all 17), and ``--episodes 158`` still sweeps every object once (the paper's
"deterministic mode"); ``"random"`` draws it with the episode's RNG; an object's name
(or variant) fixes it for every episode.

**Rules.**

* Each agent action is one yes/no question, read by ``lmrl.parsing.read_action`` (markers
  ``Question:``, ``Guess:``, ``Action:``). A candidate question is a sentence ending in "?" of at most
  ``MAX_QUESTION_CHARS`` characters, or what follows a marker ("Guess: a basketball"), or a reply that
  is one sentence starting like a question ("Is it an animal"). The canonical action is the sentence
  without markdown or quotes, ending in one "?". "No.", a statement or a bare word without a marker
  is ``not-a-question``; two different questions without a marker are ``ambiguous``; replies over
  ``MAX_REPLY_CHARS`` are ``too-long``. The kb-oracle answers ``Yes.``, ``No.`` or ``I'm not sure.``.
* Reward -1 per question; 0 for the question that names the secret object (or a variant) and is
  answered ``Yes.``: the episode ends with success. After 20 questions it ends anyway, so returns
  lie in [-20, 0]. An empty or unparsable output is invalid: it still costs -1 and uses up a
  question, is answered ``No.`` without consulting the oracle (as the paper's "invalid question"
  sentinel was), and leaves the range unchanged.
* **Correct guess** (``is_correct_guess``, a rule judge needing no NLP data): after case, articles,
  punctuation and a guess frame ("Is it", "Is the object", "Could it be", "My guess is", "Are you
  thinking of", ...) and counters ("a pair of", "a kind of") are removed, what remains must be the
  object's name or a variant, up to a simple plural and spacing ("Is it a basketball?", "Is the
  object a TV?", "basketball?", "Is it a pair of shoes?"). Near-misses are rejected: a more general
  or a longer noun phrase ("Is it a ball?", "Is it a basketball court?") or the name inside another
  predicate ("Is it used in basketball?", "Is it bigger than a basketball?"). As in the paper,
  success needs the rule judge's match **and** a ``Yes.`` from the oracle: a model oracle that says
  ``No.`` to a correct guess denies the success (the built-in oracle always says ``Yes.`` to it).

**Oracle** (role ``oracle``, default ``scripted/kb-oracle``):

* ``kb-oracle`` (``oracle.py``; the interpreter in ``questions.py``) maps the question to KB attributes with
  keyword patterns (categories, traits, materials, places, uses, colors, body parts, legs and wheels,
  object names; "bigger / heavier / taller than <anything>" from typical sizes and weights in
  ``data/twenty_questions_sizes.json``; "and" joins, "or" splits, "not" negates) and answers from the
  facts. A question with words it does not cover, a comparison with something it does not know, or
  two things of about the same size get ``I'm not sure.`` (unlike the paper's oracle, which said
  ``No.``: a guess passed off as an answer misleads the agent) and are flagged: turn info
  ``oracle_mapped: False``; mapped turns carry ``oracle_mapped: True`` and ``attribute`` (what was
  checked). Every turn's info has ``answer``, ``question``, ``guess`` (the KB object the question
  names, if any) and ``correct_guess``; ``episode_info`` counts the unmapped questions (coverage).
* A model in the role gets ``oracle_messages``: a system prompt naming the object and demanding
  exactly "Yes." or "No.", and the question. Its reply is read by ``parse_oracle_reply`` (yes/no at
  the start, "Yes, it is", "Nope", "Definitely not", ...); anything else counts as ``No.`` and is
  flagged ``oracle_parse_failed``. Turn info then also has the raw reply and ``kb_answer`` (what the
  KB would have said, ``None`` when unmapped) for faithfulness reports.
* ``step`` (sync) always uses the KB oracle and refuses when a model oracle is attached; the runner
  calls ``astep``, which asks whoever fills the role.

**Renderings.** ``chat``: a system prompt with the rules, the categories and the answer format, the
intro, then questions and answers as turns. ``text`` (the paper's format): ``Questions:``, then one
question and one answer per line (the intro is left out). When the questions run out, the final
observation also names the object (never shown to the agent; it lets judges read the transcript).

**Scripted policies.** ``random`` (generic questions from ``QUESTION_BANK`` mixed with random
guesses), ``behavior`` (the dataset-generating questioner: keeps the objects consistent with the
answers, asks the best-splitting bank question with probability ``BEHAVIOR_SMART_P`` and otherwise a
random one, and guesses a random remaining candidate when few remain; tuned against the kb-oracle to
the paper's dataset success rate 0.31), ``optimal`` (always the best split, guessing when at most 2
candidates remain; an upper reference) and ``kb-oracle`` (the oracle role's policy).
``measure_policy`` reproduces the tuning numbers; against the kb-oracle, 158 x 2 episodes, seeds 0-9:

=========  =======  ===========  ===========
policy     success  mean return  mean length
=========  =======  ===========  ===========
behavior   0.30     -17.9        18.2
optimal    1.00     -7.3         8.3
random     0.03     -19.7        19.8
=========  =======  ===========  ===========

The paper's dataset reports success 0.31, mean return -17.3 and mean length 14.9; under a 20-question
cap these cannot all hold (failures alone contribute 0.69 x 20 = 13.8 to the mean length, and a mean
return of -17.3 implies successes after ~12 questions, i.e. a mean length near 17.6), so the behavior
policy matches the success rate. ``optimal`` beats the paper's max anchor (-12.6) by far because the
kb-oracle never errs on its own bank questions. The oracle's measurements: ``oracle_accuracy`` (hand
labels, ``tests/data/twenty_questions_oracle_labels.jsonl``) and ``behaviour_unmapped_share``.

**Layout.** ``env.py`` the environment and the question reader (on ``lmrl.tasks.question_game``, the
skeleton shared with Guess My City), ``knowledge.py`` the data files' loaders, schema checks and guess
detection, ``questions.py`` the question interpreter, ``oracle.py`` the kb-oracle and the model-oracle
prompt and reply reading, ``policies.py`` the scripted players.
"""

from lmrl.tasks.question_game import (
    DATA_DIR,
    MAX_QUESTION_CHARS,
    MAX_QUESTIONS,
    MAX_REPLY_CHARS,
    KnowledgeBaseError,
)
from lmrl.tasks.twenty_questions.env import (
    CATEGORIES,
    INTRO,
    KB_ORACLE,
    PAPER_CATEGORY_COUNTS,
    TwentyQuestions,
    behaviour_unmapped_share,
    measure_policy,
    parse_question,
    secret_index,
)
from lmrl.tasks.twenty_questions.knowledge import (
    DATA_PATH,
    KB,
    OBJECTS,
    SIZES,
    KBObject,
    KnowledgeBase,
    find_object,
    guess_phrase,
    guess_target,
    is_correct_guess,
    load_knowledge_base,
    load_question_bank,
    load_sizes,
    load_vocabulary,
    normalize,
)
from lmrl.tasks.twenty_questions.oracle import (
    NO,
    NOT_SURE,
    RUBRIC_ORACLE_FAITHFULNESS,
    YES,
    OracleAnswer,
    kb_answer,
    oracle_accuracy,
    oracle_messages,
    parse_oracle_reply,
    yes_mask,
)
from lmrl.tasks.twenty_questions.policies import (
    BEHAVIOR_GUESS_AT,
    BEHAVIOR_RANDOM_GUESS_P,
    BEHAVIOR_SMART_P,
    OPTIMAL_GUESS_AT,
    QUESTION_BANK,
    RANDOM_GUESS_P,
    behavior_policy,
    best_question,
    candidate_mask,
    kb_oracle_policy,
    optimal_policy,
    random_policy,
)
from lmrl.tasks.twenty_questions.questions import (
    MEASURES,
    SIZE_MARGIN,
    TRAIT_PATTERNS,
    Interpretation,
    interpret,
)

__all__ = [
    "BEHAVIOR_GUESS_AT",
    "BEHAVIOR_RANDOM_GUESS_P",
    "BEHAVIOR_SMART_P",
    "CATEGORIES",
    "DATA_DIR",
    "DATA_PATH",
    "INTRO",
    "Interpretation",
    "KB",
    "KBObject",
    "KB_ORACLE",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "MAX_QUESTIONS",
    "MAX_QUESTION_CHARS",
    "MAX_REPLY_CHARS",
    "MEASURES",
    "NO",
    "NOT_SURE",
    "OBJECTS",
    "OPTIMAL_GUESS_AT",
    "OracleAnswer",
    "PAPER_CATEGORY_COUNTS",
    "QUESTION_BANK",
    "RANDOM_GUESS_P",
    "RUBRIC_ORACLE_FAITHFULNESS",
    "SIZES",
    "SIZE_MARGIN",
    "TRAIT_PATTERNS",
    "TwentyQuestions",
    "YES",
    "behavior_policy",
    "behaviour_unmapped_share",
    "best_question",
    "candidate_mask",
    "find_object",
    "guess_phrase",
    "guess_target",
    "interpret",
    "is_correct_guess",
    "kb_answer",
    "kb_oracle_policy",
    "load_knowledge_base",
    "load_question_bank",
    "load_sizes",
    "load_vocabulary",
    "measure_policy",
    "normalize",
    "optimal_policy",
    "oracle_accuracy",
    "oracle_messages",
    "parse_oracle_reply",
    "parse_question",
    "random_policy",
    "secret_index",
    "yes_mask",
]
