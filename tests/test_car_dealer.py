"""Car Dealer: catalog, episodes by index, decision parsing, rewards, reading the seller, the built-in
(honest) buyer, the reward exploit, full episodes."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from lmrl.agents import AgentOptions
from lmrl.agents.scripted import ScriptedAgent
from lmrl.episode import Episode
from lmrl.parsing import Invalid
from lmrl.rundir import load_episodes
from lmrl.runner import RunConfig, Runner
from lmrl.sampling import stratified_item
from lmrl.task import InvalidTaskOption, Segment, action_of
from lmrl.tasks import make_task, task_class
from lmrl.tasks.car_dealer import (
    BEST_RETURN,
    BRANDS,
    BUDGETS,
    BY_MODEL,
    CATALOG,
    FEATURES,
    LIES_TOLERATED,
    MAX_MESSAGE_CHARS,
    MAX_TURNS,
    PAIRS,
    PAPER_ANCHORS,
    PERSONALITIES,
    PROFILE_SALT,
    REVENUE_ANCHORS,
    RUBRIC_SELLER_NATURALNESS,
    SALE_ANCHORS,
    TYPES,
    WORST_RETURN,
    BuyerTraits,
    CarDealer,
    CatalogError,
    Decision,
    OfferTracker,
    Profile,
    check_claims,
    decision_reward,
    fancy_reward,
    find_cars,
    find_features,
    find_money,
    format_decision,
    load_catalog,
    measure_policy,
    parse_decision,
    profile_pair,
    revenue_reward,
    sale_price,
    sale_reward,
    split_decision,
)
from lmrl.tasks.car_dealer.catalog import CATALOG_PATH, PROFILES_PATH, check_profile_sets


# --- catalog and profile -------------------------------------------------------------------------
def test_catalog_covers_the_profile_sets() -> None:
    assert 40 <= len(CATALOG) <= 100
    assert len(BY_MODEL) == len(CATALOG)  # model names are unique
    for car in CATALOG:
        assert car.brand in BRANDS and car.msrp > 0 and car.types
        assert set(car.types) <= set(TYPES) and set(car.features) <= set(FEATURES)
        assert (car.condition == "new") == (car.year is None)
    assert {car.brand for car in CATALOG} == set(BRANDS)
    assert {t for car in CATALOG for t in car.types} == set(TYPES)
    assert all(sum(car.brand == b for car in CATALOG) >= 3 for b in BRANDS)
    assert any(car.msrp <= min(BUDGETS) for car in CATALOG)  # the $10k buyer can find something
    assert abs(WORST_RETURN - (-(90_000 - 9_500) / 9_500)) < 1e-12  # $90k buyer rejects the cheapest car


def _catalog_with(tmp_path: Path, index: int, **fields: Any) -> Path:
    data = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    data["cars"][index].update(fields)
    for key in [k for k, v in fields.items() if v is None]:
        del data["cars"][index][key]
    path = tmp_path / f"catalog-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"msrp": "35k"}, "msrp must be a positive integer, not '35k'"),
        ({"msrp": None}, "lacks msrp"),
        ({"brand": "Yugo"}, "brand 'Yugo' is not one of the profile brands"),
        ({"types": ["hovercraft"]}, "types has unknown 'hovercraft'"),
        ({"features": ["jet engine"]}, "features has unknown 'jet engine'"),
        ({"year": 2019}, "a pre-owned car has a year and a condition"),
        ({"colour": "red"}, "unknown field(s) colour"),
        ({"model": "Arteon"}, "model 'Arteon' repeats cars[1]"),
    ],
)
def test_a_corrupted_catalog_entry_is_named_in_one_line(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    path = _catalog_with(tmp_path, 2, **fields)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"{path}: cars[2] (") and message in text
    assert load_catalog() == CATALOG  # the real file still loads


def test_a_corrupted_profile_set_is_named_in_one_line(tmp_path: Path) -> None:
    sets = json.loads(PROFILES_PATH.read_text(encoding="utf-8"))
    assert check_profile_sets(copy.deepcopy(sets)) == sets
    bad = copy.deepcopy(sets)
    bad["personalities"]["abusive"]["hostile"] = "yes"
    with pytest.raises(CatalogError, match=r"personalities\['abusive'\]: hostile must be true or false"):
        check_profile_sets(bad, "car_profiles.json")
    bad = {**copy.deepcopy(sets), "budgets": [10_000, -5]}
    with pytest.raises(CatalogError, match=r"^car_profiles.json: budgets\[1\] must be a positive integer"):
        check_profile_sets(bad, "car_profiles.json")
    bad = {**copy.deepcopy(sets), "brands": ["Honda", "Honda"]}
    with pytest.raises(CatalogError, match="brands repeats a name"):
        check_profile_sets(bad, "car_profiles.json")
    broken = tmp_path / "broken.json"
    broken.write_text(CATALOG_PATH.read_text(encoding="utf-8")[:500], encoding="utf-8")
    with pytest.raises(CatalogError, match=f"^{broken}: "):
        load_catalog(broken)


def test_registered_with_options() -> None:
    assert task_class("car-dealer") is CarDealer and CarDealer.version == "2"
    task = make_task("car-dealer")
    assert task.options() == {"reward_mode": "sale"} and task.anchors == SALE_ANCHORS
    assert task.anchors.max == 1.0 and task.anchors.min == 0 and "measured" in task.anchors.source
    assert task.reward_range == (0.0, BEST_RETURN)
    assert task.max_steps == MAX_TURNS == 50 and task.roles == {"buyer": "scripted/buyer"}
    revenue = make_task("car-dealer", reward_mode="revenue")
    assert revenue.anchors == REVENUE_ANCHORS and revenue.options() == {"reward_mode": "revenue"}
    paper = make_task("car-dealer", reward_mode="paper")
    assert paper.anchors == PAPER_ANCHORS and paper.reward_range == (WORST_RETURN, BEST_RETURN)
    for mode in ("profit", "fancy"):
        with pytest.raises(InvalidTaskOption, match="reward_mode"):
            make_task("car-dealer", reward_mode=mode)
    with pytest.raises(InvalidTaskOption):
        make_task("car-dealer", colour="red")


def test_reset_draws_the_profile_from_the_index_and_seed() -> None:
    task = CarDealer()
    first = task.reset(7, 3)
    profile = task.profile
    assert profile.personality in PERSONALITIES and profile.brand in BRANDS and profile.type in TYPES
    assert 1 <= len(profile.features) <= 4 and set(profile.features) <= set(FEATURES)
    assert profile.budget in BUDGETS
    assert task.reset(7, 3) == first and task.profile == profile
    assert (profile.budget, profile.personality) == profile_pair(3)
    task.reset(8, 3)  # another seed: same budget and personality, the rest redrawn
    assert (task.profile.budget, task.profile.personality) == profile_pair(3)
    profiles = set()
    for seed in range(200):
        task.reset(seed, seed)
        profiles.add((task.profile.brand, task.profile.type, task.profile.budget))
    assert len(profiles) > 100
    assert task.profile.line().startswith(f"Personality: {task.profile.personality}. Prefers a ")


def test_episode_index_picks_budget_and_personality_stratified() -> None:
    assert f"car-dealer/{CarDealer.version}" == PROFILE_SALT
    assert len(PAIRS) == len(BUDGETS) * len(PERSONALITIES) == 50
    categories = [str(budget) for budget, _ in PAIRS]
    pairs = [profile_pair(i) for i in range(100)]
    assert pairs == [PAIRS[stratified_item(i, categories, PROFILE_SALT)] for i in range(100)]
    for start in range(0, 50, 5):  # every block of 5 meets all five budgets
        assert {budget for budget, _ in pairs[start : start + 5]} == set(BUDGETS)
    assert set(pairs[:50]) == set(PAIRS) == set(pairs[50:])  # every pair once per pass
    assert pairs[:50] != pairs[50:]  # the second pass is reshuffled
    assert len({p for _, p in pairs[:10]}) >= 6  # personalities are spread, not in file order
    task = CarDealer()
    for index in (0, 1, 49, 50, 123):
        task.reset(index * 7 + 1, index)
        assert (task.profile.budget, task.profile.personality) == profile_pair(index)


def test_sync_step_refuses() -> None:
    task = CarDealer()
    task.reset(0)
    with pytest.raises(RuntimeError, match="astep"):
        task.step("Hello")


# --- decisions -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Output: Decision=Accept MSRP=$35,000 Buy Price=$32,000", Decision(True, 35_000, 32_000)),
        (
            "Sounds good!\nOutput: Decision=Accept MSRP=$35,000 Buy Price=$32,000",
            Decision(True, 35_000, 32_000),
        ),
        ("decision = accept, msrp $35000, buy price: 32k", Decision(True, 35_000, 32_000)),
        ("Decision: Reject (MSRP=$40,000)", Decision(False, 40_000, None)),
        ("Output: Decision=Reject MSRP=$40,000", Decision(False, 40_000, None)),
        ("**Output:** DECISION=ACCEPT  msrp=$35,000   buy price=$31,500.", Decision(True, 35_000, 31_500)),
        ("OUTPUT: decision=accepted buy price = 29.5k msrp = 31k", Decision(True, 31_000, 29_500)),
        ("Decision: Accept\nMSRP: $35,000\nBuy Price: $33,000\n", Decision(True, 35_000, 33_000)),
        ("decision=reject msrp=$40", Decision(False, 40_000, None)),  # a bare 40 in a tag means thousands
        ("Output: Decision=Accept MSRP=$35 thousand Buy Price=$34 thousand", Decision(True, 35_000, 34_000)),
        ("Decision = Declined. MSRP of $22,500.", Decision(False, 22_500, None)),
        ("Output: Decision=Reject", Decision(False, None, None)),
        ("Output: Decision=Accept", Decision(True, None, None)),
        ("I've made my decision: Accept. MSRP=$30,000 Buy Price=$27,000", Decision(True, 30_000, 27_000)),
        (
            "Decision=Reject MSRP=$50,000\nActually no. Decision=Accept MSRP=$50,000 Buy Price=$45,000",
            Decision(True, 50_000, 45_000),
        ),
        ("That's a tough decision, let me think.", None),
        ("Can you do $32,000? I'd accept that.", None),
        ("", None),
    ],
)
def test_parse_decision(text: str, expected: Decision | None) -> None:
    assert parse_decision(text) == expected


def test_split_decision_strips_the_tag_from_what_the_seller_sees() -> None:
    visible, decision = split_decision("Deal! Output: Decision=Accept MSRP=$30,000 Buy Price=$28,000")
    assert visible == "Deal!" and decision == Decision(True, 30_000, 28_000)
    visible, _ = split_decision("No thanks. (Decision: Reject MSRP=$40,000) Goodbye.")
    assert visible == "No thanks. Goodbye."
    visible, _ = split_decision("Fine.\n**Output:** Decision=Accept\nMSRP: $35,000\nBuy Price: $33,000\nBye!")
    assert visible == "Fine.\nBye!"
    assert split_decision("Output: Decision=Reject MSRP=$9,500") == ("", Decision(False, 9_500))
    assert split_decision("Just talking.") == ("Just talking.", None)


def test_format_decision_round_trips() -> None:
    assert format_decision(True, 35_000, 32_000) == "Output: Decision=Accept MSRP=$35,000 Buy Price=$32,000"
    assert format_decision(False, 40_000) == "Output: Decision=Reject MSRP=$40,000"
    assert format_decision(False, None) == "Output: Decision=Reject"
    for accepted, msrp, price in [(True, 35_000, 32_000), (False, 40_000, None), (False, None, None)]:
        assert parse_decision(format_decision(accepted, msrp, price)) == Decision(accepted, msrp, price)


# --- rewards -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bought", "price", "budget", "msrp", "sale", "paper", "revenue"),
    [
        (True, 32_000, 50_000, 35_000, 32_000 / 42_500, 32_000 / 42_500, 32.0),  # the paper's example
        (True, 50_000, 50_000, 50_000, 1.0, 1.0, 50.0),  # full price, MSRP = budget: the max anchor
        (True, 9_000, 10_000, 9_500, 9_000 / 9_750, 9_000 / 9_750, 9.0),
        (False, None, 30_000, 40_000, 0.0, 0.25, 0.0),  # over-budget car walked away from: paper pays
        (False, None, 10_000, 150_000, 0.0, 1 - 10 / 150, 0.0),  # the exploit's best case
        (False, None, 90_000, 30_000, 0.0, -2.0, 0.0),  # rich buyer walks away from a cheap car
        (False, None, 50_000, 50_000, 0.0, 0.0, 0.0),
        (False, None, 50_000, None, 0.0, 0.0, 0.0),  # no MSRP known -> 0
        (True, None, 50_000, 35_000, 0.0, 0.0, 0.0),  # bought at an unknown price -> 0
    ],
)
def test_reward_formulas(bought, price, budget, msrp, sale, paper, revenue) -> None:
    assert sale_reward(bought, price, budget, msrp) == pytest.approx(sale)
    assert fancy_reward(bought, price, budget, msrp) == pytest.approx(paper)
    assert revenue_reward(bought, price) == pytest.approx(revenue)
    decision = Decision(bought, msrp, price)
    assert decision_reward(decision, budget) == pytest.approx(sale)  # the default
    assert decision_reward(decision, budget, "sale") == pytest.approx(sale)
    assert decision_reward(decision, budget, "paper") == pytest.approx(paper)
    assert decision_reward(decision, budget, "revenue") == pytest.approx(revenue)


def test_default_reward_never_pays_a_walk_away_more_than_a_sale() -> None:
    walk_aways = [
        decision_reward(Decision(False, car.msrp), budget) for car in CATALOG for budget in BUDGETS
    ] + [decision_reward(Decision(False, None), budget) for budget in BUDGETS]
    sales = [
        decision_reward(Decision(True, car.msrp, price), budget)
        for car in CATALOG
        for budget in BUDGETS
        for price in (0.5 * car.msrp, min(car.msrp, budget))
    ]
    assert max(walk_aways) <= 0 < min(sales)


def test_no_decision_is_worth_zero() -> None:
    for mode in ("sale", "paper", "revenue"):
        assert decision_reward(None, 50_000, mode) == 0.0


# --- reading the seller's text -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It lists at $32,000.", [("price", 32_000)]),
        ("I can do 32k.", [("price", 32_000)]),
        ("How about 32 thousand dollars?", [("price", 32_000)]),
        ("It's $29,500.50 out the door", [("price", 29_500.5)]),
        ("That's 31,000 even.", [("price", 31_000)]),
        ("I'll take $2,000 off.", [("discount", 2_000)]),
        ("We can give you a discount of $1,500", [("discount", 1_500)]),
        ("5% off today only", [("percent", 0.05)]),
        ("The 2024 Ford F-150 and the CX-5", []),
        ("Only $399/month, or $399 a month", []),
        ("Financing at 3.9% APR", []),
    ],
)
def test_find_money(text: str, expected: list[tuple[str, float]]) -> None:
    assert [(m.kind, m.value) for m in find_money(text)] == [(k, pytest.approx(v)) for k, v in expected]


def test_find_cars_and_features() -> None:
    assert [c.model for _, c in find_cars("the crv or the CR-V, the mazda 3 and the F150")] == [
        "CR-V",
        "CR-V",
        "Mazda3",
        "F-150",
    ]
    assert [c.model for _, c in find_cars("The F-150 Lightning and the RX350")] == [
        "F-150 Lightning",
        "RX 350",
    ]
    # Everyday words are models only when capitalized mid-sentence.
    assert find_cars("This is a perfect fit. Let's focus on price.") == []
    assert [c.model for _, c in find_cars("I'd recommend the Honda Fit.")] == ["Fit"]
    found = find_features("It has a rearview camera and heated seats, but no sunroof. CarPlay is standard.")
    assert [(f, present) for _, f, present in found] == [
        ("backup camera", True),
        ("heated seats", True),
        ("sunroof", False),
        ("Apple CarPlay", True),
    ]
    assert [(f, p) for _, f, p in find_features("It doesn't have a moonroof or GPS")] == [
        ("sunroof", False),
        ("navigation system", False),
    ]


def test_offer_tracker_follows_cars_prices_and_discounts() -> None:
    profile = Profile("polite", "Honda", "SUV", ("sunroof",), 50_000)
    offers = OfferTracker()
    offers.update("What's your budget? Around $40,000?", profile)
    assert offers.focus is None and offers.prices == {}
    offers.update("The Honda Civic is $25,000 and the Honda CR-V is $31,000. It has no sunroof.", profile)
    assert offers.focus is BY_MODEL["CR-V"]  # the better fit for a Honda SUV buyer
    assert offers.prices == {"Civic": 25_000, "CR-V": 31_000}
    assert offers.claims["CR-V"] == {"sunroof": False}
    offers.update("I'll take $1,000 off.", profile)
    assert offers.price(offers.focus) == 30_000
    offers.update("Fine, 10% off then.", profile)
    assert offers.price(offers.focus) == pytest.approx(27_000)


def test_parse_seller_output() -> None:
    task = CarDealer()
    assert task.parse("Hello there!") == "Hello there!"
    assert task.parse("Seller: Welcome in!\nBuyer: Hi, I want a Honda.\nSeller: Sure.") == "Welcome in!"
    assert task.parse("**Salesperson:** Great choice.") == "Great choice."
    assert task.parse("I think they want an SUV.\nMessage: Try the CR-V!") == "Try the CR-V!"
    for empty in ("   ", "", "Buyer: hi", "Message:"):
        assert task.parse(empty) == Invalid("empty", task.parse(empty).detail)
    assert task.parse("x" * MAX_MESSAGE_CHARS) == "x" * MAX_MESSAGE_CHARS
    assert task.parse("x" * (MAX_MESSAGE_CHARS + 1)).reason == "too-long"


def test_long_garbage_is_not_a_pitch() -> None:
    garbage = "Porsche 911 Cabriolet $150,000 sunroof heated seats " * 200  # ~10 kB, full of car names
    parsed = CarDealer().parse(garbage)
    assert isinstance(parsed, Invalid) and parsed.reason == "too-long"
    task = buyer_task(Profile("polite", "Porsche", "convertible", ("sunroof",), 90_000))
    result = asyncio.run(task.astep(action_of(parsed)))
    assert result.invalid and result.observation == "...?" and task.offers.focus is None
    assert task.role_usage["buyer"]["calls"] == 0  # the buyer never saw it
    note = task.invalid_note(parsed.reason, parsed.detail)
    assert "too long" in note and f"{MAX_MESSAGE_CHARS:,}" in note


# --- the built-in buyer --------------------------------------------------------------------------
TRAITS = BuyerTraits(
    patience=40,
    max_strikes=2,
    haggle_rounds=2,
    first_cut=0.1,
    raise_frac=0.5,
    flexible=False,
    feature_tolerance=0,
    reveal_needs=True,
    reveal_features=True,
    reveal_budget=False,
    budget_shade=1.0,
    questions=0,
    stall_p=0.0,
    closing_question=False,
)


def buyer_task(profile: Profile, traits: BuyerTraits = TRAITS, seed: int = 0) -> CarDealer:
    task = CarDealer()
    task.attach_partners({"buyer": ScriptedAgent("buyer")}, seed)
    task.reset(seed)
    task.profile, task.traits = profile, traits
    return task


def converse(task: CarDealer, lines) -> list:
    """Feed seller lines (a list, or a function of the last observation) until the buyer decides."""

    async def run() -> list:
        results, observation = [], task.conversation[-1].text
        for n in range(MAX_TURNS):
            line = lines[min(n, len(lines) - 1)] if isinstance(lines, list) else lines(observation)
            result = await task.astep(action_of(task.parse(line)))
            results.append(result)
            observation = result.observation
            if result.done:
                break
        return results

    return asyncio.run(run())


def test_buyer_haggles_then_accepts_a_matching_car_within_budget() -> None:
    task = buyer_task(Profile("polite", "Honda", "SUV", ("backup camera",), 50_000))
    quote = [31_000]

    def seller(observation: str) -> str:
        if not task.offers.named:
            return "I'd recommend the Honda CR-V. It has a backup camera, and it lists at $31,000."
        quote[0] -= 500
        return f"I can do ${quote[0]:,}."

    results = converse(task, seller)
    final = results[-1]
    assert final.done and task.success and task.decision is not None
    counters = [r.observation for r in results[:-1] if "$" in r.observation]
    assert len(counters) >= TRAITS.haggle_rounds  # it counter-offered before accepting
    price = task.decision.price
    assert task.decision.msrp == 31_000 and price is not None and price <= 31_000
    assert final.reward == pytest.approx(price / ((50_000 + 31_000) / 2))
    assert "Decision" not in final.observation and "Output" not in final.observation  # tag stripped
    assert "Output: Decision=Accept MSRP=$31,000" in task.conversation[-1].raw
    info = task.episode_info()
    assert info["decision"] == "accepted" and info["price"] == price and info["msrp"] == 31_000
    assert info["car"] == {"brand": "Honda", "model": "CR-V", "msrp": 31_000}
    assert sale_price(info) == price and info["buyer_reason"] == "deal"


def test_buyer_rejects_an_over_budget_car_of_the_wrong_brand() -> None:
    task = buyer_task(Profile("rude", "Honda", "sedan", ("sunroof",), 30_000))
    results = converse(task, ["You need the Porsche Cayenne. It lists at $82,000, no discounts."])
    final = results[-1]
    assert final.done and not task.success and len(results) == TRAITS.max_strikes
    assert task.decision == Decision(False, 82_000, None)
    assert final.reward == 0.0  # default reward: no sale, nothing
    assert decision_reward(task.decision, 30_000, "paper") == pytest.approx(-(30_000 - 82_000) / 82_000)
    assert task.episode_info()["decision"] == "rejected" and sale_price(task.episode_info()) is None


def test_buyer_asks_about_features_and_rejects_a_car_lacking_them() -> None:
    task = buyer_task(Profile("polite", "Toyota", "SUV", ("third-row seating", "sunroof"), 50_000))
    results = converse(
        task,
        [
            "Take a look at the Toyota RAV4 at $29,500.",
            "Hmm, I'm not sure about that.",
            "It is a great car though.",
        ],
    )
    assert "third-row seating" in results[0].observation  # it asked
    assert results[-1].done and not task.success
    assert task.buyer_state.reason == "missing features"


# --- the honest buyer: claims are checked against the catalog ------------------------------------
PATIENT = BuyerTraits(**{**TRAITS.to_dict(), "max_strikes": 5})


def say(task: CarDealer, line: str):
    """One seller message through the task (parsed as the runner does); the step's result."""
    return asyncio.run(task.astep(action_of(task.parse(line))))


