"""Guess My City: knowledge base, guess detection, leakage rule, built-in oracle, rewards, policies, and
full episodes through the runner with the built-in oracle and with a model oracle over HTTP."""

from __future__ import annotations

import json
import random
import re
import statistics
import uuid
from collections import Counter
from pathlib import Path

import pytest
from policy_play import play

from lmrl.agents import AgentOptions
from lmrl.parsing import Invalid
from lmrl.rundir import load_episodes
from lmrl.runner import RunConfig, Runner
from lmrl.task import InvalidTaskOption, Segment, action_of
from lmrl.tasks import make_task, task_class
from lmrl.tasks.guess_my_city import (
    ATTRIBUTE_QUESTIONS,
    CHAT_QUESTIONS,
    CITIES,
    CITY_INDEX,
    CLIMATES,
    DATA_PATH,
    INTRO,
    MAX_QUESTIONS,
    RUBRIC_ORACLE_FAITHFULNESS,
    UNMAPPED_REPLY,
    GuessMyCity,
    KnowledgeBaseError,
    behaviour_unsure_share,
    candidates,
    city_for_episode,
    episode_of_city,
    is_correct_guess,
    leak_judge_rule,
    leaked_names,
    load_cities,
    load_labels,
    normalize,
    oracle_accuracy,
    oracle_answer,
    oracle_messages,
    parse_question,
    redact,
)

TASK = "guess-my-city"
LABELS = Path(__file__).parent / "data" / "guess_city_oracle_labels.jsonl"
OPEN_QUESTIONS = (
    "Which country are you from?",
    "What city are you from?",
    "Where is it?",
    "Which hemisphere is it in?",
    "Is it a megacity?",
    "Is it hot there?",
    "Is it cold in winter?",
    "Is it in a desert?",
    "Is it tropical?",
    "What is the capital of your country?",
    "Is it a state capital?",
    "Is it in Europe or Asia?",
    "Are you from Osaka?",
    "What is your favourite food?",
    "Tell me about a famous building.",
)


def city(name: str):
    return CITIES[CITY_INDEX[name]]


# --- knowledge base ------------------------------------------------------------------------------
def test_knowledge_base_is_complete_and_consistent() -> None:
    assert len(CITIES) == 100
    assert [c.rank for c in CITIES] == list(range(1, 101))
    populations = [c.population for c in CITIES]
    assert populations == sorted(populations, reverse=True)  # population order = sweep order
    keys = [key for c in CITIES for key in {normalize(n) for n in c.names}]
    assert len(keys) == len(set(keys)), "two cities share a name"
    continents = {"Asia", "Africa", "Europe", "North America", "South America", "Oceania"}
    for c in CITIES:
        assert c.name and c.country and c.area
        assert set(c.continents) <= continents and c.continents
        assert c.climate in CLIMATES
        assert -90 <= c.latitude <= 90 and -180 <= c.longitude <= 180
        assert c.population > 3_000_000
        assert c.languages and all(c.languages)
        assert len(c.landmarks) == 2 and len(c.dishes) == 2  # the oracle alternates between them
        assert isinstance(c.capital, bool) and isinstance(c.coastal, bool) and isinstance(c.snow, bool)
    assert {"Tokyo", "Mumbai", "New York City", "São Paulo", "Saint Petersburg"} <= set(CITY_INDEX)


def test_facts_never_name_their_city_or_country() -> None:
    for c in CITIES:
        extra = (*c.sports, c.teams or "", c.industry, c.history, c.festival, str(c.river or ""))
        for fact in (*c.landmarks, *c.dishes, *c.languages, c.area, *c.continents, *extra):
            assert leaked_names(fact, c) == [], (c.name, fact)


