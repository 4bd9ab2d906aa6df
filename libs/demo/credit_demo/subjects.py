"""The demo's credit subjects: companies, social organisations and people with valid identifiers
(python-stdnum's check characters), names that read like real ones, and where they are based."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from stdnum.cn import ric, uscc

# GB/T 2260 county-level divisions (where subjects are registered or born), by province.
DISTRICTS: dict[str, list[tuple[str, str]]] = {
    "110000": [("110101", "Beijing"), ("110105", "Beijing"), ("110108", "Beijing"), ("110114", "Beijing")],
    "310000": [("310101", "Shanghai"), ("310112", "Shanghai"), ("310115", "Shanghai")],
    "320000": [("320102", "Nanjing"), ("320505", "Suzhou"), ("320211", "Wuxi")],
    "330000": [("330106", "Hangzhou"), ("330110", "Hangzhou"), ("330212", "Ningbo")],
    "440000": [("440106", "Guangzhou"), ("440305", "Shenzhen"), ("440604", "Foshan"), ("441900", "Dongguan")],
    "510000": [("510104", "Chengdu"), ("510107", "Chengdu"), ("510703", "Mianyang")],
}
PROVINCES = tuple(DISTRICTS)
PERSON_FIELDS = frozenset(
    {"court_enforcement", "taxation", "finance", "transport", "e_commerce", "food_drug", "labour_social_security"}
)
ORG_FIELDS = frozenset({"taxation", "labour_social_security", "food_drug", "market_regulation", "statistics"})


def fits(kind: str, field_: str) -> bool:
    """Whether subjects of `kind` are designated in `field_` (companies everywhere)."""
    if kind == "natural_person":
        return field_ in PERSON_FIELDS
    if kind == "other_org":
        return field_ in ORG_FIELDS
    return True


_BRANDS = (
    "Huaxin", "Zhongtai", "Hengda", "Jinlong", "Xinyuan", "Tianrui", "Dongfang", "Ruifeng", "Hongda", "Yongsheng",
    "Kaiyuan", "Baoli", "Shengshi", "Longteng", "Haitian", "Fuxing", "Xingye", "Jiahe", "Mingde", "Guotai",
    "Changjiang", "Huarun", "Zhongxin", "Lianhe", "Jinqiao", "Wanjia", "Anxin", "Hexin", "Tongda", "Shunfa",
)  # fmt: skip
# What a company of a field does (its first designation decides), as it appears in its name.
TRADES: dict[str, tuple[str, ...]] = {
    "taxation": ("Trading", "Commerce and Trade", "Industrial"),
    "customs": ("Import and Export", "International Trade", "Supply Chain"),
    "environment": ("Chemical", "Paper", "Printing and Dyeing", "Electroplating"),
    "food_drug": ("Food", "Pharmaceutical", "Dairy", "Catering Management"),
    "work_safety": ("Mining", "Hazardous Chemicals", "Fireworks", "Metallurgy"),
    "court_enforcement": ("Real Estate Development", "Investment", "Industrial"),
    "finance": ("Financial Leasing", "Microcredit", "Guarantee"),
    "labour_social_security": ("Labour Services", "Garment", "Property Management"),
    "market_regulation": ("Electrical Appliances", "Building Materials", "Auto Parts"),
    "e_commerce": ("Network Technology", "E-commerce", "Information Technology"),
    "transport": ("Logistics", "Freight", "Passenger Transport"),
    "construction": ("Construction Engineering", "Decoration Engineering", "Municipal Engineering"),
    "government_procurement": ("Equipment", "Office Supplies", "Medical Devices"),
    "statistics": ("Industrial", "Textile", "Machinery"),
}
_ORG_KINDS = ("Private School", "Elderly Care Centre", "Vocational Training School", "Rehabilitation Centre")
_SURNAMES = (
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou",
    "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Gao", "Luo",
)  # fmt: skip
_GIVEN = (
    "Wei", "Fang", "Min", "Jing", "Lei", "Qiang", "Jun", "Yang", "Yan", "Tao", "Ming", "Chao",
    "Xiuying", "Guiying", "Hua", "Ping", "Gang", "Hui", "Ling", "Bo", "Xin", "Jie", "Haiyan", "Jianguo",
)  # fmt: skip
_FOREIGN_GIVEN = ("John", "Maria", "Min-jun", "Olga", "Ahmed")
_FOREIGN_FAMILY = ("Smith", "Park", "Ivanova", "Khan", "Tanaka")
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(_SURNAMES)} {rng.choice(_GIVEN)}"


def _district(rng: random.Random, province: str | None) -> tuple[str, str]:
    return rng.choice(DISTRICTS[province if province in DISTRICTS else rng.choice(PROVINCES)])


def new_uscc(rng: random.Random, prefix: str, district: str) -> str:
    """A valid Unified Social Credit Code: registration authority and kind (`91` an enterprise,
    `52` a private non-enterprise unit), the district, an organisation code, the check character."""
    body = prefix + district + "".join(rng.choice(_USCC_ALPHABET) for _ in range(9))
    return body + uscc.calc_check_digit(body)


def wrong_check(code: str) -> str:
    """`code` with another check character: only the checksum fails (real such codes exist)."""
    return code[:-1] + ("1" if code[-1] != "1" else "2")


def new_resident_id(rng: random.Random, district: str) -> str:
    """A valid resident identity number of someone born 1955-2004 in `district`."""
    born = date(1955, 1, 1) + timedelta(days=rng.randrange(50 * 365))
    body = district + born.strftime("%Y%m%d") + f"{rng.randrange(1000):03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum's function ignores the last character


def company(rng: random.Random, field: str, province: str | None = None) -> dict[str, Any]:
    district, city = _district(rng, province)
    trade = rng.choice(TRADES.get(field, ("Trading",)))
    return {
        "kind": "legal_person",
        "scheme": "uscc",
        "id": new_uscc(rng, "91", district),
        "name": f"{city} {rng.choice(_BRANDS)} {trade} Co., Ltd.",
        "legal_representative": person_name(rng),
    }


def organisation(rng: random.Random, province: str | None = None) -> dict[str, Any]:
    district, city = _district(rng, province)
    return {
        "kind": "other_org",
        "scheme": "uscc",
        "id": new_uscc(rng, "52", district),
        "name": f"{city} {rng.choice(_BRANDS)} {rng.choice(_ORG_KINDS)}",
        "legal_representative": person_name(rng),
    }


def person(rng: random.Random, province: str | None = None) -> dict[str, Any]:
    """A resident (a few foreign nationals, identified by passport: scheme `other`)."""
    if rng.random() < 0.03:
        return {
            "kind": "natural_person",
            "scheme": "other",
            "id": f"{rng.choice('EGKP')}{rng.randrange(10**8):08d}",
            "name": f"{rng.choice(_FOREIGN_GIVEN)} {rng.choice(_FOREIGN_FAMILY)}",
        }
    district, _ = _district(rng, province)
    return {
        "kind": "natural_person",
        "scheme": "resident_id",
        "id": new_resident_id(rng, district),
        "name": person_name(rng),
    }