def test_buyer_calls_out_a_false_feature_and_walks_away_after_two_lies() -> None:
    assert "third-row seating" not in BY_MODEL["RAV4"].features and "sunroof" not in BY_MODEL["RAV4"].features
    task = buyer_task(Profile("polite", "Toyota", "SUV", ("third-row seating",), 50_000), PATIENT)
    first = say(task, "The Toyota RAV4 has third-row seating, and it lists at $29,500.")
    assert not first.done and "doesn't have third-row seating" in first.observation
    assert task.buyer_state.lies == ["the RAV4 doesn't have third-row seating"]
    assert task.buyer_state.trust == pytest.approx(0.5) and task.buyer_state.strikes == 1
    assert LIES_TOLERATED == 2
    second = say(task, "Sorry! But the RAV4 does have a sunroof, you'll love it.")
    assert second.done and not task.success and second.reward == 0.0
    assert "doesn't have a sunroof" in second.observation and "Decision" not in second.observation
    assert task.buyer_state.reason == "dishonest" and task.decision == Decision(False, 29_500, None)
    assert len(task.episode_info()["buyer_lies"]) == 2


def test_buyer_calls_out_an_inflated_list_price() -> None:
    task = buyer_task(Profile("rude", "Honda", "SUV", ("backup camera",), 50_000), PATIENT)
    result = say(task, "The Honda CR-V lists at $36,000 and has a backup camera.")
    assert "lists at $31,000, not $36,000" in result.observation and not result.done
    assert task.buyer_state.trust == pytest.approx(0.5)