def test_registered() -> None:
    assert task_class(TASK) is GuessMyCity
    task = make_task(TASK)
    assert GuessMyCity.anchors.min == -20 and GuessMyCity.anchors.avg == -18.8
    assert GuessMyCity.anchors.max == -8.56
    assert GuessMyCity.reward_range == (-20.0, 0.0) and task.max_steps == MAX_QUESTIONS == 20
    assert GuessMyCity.roles == {"oracle": "scripted/city-oracle"}
    assert {"random", "behavior", "optimal", "city-oracle"} <= set(GuessMyCity.policies)
    assert task.options() == {"city_order": "sweep", "redact_leaks": True, "show_cities": True}


def test_options_are_validated() -> None:
    with pytest.raises(InvalidTaskOption):
        GuessMyCity(city_order="alphabetical")
    with pytest.raises(InvalidTaskOption):
        GuessMyCity(redact_leaks="maybe")
    with pytest.raises(InvalidTaskOption):
        GuessMyCity(colour="red")
    assert GuessMyCity(redact_leaks="false").redact_leaks is False


def test_city_order_sweep_and_random() -> None:
    task = GuessMyCity()
    assert task.reset(0, 0) == INTRO and task.city is CITIES[city_for_episode(0)]
    task.reset(5, 120)
    assert task.city is CITIES[city_for_episode(120)]
    assert {city_for_episode(i) for i in range(100)} == set(range(100))  # one pass plays every city
    assert city_for_episode(episode_of_city("Tokyo")) == CITY_INDEX["Tokyo"]
    drawn = GuessMyCity(city_order="random")
    picks = []
    for seed in range(30):
        drawn.reset(seed, 0)
        picks.append(drawn.city.name)
    assert len(set(picks)) > 10
    drawn.reset(7, 0)
    again = drawn.city
    drawn.reset(7, 3)
    assert drawn.city is again  # a pure function of the seed


# --- guesses -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "name"),
    [
        ("Is the city you are from Tokyo?", "Tokyo"),
        ("Is the city you're from Tokyo?", "Tokyo"),
        ("Is it Tokyo?", "Tokyo"),
        ("Are you from tokyo?", "Tokyo"),
        ("Do you live in Tokyo?", "Tokyo"),
        ("Is it in Tokyo?", "Tokyo"),
        ("Is it Tokyo, Japan?", "Tokyo"),
        ("Is it Tokyo city?", "Tokyo"),
        ("Is it Tokyo (Japan)?", "Tokyo"),
        ("My guess is Tokyo.", "Tokyo"),
        ("Tokyo?", "Tokyo"),
        ("Great, thanks! Is it Tokyo?", "Tokyo"),
        ("Is it Bombay?", "Mumbai"),
        ("Is the city you are from Calcutta?", "Kolkata"),
        ("Is it St. Petersburg?", "Saint Petersburg"),
        ("Is it St Petersburg?", "Saint Petersburg"),
        ("Is it NYC?", "New York City"),
        ("Are you from New York?", "New York City"),
        ("Is it Sao Paulo?", "São Paulo"),
        ("Is it São Paulo, Brazil?", "São Paulo"),
        ("Is it Saigon?", "Ho Chi Minh City"),
        ("Is it Xian?", "Xi'an"),
        ("Is it L.A.?", "Los Angeles"),
        ("Is it Mexico City?", "Mexico City"),
        ("Is it New Delhi?", "Delhi"),
        ("Is it Luliang?", "Lüliang"),
        ("Is it Shenzen?", "Shenzhen"),  # one typo in a long name
        ("Is it Nanjin?", "Nanjing"),
        ("Is it Singapore?", "Singapore"),
    ],
)
def test_correct_guesses_are_accepted(question: str, name: str) -> None:
    assert is_correct_guess(question, city(name))


