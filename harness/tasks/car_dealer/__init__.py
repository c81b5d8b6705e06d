"""Car Dealer (LMRL-Gym §5.3), registered as ``car-dealer``: the agent sells cars to a simulated buyer.

The parts, each readable on its own:

* ``env``: the environment (``CarDealer``), the reward modes, the anchors, ``measure_policy``;
* ``catalog``: the buyer profile sets and the 80-car inventory (``data/car_*.json``, checked when
  read), and which buyer episode ``index`` meets;
* ``text``: the buyer's decision tag, what a seller's free text says (cars, features, prices), the
  offers on the table, and the seller's message in a model's reply (``read_message``);
* ``buyer``: the built-in buyer (``scripted/buyer``) and the system prompt of a model buyer;
* ``policies``: the scripted sellers (``random``, ``behavior``, ``overprice``).

This module re-exports the public names.
"""

from lmrl.tasks.car_dealer.buyer import LIES_TOLERATED, BuyerTraits, check_claims
from lmrl.tasks.car_dealer.catalog import (
    BRANDS,
    BUDGETS,
    BY_MODEL,
    CATALOG,
    FEATURES,
    PAIRS,
    PERSONALITIES,
    PROFILE_SALT,
    TYPES,
    Car,
    CatalogError,
    Profile,
    feature_phrase,
    load_catalog,
    profile_pair,
)
from lmrl.tasks.car_dealer.env import (
    BEST_RETURN,
    MAX_TURNS,
    PAPER_ANCHORS,
    REVENUE_ANCHORS,
    RUBRIC_SELLER_NATURALNESS,
    SALE_ANCHORS,
    WORST_RETURN,
    CarDealer,
    decision_reward,
    fancy_reward,
    measure_policy,
    revenue_reward,
    sale_price,
    sale_reward,
)
from lmrl.tasks.car_dealer.text import (
    DECISION_FORMAT,
    MAX_MESSAGE_CHARS,
    Decision,
    OfferTracker,
    find_cars,
    find_features,
    find_money,
    format_decision,
    parse_decision,
    read_message,
    split_decision,
)

__all__ = [
    "BEST_RETURN",
    "BRANDS",
    "BUDGETS",
    "BY_MODEL",
    "CATALOG",
    "DECISION_FORMAT",
    "FEATURES",
    "LIES_TOLERATED",
    "MAX_MESSAGE_CHARS",
    "MAX_TURNS",
    "PAIRS",
    "PAPER_ANCHORS",
    "PERSONALITIES",
    "PROFILE_SALT",
    "REVENUE_ANCHORS",
    "RUBRIC_SELLER_NATURALNESS",
    "SALE_ANCHORS",
    "TYPES",
    "WORST_RETURN",
    "BuyerTraits",
    "Car",
    "CarDealer",
    "CatalogError",
    "Decision",
    "OfferTracker",
    "Profile",
    "check_claims",
    "decision_reward",
    "fancy_reward",
    "feature_phrase",
    "find_cars",
    "find_features",
    "find_money",
    "format_decision",
    "load_catalog",
    "measure_policy",
    "parse_decision",
    "profile_pair",
    "read_message",
    "revenue_reward",
    "sale_price",
    "sale_reward",
    "split_decision",
]