def test_buyer_does_not_call_out_truthful_claims_questions_or_understatements() -> None:
    task = buyer_task(Profile("polite", "Toyota", "SUV", ("heated seats",), 50_000), PATIENT)
    task.offers.update(
        "Would the RAV4 need a sunroof? The Toyota Highlander has third-row seating.", task.profile
    )
    assert check_claims(task) == []  # the question is no claim; the Highlander has third-row seating
    task.offers.update("The Toyota Highlander lists at $40,000.", task.profile)
    assert check_claims(task) == []
    task.offers.update("The Toyota RAV4 lists at $28,000.", task.profile)  # below MSRP: an offer, no lie
    assert check_claims(task) == []
    # A feature the seller wrongly denies is judged by the catalog: the RAV4 does have heated seats.
    task = buyer_task(Profile("polite", "Toyota", "SUV", ("heated seats",), 50_000), PATIENT)
    result = say(task, "The Toyota RAV4 doesn't have heated seats, sorry. It's $29,500.")
    assert "I really need" not in result.observation and not task.buyer_state.lies
    assert task.buyer_state.counter is not None  # it went on to haggle


def test_a_wary_buyer_cuts_its_first_counter_deeper() -> None:
    profile = Profile("polite", "Toyota", "SUV", ("backup camera",), 50_000)
    honest = buyer_task(profile, PATIENT)
    say(honest, "The Toyota RAV4 has a backup camera. It's $29,500.")
    liar = buyer_task(profile, PATIENT)
    say(liar, "The Toyota RAV4 has a backup camera and a sunroof. It's $29,500.")
    assert liar.buyer_state.counter is None  # the lie was called out instead
    say(liar, "My mistake, no sunroof. It's $29,500.")
    assert honest.buyer_state.counter is not None and liar.buyer_state.counter is not None
    assert liar.buyer_state.counter < honest.buyer_state.counter