@pytest.mark.parametrize(
    ("question", "name"),
    [
        ("Is it Kyoto?", "Tokyo"),
        ("Is it near Tokyo?", "Tokyo"),
        ("Is it bigger than Tokyo?", "Tokyo"),
        ("Is it in Tokyo prefecture?", "Tokyo"),
        ("Is it Tokyo or Osaka?", "Tokyo"),
        ("Is it Tokyo Tower?", "Tokyo"),
        ("Is it in Japan?", "Tokyo"),
        ("Is it in New York State?", "New York City"),
        ("Is it in Mexico?", "Mexico City"),
        ("Is it Nanning?", "Nanjing"),  # another city, one letter away
        ("Is it New Taipei?", "Taipei"),
        ("Is it Taipei?", "New Taipei City"),
        ("What is a famous landmark?", "Tokyo"),
        ("", "Tokyo"),
    ],
)
def test_near_misses_are_rejected(question: str, name: str) -> None:
    assert not is_correct_guess(question, city(name))


def test_every_name_guesses_its_own_city_only() -> None:
    for target in CITIES:
        for name in target.names:
            assert is_correct_guess(f"Is the city you are from {name}?", target), name
        question = f"Is the city you are from {target.name}?"
        assert sum(is_correct_guess(question, other) for other in CITIES) == 1, target.name


# --- leakage -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("I live in Tokyo.", "Tokyo", ["Tokyo"]),
        ("It is the capital of JAPAN.", "Tokyo", ["Japan"]),
        ("People speak Japanese there.", "Tokyo", []),  # demonyms and languages are not leaks
        ("It used to be called Edo.", "Tokyo", ["Edo"]),
        ("Welcome to NYC in the US!", "New York City", ["NYC", "US", "U.S."]),
        ("Tell us more, please.", "New York City", []),  # "us" is not "US"
        ("It was once Bombay.", "Mumbai", ["Bombay"]),
        (
            "I am from St Petersburg, Russia.",
            "Saint Petersburg",
            ["Saint Petersburg", "St. Petersburg", "Petersburg", "Russia"],
        ),
        ("The city is Sao Paulo.", "São Paulo", ["São Paulo", "Sao Paulo"]),
        ("It is in mainland China.", "Shanghai", ["China"]),
        ("People speak Mandarin Chinese.", "Shanghai", []),
        ("It is in Asia.", "Beijing", []),
        ("I love it here in LA.", "Los Angeles", ["LA", "L.A."]),
        ("la la la", "Los Angeles", []),
        ("Tokyo is far away.", "Yokohama", []),  # another city's name is no leak
    ],
)
def test_leaked_names(text: str, name: str, expected: list[str]) -> None:
    assert leaked_names(text, city(name)) == expected


def test_redaction_removes_every_name() -> None:
    tokyo = city("Tokyo")
    assert redact("I live in Tokyo, Japan.", tokyo) == "I live in [redacted], [redacted]."
    assert redact("No names here.", tokyo) == "No names here."
    ny = city("New York City")
    redacted = redact("Welcome to New York City in the U.S.A.!", ny)
    assert leaked_names(redacted, ny) == [] and "[redacted]" in redacted


def test_builtin_oracle_never_leaks() -> None:
    labelled = tuple(sorted({label["question"] for label in load_labels(LABELS)}))
    questions = ATTRIBUTE_QUESTIONS + CHAT_QUESTIONS + OPEN_QUESTIONS + labelled
    for c in CITIES:
        for question in questions:
            for turn in (0, 1):
                answer = oracle_answer(question, c, turn).text
                assert leaked_names(answer, c) == [], (c.name, question, answer)


