"""The synthetic retailer: products, stores, customers, places and message texts."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class CatalogueProduct:
    product_id: str
    sku: str
    name: str
    category: str
    price: Decimal


@dataclass(frozen=True)
class Store:
    store_id: str
    city: str
    country: str
    currency: str
    tills: tuple[str, ...]


_PRODUCTS: dict[str, list[tuple[str, str]]] = {
    "electronics": [
        ("Wireless Earbuds", "79.99"), ("Noise-Cancelling Headphones", "249.00"), ("4K Smart TV", "649.00"),
        ("Bluetooth Speaker", "59.99"), ("USB-C Charger 65W", "34.99"), ("Smartwatch", "199.00"),
        ("10in Tablet", "329.00"), ("Gaming Mouse", "49.99"), ("14in Laptop", "1099.00"),
    ],
    "apparel": [
        ("Organic Cotton T-Shirt", "19.99"), ("Slim Fit Jeans", "59.95"), ("Rain Jacket", "89.00"),
        ("Wool Sweater", "69.90"), ("Running Socks 3-Pack", "12.99"), ("Leather Belt", "29.95"),
        ("Summer Dress", "49.99"), ("Zip Hoodie", "44.95"), ("Canvas Sneakers", "79.95"),
    ],
    "home": [
        ("Ceramic Mug", "8.99"), ("Cotton Bath Towel", "14.99"), ("Non-Stick Frying Pan", "34.90"),
        ("Scented Candle", "12.50"), ("LED Desk Lamp", "39.99"), ("Throw Blanket", "29.99"),
        ("Chef's Knife", "59.00"), ("Espresso Machine", "299.00"), ("Storage Box Set", "24.99"),
    ],
    "beauty": [
        ("Hydrating Face Cream", "24.90"), ("Vitamin C Serum", "29.95"), ("Shampoo 400ml", "6.49"),
        ("Lip Balm", "3.49"), ("Eau de Parfum 50ml", "69.00"), ("Sunscreen SPF 50", "14.99"),
        ("Electric Toothbrush", "59.99"), ("Hair Dryer", "44.99"),
    ],
    "toys": [
        ("Building Blocks Set", "49.99"), ("Plush Bear", "17.99"), ("Puzzle 1000 Pieces", "14.99"),
        ("Remote Control Car", "39.95"), ("Family Board Game", "29.99"), ("Wooden Train Set", "34.90"),
        ("Arts & Crafts Kit", "19.99"), ("Doll House", "89.00"),
    ],
    "grocery": [
        ("Ground Coffee 500g", "8.99"), ("Organic Green Tea", "4.49"), ("Dark Chocolate 100g", "2.29"),
        ("Olive Oil 1l", "11.99"), ("Granola 750g", "4.99"), ("Sparkling Water 6x1l", "3.99"),
        ("Durum Pasta 500g", "1.49"), ("Wildflower Honey 500g", "6.99"),
    ],
    "sports": [
        ("Yoga Mat", "29.99"), ("Dumbbell Set 10kg", "49.99"), ("Trail Running Shoes", "119.00"),
        ("Cycling Helmet", "64.90"), ("Insulated Water Bottle", "14.99"), ("Tennis Racket", "89.95"),
        ("Match Football", "24.99"), ("Fitness Tracker", "79.00"), ("Two-Person Tent", "149.00"),
    ],
}  # fmt: skip

_FLAT = [(category, name, price) for category, items in _PRODUCTS.items() for name, price in items]
PRODUCTS: tuple[CatalogueProduct, ...] = tuple(
    CatalogueProduct(f"P{1001 + i}", f"{category[:3].upper()}-{1001 + i}", name, category, Decimal(price))
    for i, (category, name, price) in enumerate(_FLAT)
)
CATEGORIES: tuple[str, ...] = tuple(_PRODUCTS)

STORES: tuple[Store, ...] = (
    Store("S01", "Berlin", "DE", "EUR", ("S01-T1", "S01-T2", "S01-T3", "S01-T4")),
    Store("S02", "Hamburg", "DE", "EUR", ("S02-T1", "S02-T2", "S02-T3")),
    Store("S03", "Munich", "DE", "EUR", ("S03-T1", "S03-T2")),
    Store("S04", "New York", "US", "USD", ("S04-T1", "S04-T2", "S04-T3", "S04-T4")),
    Store("S05", "Chicago", "US", "USD", ("S05-T1", "S05-T2", "S05-T3")),
    Store("S06", "Austin", "US", "USD", ("S06-T1", "S06-T2")),
)

CITIES: dict[str, tuple[str, ...]] = {
    "DE": ("Berlin", "Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt", "Leipzig"),
    "US": ("New York", "New York", "Chicago", "Austin", "Boston", "Seattle", "Denver"),
}
FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "DE": ("Anna", "Lena", "Julia", "Sophie", "Marie", "Laura", "Lukas", "Jonas", "Felix", "Paul",
           "Maximilian", "Leon", "Katrin", "Sabine", "Thomas", "Stefan", "Jan", "Claudia", "Hannah", "Tobi"),
    "US": ("Emily", "Olivia", "Ava", "Madison", "Sarah", "Jessica", "Ashley", "James", "Michael", "David",
           "Daniel", "Matthew", "Chris", "Ryan", "Tyler", "Brandon", "Megan", "Rachel", "Kevin", "Nicole"),
}  # fmt: skip
LAST_NAMES: dict[str, tuple[str, ...]] = {
    "DE": ("Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
           "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Neumann", "Schwarz", "Zimmermann", "Braun"),
    "US": ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
           "Martinez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee"),
}  # fmt: skip
EMAIL_DOMAINS: dict[str, tuple[str, ...]] = {
    "DE": ("gmail.com", "web.de", "gmx.de", "t-online.de", "outlook.de"),
    "US": ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com"),
}
US_AREA_CODES = ("212", "312", "512", "617", "206", "303", "646", "773")

PLATFORMS = ("twitter", "instagram", "facebook", "tiktok", "trustpilot")
PLATFORM_WEIGHTS = (35, 25, 15, 10, 15)
# where customers comment on the brand's posts and send it direct messages (not review sites)
CONVERSATION_PLATFORMS = ("instagram", "facebook", "twitter", "tiktok")
CONVERSATION_PLATFORM_WEIGHTS = (40, 30, 20, 10)
PAYMENT_REASONS = ("insufficient_funds", "card_declined", "expired_card", "do_not_honor", "incorrect_cvc")
PAYMENT_REASON_WEIGHTS = (35, 30, 15, 15, 5)
PAYMENT_METHODS: dict[str, tuple[str, ...]] = {
    "EUR": ("card", "card", "paypal", "sepa_debit"),
    "USD": ("card", "card", "card", "paypal"),
}
SHIPPING_METHODS = ("standard", "express", "click_and_collect")
SHIPPING_WEIGHTS = (70, 20, 10)
CANCEL_REASONS = ("changed_mind", "found_cheaper", "ordered_by_mistake", "delivery_too_slow")
REFUND_REASONS = ("damaged", "wrong_item", "not_as_described", "no_longer_needed", "late_delivery")
CHARGEBACK_REASONS = ("fraudulent", "product_not_received", "duplicate", "product_unacceptable")
CHARGEBACK_REASON_WEIGHTS = (40, 30, 10, 20)
INVOICE_METHODS: dict[str, str] = {"EUR": "sepa_credit_transfer", "USD": "ach"}
# payment terms in days: 30 or 14, and a few invoices the accounting system exports late, already overdue
INVOICE_TERMS_DAYS, INVOICE_TERMS_WEIGHTS = (30, 14, -2), (85, 10, 5)
CAMPAIGNS = ("spring-sale", "new-arrivals", "loyalty-news", "back-in-stock")
EMAIL_BOUNCE_SHARE = 0.05  # of campaign e-mails (the rest are delivered)
EMAIL_OPEN_SHARE = 0.45  # of campaign e-mails
EMAIL_CLICK_SHARE = 0.3  # of those opened
EMAIL_OPT_OUT_SHARE = 0.05  # of those delivered: an unsubscribe or a spam report
PUSH_TAP_SHARE = 0.2
TENDERS = ("card", "cash", "mobile", "voucher")
TENDER_WEIGHTS = (60, 25, 12, 3)
# how a store refunds a return paid with each tender (a voucher's value comes back as store credit)
REFUND_METHODS: dict[str, str] = {"card": "card", "cash": "cash", "mobile": "mobile", "voucher": "store_credit"}
RETURN_REASONS = ("wrong_size", "defective", "changed_mind", "gift_return", "not_as_described")
RETURN_REASON_WEIGHTS = (35, 20, 25, 10, 10)
SUPPORT_AGENTS = ("anna.k", "ben.m", "carla.r", "deniz.o", "evan.t")
CASE_RESOLUTIONS = (
    "Refund issued.",
    "Replacement sent.",
    "Voucher of 10.00 sent as an apology.",
    "Explained the delay; the order has since been delivered.",
    "Passed on to the store manager.",
)

# social messages: the kind (mention, comment on a brand post, direct message) by sentiment
SOCIAL_KINDS = ("social.mention", "social.comment", "social.direct_message")
COMPLAINT_KIND_WEIGHTS = (55, 25, 20)
PRAISE_KIND_WEIGHTS = (60, 35, 5)
BRAND_POSTS = 40  # comments land on one of this many recent posts per platform
# customers first seen identifying who sign up then (the others sign in to an account from before the traffic)
SIGNUP_SHARE = 0.4
# the share of sign-ups opting in to marketing, by channel, on the sign-up form
SIGNUP_CONSENT: dict[str, float] = {"email": 0.8, "sms": 0.3}

COMPLAINTS = (
    "My order still hasn't arrived and nobody answers my emails. Really disappointed.",
    "The {product} I bought broke after two days. Not what I expect for the money!",
    "Waited 25 minutes at the till in {city} today, only one checkout open. Ridiculous.",
    "Charged twice for the same order?! Please sort this out.",
    "Your checkout keeps failing on my phone. Third time trying to buy the {product}.",
    "Returned the {product} three weeks ago and still no refund.",
    "Rude staff at the {city} store. Won't be coming back.",
)
PRAISE = (
    "Love my new {product}, thank you!",
    "Super friendly team at the {city} store today.",
    "Fast delivery and great packaging. Will order again!",
    "The {product} is even better than I hoped.",
)


GENDERS = ("female", "male", "non-binary")


@dataclass
class Customer:
    """A shopper and their journey state (anonymous -> identified -> cart -> checkout -> payment)."""

    customer_id: str
    loyalty_id: str | None
    anonymous_id: str
    first_name: str
    last_name: str
    email: str
    phone: str
    age: int
    gender: str
    city: str
    country: str
    children: int
    identified: bool = False
    cart_id: str | None = None
    cart: dict[str, int] = field(default_factory=dict)  # product_id -> quantity
    order_id: str | None = None  # set while in checkout
    payment_method: str | None = None  # set once payment info is entered during checkout
    payment_id: str | None = None  # set once that payment is authorised
    known: bool = False  # identified at least once: signed up then, or signed in to an older account
    consents: list[str] = field(default_factory=list)  # marketing channels opted in to, in grant order

    @property
    def currency(self) -> str:
        return "EUR" if self.country == "DE" else "USD"


def random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def new_customer(rng: random.Random) -> Customer:
    country = rng.choices(("DE", "US"), (55, 45))[0]
    first, last = rng.choice(FIRST_NAMES[country]), rng.choice(LAST_NAMES[country])
    email = f"{first}.{last}{rng.randint(1, 9999)}@{rng.choice(EMAIL_DOMAINS[country])}".lower()
    if country == "DE":
        phone = f"+49{rng.choice(('151', '160', '170', '176'))}{rng.randint(0, 99_999_999):08d}"
    else:
        phone = f"+1{rng.choice(US_AREA_CODES)}{rng.randint(2_000_000, 9_999_999)}"
    customer_id, anonymous_id = f"cus_{rng.getrandbits(40):010x}", random_uuid(rng)
    loyalty_id = f"LOY{rng.randint(0, 10**10 - 1):010d}" if rng.random() < 0.7 else None
    age, gender = min(max(int(rng.gauss(42, 14)), 18), 90), rng.choices(GENDERS, (49, 48, 3))[0]
    city, children = rng.choice(CITIES[country]), rng.choices(range(5), (40, 25, 25, 7, 3))[0]
    person = (first, last, email, phone, age, gender, city, country, children)
    return Customer(customer_id, loyalty_id, anonymous_id, *person)


# ---- the product catalogue and order fulfilment ----------------------------------------------------------
PRODUCT_LIFE = {  # category -> (warranty months, expected lifespan months)
    "electronics": (24, 48),
    "home": (24, 60),
    "sports": (12, 36),
    "toys": (12, 24),
    "apparel": (None, 18),
}
CARRIERS = ("DHL", "UPS", "DPD", "GLS", "Hermes")
DELIVERY_FAILURES = ("nobody home", "address not found", "parcel damaged", "refused at the door")

# association members: plans (fee by currency, months per term; a one-month trial is due its renewal at
# once) and the association's own events (a members' evening happening now, events weeks ahead)
MEMBERSHIP_PLANS: dict[str, tuple[dict[str, str], int]] = {
    "standard": ({"EUR": "60.00", "USD": "65.00"}, 12),
    "reduced": ({"EUR": "30.00", "USD": "35.00"}, 12),
    "trial": ({"EUR": "0.00", "USD": "0.00"}, 1),
}
MEMBERSHIP_PLAN_WEIGHTS = (60, 25, 15)
MEMBER_SHARE = 0.05  # of the customers: the association's members
ASSOCIATION_EVENTS = ("Annual conference", "Regional meetup", "Workshop", "Webinar")
# ---- service cases and feedback ----------------------------------------------------------------------------
CASE_CHANNELS = ("phone", "email", "chat", "store")
CASE_CHANNEL_WEIGHTS = (35, 30, 25, 10)
CASE_SUBJECTS = (  # (category, subject)
    ("repair", "The {product} stopped working"),
    ("delivery", "The {product} arrived damaged"),
    ("product", "How do I set up the {product}?"),
    ("billing", "Charged twice for the {product}"),
)
NPS_WEIGHTS = (2, 1, 2, 2, 3, 5, 6, 12, 18, 22, 27)  # 0 … 10
DETRACTOR_TEXTS = ("Took far too long to get an answer.", "Nobody called me back.", "Still not fixed.")
RATING_WEIGHTS = (6, 6, 13, 30, 45)  # 1 … 5 stars
REVIEW_TEXTS = (  # by rating
    "The {product} broke within a week.",
    "Disappointed with the {product}.",
    "The {product} is fine, nothing special.",
    "Happy with the {product}.",
    "Love the {product}!",
)