def test_lying_about_features_does_not_pay() -> None:
    from lmrl.tasks.car_dealer import feature_phrase

    def liar(task: CarDealer, rng: random.Random) -> str:
        line = task.policies["behavior"](task, rng)
        car = task.seller_notes.get("car")
        return f"{line} And yes, the {car.model} has {feature_phrase(FEATURES)}." if car else line

    lying, honest = measure_policy(liar, 300), measure_policy("behavior", 300)
    assert lying["mean_return"] < honest["mean_return"] and lying["success"] < honest["success"]


def test_buyer_answers_budget_and_needs() -> None:
    task = buyer_task(Profile("talkative", "Audi", "electric", ("sunroof",), 70_000))
    results = converse(task, ["Welcome! What's your budget?"])
    assert "$70,000" in results[0].observation and not results[0].done
    task = buyer_task(Profile("polite", "Audi", "electric", ("sunroof",), 70_000))
    task.buyer_state.told_needs = False
    results = converse(task, ["Hi! What kind of car are you looking for?"])
    assert "an Audi electric car" in results[0].observation


def test_empty_seller_message_is_invalid_and_costs_a_turn() -> None:
    task = buyer_task(Profile("polite", "Honda", "SUV", ("backup camera",), 50_000))
    result = asyncio.run(task.astep(action_of(task.parse(""))))
    assert (result.observation, result.reward, result.done, result.invalid) == ("...?", 0.0, False, True)
    assert task.turn == 1 and task.role_usage["buyer"]["calls"] == 0