def test_attribute_questions_get_yes_or_no() -> None:
    for c in CITIES:
        for question in ATTRIBUTE_QUESTIONS:
            answer = oracle_answer(question, c).text
            assert answer.startswith(("Yes", "No")), (c.name, question, answer)


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Is it in Asia?", "Yes, it is in Asia."),
        ("Is it in Europe?", "No, it is not in Europe."),
        ("Is it in Japan?", "Yes, it is in that country."),
        ("Is the country China?", "No, it is not in that country."),
        ("Is it in France?", "No, it is not in that country."),
        ("Is it in the Middle East?", "No, it is not in the Middle East."),
        ("Is it in Europe or Asia?", "It is in Asia."),
        ("Which continent is it on?", "It is in Asia."),
        (
            "Which country is it in?",
            "I can't tell you the country, but you can ask me yes-or-no questions about it.",
        ),
        ("Is it on the coast?", "Yes, it lies on the coast."),
        ("Is it a capital city?", "Yes, it is the capital of its country."),
        ("Is it in the southern hemisphere?", "No, it is north of the equator."),
        ("How many people live there?", "About 10 million people live there."),
        ("Do more than 5 million people live there?", "Yes, more than 5 million people live there."),
        ("Is the population over twelve million?", "No, fewer than 12 million people live there."),
        ("What language do people speak?", "Most people there speak Japanese."),
        ("Do people speak English there?", "No, English is not a main language there."),
        ("Does it snow in winter?", "No, it rarely snows."),
        ("Is the climate subtropical?", "Yes, the climate is subtropical."),
        ("What is a famous landmark?", "One famous sight there is Senso-ji temple in Asakusa."),
        ("What is a traditional dish?", "A local favourite is nigiri sushi."),
        ("Are you from Yokohama?", "No, that is not my city."),
        ("Is it Osaka?", "No, that is not my city."),
        ("Where is it?", "It is in East Asia."),
        ("Is it a port city?", "Yes, it is a port for sea-going ships."),
        ("Is it not in Asia?", "No, it is in Asia."),  # negated: literal answer, fact restated
        ("Isn't it in Europe?", "Yes, it is not in Europe."),
        ("Which river flows through it?", "It lies on the Sumida River."),
        ("Is there a famous baseball team?", "Yes: the baseball teams Yomiuri Giants and Yakult Swallows."),
    ],
)
def test_oracle_answers_for_tokyo(question: str, answer: str) -> None:
    reply = oracle_answer(question, city("Tokyo"))
    assert reply.text == answer and reply.mapped


def test_oracle_alternates_sights_and_flags_unknown_questions() -> None:
    tokyo = city("Tokyo")
    first = oracle_answer("What is a famous landmark?", tokyo, 0).text
    second = oracle_answer("What is a famous landmark?", tokyo, 1).text
    assert first != second and tokyo.landmarks[1] in second
    reply = oracle_answer("Are there mountains nearby?", tokyo)  # the data says null: not sure
    assert reply == type(reply)(UNMAPPED_REPLY, False)
    assert not oracle_answer("Who is the mayor?", tokyo).mapped


def test_model_oracle_prompt() -> None:
    tokyo = city("Tokyo")
    messages = oracle_messages(tokyo, [("Is it in Asia?", "Yes.")], "Is it big?")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    system = messages[0]["content"]
    assert "Tokyo" in system and "Japan" in system and "Never write the name" in system
    assert tokyo.landmarks[0] in system and messages[-1]["content"] == "Is it big?"
    assert "1 =" in RUBRIC_ORACLE_FAITHFULNESS and "5 =" in RUBRIC_ORACLE_FAITHFULNESS


# --- parsing and rendering -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Is it in Asia?", "Is it in Asia?"),
        ("I should narrow it down.\nQuestion: Is it in Europe?", "Is it in Europe?"),
        ("**Question:** Is it on the coast?", "Is it on the coast?"),
        ("Thanks! Is it in Asia?\n", "Is it in Asia?"),
        ("Let me think. Is it big?\nMaybe it is.", "Is it big?"),
        ("Is it St. Petersburg?", "Is it St. Petersburg?"),
        ("Guess: Tokyo", "Tokyo"),
        ("Is it in Asia?\nYes, it is.\nIs it Tokyo?", "Is it Tokyo?"),  # a text model running on
        ("Is it in Asia", "Is it in Asia?"),
        ("Question: is it in asia", "is it in asia?"),
        ('I will ask: "Is it in Asia?"', "Is it in Asia?"),
        ("Tell me about the food", "Tell me about the food"),
        ("", Invalid("empty")),
        ("   \n  ", Invalid("empty")),
        ("No.", Invalid("not-a-question")),
        ("I think it is in Asia.", Invalid("not-a-question")),
        ("Is it in Asia? Or is it in Europe?", Invalid("ambiguous")),
        ("Is it " + "very " * 80 + "big?", Invalid("too-long")),
    ],
)
def test_parse(raw: str, expected: str | Invalid) -> None:
    parsed = GuessMyCity().parse(raw)
    if isinstance(expected, Invalid):
        assert isinstance(parsed, Invalid) and parsed.reason == expected.reason, parsed
    else:
        assert parsed == expected == parse_question(raw)