def test_built_in_buyer_decides_at_the_cap() -> None:
    patient = BuyerTraits(**{**TRAITS.to_dict(), "patience": 99})
    task = buyer_task(Profile("polite", "Honda", "SUV", ("backup camera",), 50_000), patient)
    results = converse(task, ["Nice weather today, isn't it?"])
    assert len(results) == MAX_TURNS and results[-1].done and not results[:-1][-1].done
    assert task.decision == Decision(False, None, None) and results[-1].reward == 0.0


def test_built_in_buyer_never_beats_the_max_anchor() -> None:
    # It never pays above min(budget, MSRP), so no episode's fancy return exceeds 1.0.
    for policy in ("behavior", "random"):
        for seed in range(60):
            task = CarDealer()
            task.attach_partners({"buyer": ScriptedAgent("buyer")}, seed)
            task.reset(seed, seed)
            rng = random.Random(seed)

            async def play(task: CarDealer = task, rng: random.Random = rng, policy: str = policy) -> float:
                for _ in range(MAX_TURNS):
                    result = await task.astep(action_of(task.parse(task.policies[policy](task, rng))))
                    if result.done:
                        return result.reward
                raise AssertionError("no decision by the cap")

            reward = asyncio.run(play())
            assert 0.0 <= reward <= CarDealer.anchors.max
            assert not task.buyer_state.lies  # the scripted sellers tell the truth
            if task.success:
                assert task.decision.price <= min(task.profile.budget, task.decision.msrp)