def test_invalid_replies_cost_a_question() -> None:
    task = GuessMyCity()
    task.reset(0, 0)
    result = task.step(action_of(task.parse("No.")))
    assert result.invalid and result.reward == -1.0 and task.turn == 1


def test_system_prompt_states_the_format_and_its_examples_parse() -> None:
    task = GuessMyCity()
    prompt = task.system_prompt()
    assert task.final_line_instruction() in prompt and GuessMyCity.answer_example in prompt
    assert task.parse(GuessMyCity.answer_example) == "Is your city in Europe?"
    examples = re.findall(r'"([^"]+)"', prompt)
    assert len(examples) >= 3
    for example in examples:
        assert isinstance(task.parse(example), str), example
    assert is_correct_guess(task.parse('"Is the city you are from Lima?"'), city("Lima"))


def test_text_rendering_is_the_papers_format() -> None:
    task = GuessMyCity()
    first = task.reset(0, episode_of_city("Tokyo"))
    answer = task.step("Is it in Asia?").observation
    history = [
        Segment("observation", first),
        Segment("action", "Is it in Asia?"),
        Segment("observation", answer),
    ]
    assert task.render(history, "text") == f"Questions:\nIs it in Asia?\n{answer}\n"
    chat = task.render(history, "chat")
    assert chat[0]["role"] == "system" and "Question: Is your city in Europe?" in chat[0]["content"]
    assert "Tokyo (Japan)" in chat[0]["content"]  # show_cities lists the candidates
    assert chat[1] == {"role": "user", "content": INTRO}
    assert "Tokyo" not in GuessMyCity(show_cities=False).system_prompt()


# --- rewards -------------------------------------------------------------------------------------
def test_minus_one_per_question_zero_on_the_guess() -> None:
    task = GuessMyCity()
    task.reset(0, episode_of_city("Tokyo"))
    result = task.step("Is it in Asia?")
    assert (result.reward, result.done, result.invalid) == (-1.0, False, False)
    assert result.info["oracle_mapped"] and task.dialogue == [("Is it in Asia?", "Yes, it is in Asia.")]
    result = task.step("Is it Osaka?")
    assert result.reward == -1.0 and not result.done
    result = task.step("Is the city you are from Tokyo?")
    assert (result.reward, result.done) == (0.0, True) and task.success
    assert result.observation == "Yes! I am from Tokyo, Japan." and result.info["outcome"] == "correct"
    assert task.episode_info() == {
        "city": "Tokyo",
        "country": "Japan",
        "city_rank": CITY_INDEX["Tokyo"] + 1,
        "questions": 3,
        "leaks": 0,
        "unmapped": 0,
    }
    with pytest.raises(RuntimeError):
        task.step("Is it in Asia?")


def test_corrupted_city_entries_are_named_in_one_line(tmp_path) -> None:
    data_dir = Path(DATA_PATH).parent
    cities = json.loads(Path(DATA_PATH).read_text(encoding="utf-8"))
    extra = json.loads((data_dir / "cities_extra.json").read_text(encoding="utf-8"))

    def refused(match: str) -> None:
        (tmp_path / "cities.json").write_text(json.dumps(cities))
        (tmp_path / "extra.json").write_text(json.dumps(extra))
        with pytest.raises(KnowledgeBaseError, match=match) as caught:
            load_cities(tmp_path / "cities.json", tmp_path / "extra.json")
        assert "\n" not in str(caught.value)

    (tmp_path / "cities.json").write_text(json.dumps(cities))
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    assert load_cities(tmp_path / "cities.json", tmp_path / "extra.json")[0] == CITIES
    name = cities["cities"][7]["name"]
    cities["cities"][7]["population"] = "big"
    refused(rf"city '{name}': field 'population' must be int, not \"big\"")
    cities["cities"][7]["population"] = 1
    cities["cities"][7]["climate"] = "rainy"
    refused(rf"city '{name}': climate must be one of")
    cities["cities"][7]["climate"] = "arid"
    cities["cities"][7]["dishes"] = []
    refused(rf"city '{name}': field 'dishes' is empty")
    cities["cities"][7]["dishes"] = ["rice"]
    extra["cities"]["Tokyo"]["metro"] = "yes"
    refused(r"extra.json: city 'Tokyo': field 'metro' must be bool \| null")
    del extra["cities"]["Tokyo"]
    refused(r"extra.json: no entry for city 'Tokyo'")


def test_first_question_guess_returns_zero() -> None:
    task = GuessMyCity()
    task.reset(0, 0)
    result = task.step(f"Is it {CITIES[city_for_episode(0)].name}?")
    assert result.reward == 0.0 and result.done and task.success


def test_twenty_questions_cap_at_minus_twenty() -> None:
    task = GuessMyCity()
    task.reset(0, episode_of_city("Lima"))
    rewards = []
    for n in range(MAX_QUESTIONS):
        result = task.step(None if n == 3 else "Who is the mayor?")
        rewards.append(result.reward)
        if n == 3:
            assert result.invalid and result.reward == -1.0
    assert sum(rewards) == -20 == GuessMyCity.anchors.min and result.done and not task.success
    assert result.observation.endswith("That was your last question. I am from Lima, Peru.")
    assert result.info["outcome"] == "out_of_questions"
    assert task.episode_info()["unmapped"] == 19 and task.episode_info()["questions"] == 20


def test_success_does_not_depend_on_the_oracle() -> None:
    # Even if the oracle would say "No", a correct guess ends the episode: the env decides.
    task = GuessMyCity()
    task.reset(0, episode_of_city("Mumbai"))
    assert task.step("Are you from Bombay?").reward == 0.0 and task.success


# --- policies ------------------------------------------------------------------------------------
def test_candidates_follow_yes_no_answers() -> None:
    everyone = candidates([])
    assert len(everyone) == 100
    asia = candidates([("Is it in Asia?", "Yes, it is in Asia.")])
    assert asia and all("Asia" in CITIES[i].continents for i in asia)
    assert candidates([("Is it in Asia?", "Hmm, who knows.")]) == everyone  # unparsable: ignored
    assert candidates([("What is a famous landmark?", "No idea.")]) == everyone  # not a KB question
    wrong = candidates([("Is the city you are from Tokyo?", "No, that is not my city.")])
    assert CITY_INDEX["Tokyo"] not in wrong and len(wrong) == 99


def test_optimal_policy_beats_the_papers_max_anchor() -> None:
    task = GuessMyCity()
    returns = []
    for index in range(100):
        total, _ = play(task, "optimal", seed=index, index=index)
        assert task.success
        returns.append(total)
    assert statistics.mean(returns) > GuessMyCity.anchors.max  # measured: -6.24