def test_behavior_policy_is_near_the_dataset_statistics_and_pins_the_avg_anchors() -> None:
    stats = measure_policy("behavior", 2000)  # ~4 s
    # Paper's dataset: success 0.53, mean return 0.562 (its formula), mean length 16.5.
    assert 0.35 <= stats["success"] <= 0.7
    assert 0.4 <= stats["mean_paper"] <= 0.7
    assert 12 <= stats["mean_length"] <= 20
    assert stats["mean_return"] == stats["mean_sale"]  # the default mode
    assert stats["mean_sale"] == pytest.approx(SALE_ANCHORS.avg, abs=5e-4)
    assert stats["mean_paper"] == pytest.approx(PAPER_ANCHORS.avg, abs=5e-4)
    assert stats["mean_revenue"] == pytest.approx(REVENUE_ANCHORS.avg, abs=5e-3)
    for anchors in (SALE_ANCHORS, PAPER_ANCHORS, REVENUE_ANCHORS):
        assert anchors.min < anchors.avg < anchors.max


def test_random_seller_rarely_sells() -> None:
    stats = measure_policy("random", 200)
    assert stats["success"] <= 0.05 and stats["mean_return"] < CarDealer.anchors.avg


def test_pitching_the_priciest_car_and_never_selling_scores_below_the_behaviour_seller() -> None:
    # The exploit of the paper's formula, played through the task as a scripted policy.
    episodes = 400
    exploit = measure_policy("overprice", episodes)
    behavior = measure_policy("behavior", episodes)
    assert exploit["success"] == 0 and behavior["success"] > 0.3
    assert exploit["mean_return"] == 0.0 < behavior["mean_return"]
    assert exploit["mean_return"] < SALE_ANCHORS.avg
    # ... which the paper's literal formula (reward_mode=paper) pays more than honest selling.
    paper = measure_policy("overprice", episodes, reward_mode="paper")
    assert paper["mean_return"] == exploit["mean_paper"] > behavior["mean_paper"] > 0


# --- prompts and rendering -----------------------------------------------------------------------
def test_prompts_and_rendering() -> None:
    task = CarDealer()
    opening = task.reset(3)
    prompt = task.system_prompt()
    assert "Honda CR-V (SUV, MSRP $31,000)" in prompt and task.answer_example in prompt
    assert f"at most {MAX_MESSAGE_CHARS:,} characters" in prompt
    for mode in ("sale", "paper", "revenue"):  # the reward formula is never disclosed
        shown = CarDealer(reward_mode=mode).system_prompt()
        assert "budget + M" not in shown and "(budget - M)" not in shown and "score" not in shown.lower()
    assert task.parse(task.answer_example) == task.answer_example.removeprefix("Message: ")
    task.conversation.append(task.conversation[0].__class__("seller", "Hello!", "Hello!"))
    messages = task.buyer_messages()
    assert messages[0]["role"] == "system" and task.profile.line() in messages[0]["content"]
    assert "Output: Decision=Accept MSRP=$M Buy Price=$P" in messages[0]["content"]
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user"]
    assert messages[2]["content"] == opening and messages[3]["content"] == "Hello!"
    history = [Segment("observation", opening), Segment("action", "Hello!"), Segment("observation", "Hi.")]
    assert task.render(history, "text") == f"Buyer: {opening}\nSeller: Hello!\nBuyer: Hi.\n"
    chat = task.render(history, "chat")
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user"]
    assert "1-5" in RUBRIC_SELLER_NATURALNESS and "Score" in RUBRIC_SELLER_NATURALNESS