def test_behavior_policy_matches_the_papers_dataset() -> None:
    task = GuessMyCity()
    lengths, wins = [], []
    for seed in range(400):
        _, n = play(task, "behavior", seed=seed, index=seed)
        lengths.append(n)
        wins.append(task.success)
    rate = sum(wins) / len(wins)
    length = statistics.mean(lengths)
    assert 0.4 <= rate <= 0.65, rate  # paper Table 1: 0.53 (measured over 1000 episodes: 0.53)
    assert 17.5 <= length <= 20, length  # paper: 18.8 (measured: 18.6)


def test_random_policy_rarely_wins() -> None:
    task = GuessMyCity()
    wins = 0
    for seed in range(200):
        play(task, "random", seed=seed, index=seed)
        wins += task.success
    assert wins / 200 < 0.15


# --- full episodes through the runner ------------------------------------------------------------
@pytest.mark.anyio
async def test_runner_with_the_builtin_oracle(tmp_path) -> None:
    config = RunConfig(out=tmp_path / "run", tasks=[TASK], models=["scripted/optimal"], episodes=6)
    result = await Runner(config).run()
    assert result.complete and result.errors == 0
    episodes = load_episodes(tmp_path / "run")
    assert len(episodes) == 6
    for episode in episodes:
        assert episode.models == {"agent": "scripted/optimal", "oracle": "scripted/city-oracle"}
        assert episode.success and episode.info["city"] == CITIES[city_for_episode(episode.index)].name
        assert episode.info["leaks"] == 0 and episode.return_ == -(episode.length - 1)
        assert episode.role_usage["oracle"]["calls"] == episode.length - 1
        assert episode.turns[-1].info["outcome"] == "correct"
        assert leak_judge_rule(episode) == 0.0


@pytest.mark.anyio
async def test_runner_with_a_model_oracle_over_http(fake_server, tmp_path) -> None:
    oracle = f"openai/say@text=It is by the sea.@id={uuid.uuid4().hex[:8]}"
    config = RunConfig(
        out=tmp_path / "run",
        tasks=[TASK],
        models=["scripted/behavior"],
        episodes=2,
        max_turns=6,
        roles={"oracle": oracle},
        role_options={"oracle": AgentOptions(api_base=fake_server.api_base)},
    )
    result = await Runner(config).run()
    assert result.complete and result.errors == 0
    episodes = load_episodes(tmp_path / "run")
    served = [r for r in fake_server.requests() if r["model"] == oracle.removeprefix("openai/")]
    calls = sum(e.role_usage["oracle"]["calls"] for e in episodes)
    assert calls == len(served) > 0
    for episode in episodes:
        assert episode.models["oracle"] == oracle and episode.error is None
        answers = [t.observation for t in episode.turns[1:]]
        assert answers and all(a == "It is by the sea." for a in answers)
        assert episode.role_usage["oracle"]["tokens_in"] > 0 and episode.length == 6
    # The oracle sees the facts in its system prompt and the conversation so far.
    assert all(r["messages"] >= 2 for r in served)


@pytest.mark.anyio
async def test_a_leaking_model_oracle_is_flagged_and_redacted(fake_server, tmp_path, monkeypatch) -> None:
    tokyo = episode_of_city("Tokyo")

    def cheat(task: GuessMyCity, rng: random.Random) -> str:
        # Guess at once except in Tokyo's episode, where one question reaches the oracle first.
        if task.city.name == "Tokyo" and not task.dialogue:
            return "Where do you live?"
        return f"Is the city you are from {task.city.name}?"

    monkeypatch.setitem(GuessMyCity.policies, "cheat", cheat)
    oracle = f"openai/say@text=I live in Tokyo.@id={uuid.uuid4().hex[:8]}"
    config = RunConfig(
        out=tmp_path / "run",
        tasks=[TASK],
        models=["scripted/cheat"],
        episodes=tokyo + 1,
        roles={"oracle": oracle},
        role_options={"oracle": AgentOptions(api_base=fake_server.api_base)},
    )
    result = await Runner(config).run()
    assert result.complete and result.errors == 0
    by_index = {e.index: e for e in load_episodes(tmp_path / "run")}
    episode = by_index[tokyo]
    assert episode.info["city"] == "Tokyo" and episode.info["leaks"] == 1
    flagged = episode.turns[0].info
    assert flagged["leak"] is True and flagged["leaked"] == ["Tokyo"]
    assert episode.turns[1].observation == "I live in [redacted]."
    assert leak_judge_rule(episode) == 1.0
    assert all(e.info["leaks"] == 0 and e.length == 1 for i, e in by_index.items() if i != tokyo)
    served = [r for r in fake_server.requests() if r["model"] == oracle.removeprefix("openai/")]
    assert len(served) == 1 and served[0]["first_user"] == "Where do you live?"