# --- full episodes through the runner ------------------------------------------------------------
@pytest.mark.anyio
async def test_runner_with_the_built_in_buyer(tmp_path) -> None:
    config = RunConfig(out=tmp_path / "run", tasks=["car-dealer"], models=["scripted/behavior"], episodes=12)
    result = await Runner(config).run()
    assert result.complete and result.errors == 0
    episodes = load_episodes(tmp_path / "run")
    assert len(episodes) == 12
    for episode in episodes:
        info = episode.info
        assert episode.models == {"agent": "scripted/behavior", "buyer": "scripted/buyer"}
        assert episode.turns[-1].done and "truncated" not in info
        assert episode.role_usage["buyer"]["calls"] == episode.length == info["turns"]
        assert info["decision"] in ("accepted", "rejected")
        assert episode.success == (info["decision"] == "accepted")
        budget = info["profile"]["budget"]
        expected = sale_reward(episode.success, info["price"], budget, info["msrp"])
        assert episode.return_ == pytest.approx(expected)
        assert "Decision=" not in episode.final_observation
        assert sale_price(episode) == (info["price"] if episode.success else None)


@pytest.mark.anyio
async def test_llm_buyer_over_http_accepts_and_the_tag_is_stripped(fake_server, tmp_path) -> None:
    buyer = (
        "openai/say@text=Deal! Output: Decision=Accept MSRP=$30,000 Buy Price=$28,000"
        f"@id={uuid.uuid4().hex[:8]}"
    )
    config = RunConfig(
        out=tmp_path / "run",
        tasks=["car-dealer"],
        models=["scripted/behavior"],
        episodes=3,
        roles={"buyer": buyer},
        role_options={"buyer": AgentOptions(api_base=fake_server.api_base)},
    )
    result = await Runner(config).run()
    assert result.complete and result.errors == 0
    for episode in load_episodes(tmp_path / "run"):
        assert episode.models["buyer"] == buyer and episode.length == 1 and episode.success
        budget = episode.info["profile"]["budget"]
        assert episode.return_ == pytest.approx(28_000 / ((budget + 30_000) / 2))
        assert episode.final_observation == "Deal!"
        assert (episode.info["decision"], episode.info["msrp"], episode.info["price"]) == (
            "accepted",
            30_000,
            28_000,
        )
        assert episode.role_usage["buyer"]["calls"] == 1 and episode.role_usage["buyer"]["tokens_in"] > 0
    served = [r for r in fake_server.requests() if r["model"] == buyer.removeprefix("openai/")]
    # system, the scene-setting user line, the buyer's opening, the seller's first message
    assert len(served) == 3 and all(r["messages"] == 4 for r in served)
    assert all(r["first_user"].startswith("(You walk into the dealership") for r in served)


@pytest.mark.anyio
async def test_llm_buyer_that_never_decides_ends_at_the_cap_with_zero(fake_server, tmp_path) -> None:
    buyer = f"openai/say@text=Hmm, tell me more.@id={uuid.uuid4().hex[:8]}"
    config = RunConfig(
        out=tmp_path / "run",
        tasks=["car-dealer"],
        models=["scripted/random"],
        episodes=1,
        roles={"buyer": buyer},
        role_options={"buyer": AgentOptions(api_base=fake_server.api_base)},
        task_options={"car-dealer": {"reward_mode": "revenue"}},
    )
    result = await Runner(config).run()
    assert result.complete and result.errors == 0
    (episode,) = load_episodes(tmp_path / "run")
    assert episode.length == MAX_TURNS and episode.turns[-1].done and "truncated" not in episode.info
    assert episode.return_ == 0.0 and not episode.success and episode.info["decision"] == "none"
    assert episode.info["reward_mode"] == "revenue"
    # one call per seller message, plus the re-prompt at the cap
    assert episode.role_usage["buyer"]["calls"] == MAX_TURNS + 1
    assert episode.final_observation == "Hmm, tell me more.\nHmm, tell me more."


def test_sale_price_reads_an_episode_or_its_info() -> None:
    info = {"decision": "accepted", "price": 28_000.0, "msrp": 30_000.0}
    episode = Episode("r", "k", "car-dealer", "1", 0, 0, 1, {"agent": "x"}, info=info)
    assert sale_price(info) == sale_price(episode) == 28_000.0
    assert sale_price({"decision": "rejected", "price": None}) is None and sale_price({}) is None