def test_leaks_are_shown_unredacted_when_asked() -> None:
    task = GuessMyCity(redact_leaks=False)
    task.reset(0, episode_of_city("Tokyo"))
    task.turn = 1
    result = task.answered("Where?", "I live in Tokyo.", model=True)
    assert result.observation == "I live in Tokyo." and result.info["leaked"] == ["Tokyo"]


# --- the oracle measured on a hand-labelled set --------------------------------------------------
def test_label_set_is_broad() -> None:
    labels = load_labels(LABELS)
    assert len(labels) >= 200
    categories = Counter(label["category"] for label in labels)
    for needed in ("geography", "climate", "food", "sport", "culture", "language", "negated", "other"):
        assert categories[needed] >= 8, (needed, categories)
    assert len({label["city"] for label in labels}) >= 50
    for label in labels:
        assert label["city"] in CITY_INDEX and label["question"].endswith("?")
        answer = label["answer"]
        assert answer in ("yes", "no", "unsure") or (isinstance(answer, dict) and answer["any"]), label


def test_oracle_is_accurate_on_the_labels_and_honest_when_unsure() -> None:
    result = oracle_accuracy(load_labels(LABELS))
    assert result["accuracy"] >= 0.95, result["wrong"]
    assert result["wrong"] == []  # no wrong answer is flagged as understood
    assert result["mapped"] >= 300 and result["unmapped_share"] <= 0.1  # measured: 328 of 341, 0.04
    assert result["by_category"]["other"]["mapped"] == 0  # outside the facts: always "not sure"


def test_port_is_not_the_coast_and_sports_are_not_sights() -> None:
    for name in ("London", "Guangzhou"):
        assert oracle_answer("Is it a port city?", city(name)).text.startswith("Yes")
        assert oracle_answer("Is it on the coast?", city(name)).text.startswith("No")
    answer = oracle_answer("Is there a famous sports team?", city("London")).text
    assert "Arsenal" in answer and "sight" not in answer


def test_behaviour_questions_are_answered() -> None:
    stats = behaviour_unsure_share(episodes=100)
    assert stats["unsure_share"] <= 0.10, stats  # measured over 1000 episodes: 0.016
    for question in CHAT_QUESTIONS:
        unsure = sum(not oracle_answer(question, c).mapped for c in CITIES)
        assert unsure <= 30, (question, unsure)  # only facts the data marks as unknown


# --- which city an episode plays -----------------------------------------------------------------
def test_episodes_are_stratified_by_part_of_the_world() -> None:
    areas = [CITIES[city_for_episode(i)].area for i in range(100)]
    for start, size in ((0, 10), (0, 20), (40, 20)):
        window = Counter(areas[start : start + size])
        assert window["East Asia"] <= size // 2 + 1, window  # the catalog is 41% East Asian
        assert len(window) >= size // 3, window
    china = sum(CITIES[city_for_episode(i)].country == "China" for i in range(10))
    assert china <= 5  # population order started with 4 Chinese cities in the first 4 episodes
    assert len({city_for_episode(i) for i in range(100, 200)}) == 100  # the next pass, reshuffled
    assert [city_for_episode(i) for i in range(100, 110)] != [city_for_episode(i) for i in range(10)]
    assert GuessMyCity.version == "2"
