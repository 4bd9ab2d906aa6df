"""The prose of the demo's requests: decision documents' numbers, facts, grounds, reasoning and
media reports, in the shapes departments write them."""

from __future__ import annotations

import random
from datetime import date

# The one-character abbreviation of a province in document numbers (national units: 国).
PROVINCE_ABBR = {
    "100000": "国", "110000": "京", "310000": "沪", "320000": "苏", "330000": "浙", "440000": "粤", "510000": "川",
}  # fmt: skip
# The line's abbreviation in a unit's document numbers (the part of the unit code after the dash).
SYSTEM_ABBR = {
    "SAT": "税稽", "GAC": "关缉", "MEE": "环", "SAMR": "市监", "MEM": "应急", "MOT": "交运", "MOHRSS": "人社监",
    "PBOC": "银", "NFRA": "金监", "MOFCOM": "商", "MOHURD": "建", "NBS": "统", "MOF": "财库", "NMPA": "药监",
    "CCIA": "建协", "CRTA": "道协", "CFDA": "食药监",
}  # fmt: skip

# What a black or key-scrutiny decision says happened, by field.
PUNISHABLE_FACTS: dict[str, tuple[str, ...]] = {
    "taxation": (
        "Issued {n} false VAT special invoices with a total tax amount of RMB {m} million.",
        "Evaded taxes of RMB {m} million by concealing sales income over three tax years.",
    ),
    "customs": (
        "Smuggled goods declared at RMB {m} million by a false declaration of origin.",
        "Misdeclared commodity codes on {n} declarations, evading duties of RMB {m} million.",
    ),
    "environment": (
        "Discharged untreated wastewater through a concealed pipe; COD at {n} times the limit.",
        "Falsified automatic emission monitoring data on {n} occasions.",
    ),
    "food_drug": (
        "Produced food with prohibited additives; {n} batches recalled.",
        "Sold counterfeit medicines worth RMB {m} million.",
    ),
    "work_safety": (
        "A production safety accident killed {n} workers; hazard checks had not been carried out.",
        "Concealed a production safety accident for {n} days.",
    ),
    "court_enforcement": (
        "Has the means but refuses to perform an effective judgment: RMB {m} million outstanding.",
        "Evaded enforcement by transferring {n} properties after the judgment.",
    ),
    "finance": (
        "Defaulted on bank loans of RMB {m} million while able to repay.",
        "Raised funds illegally from {n} investors.",
    ),
    "labour_social_security": (
        "Refused to pay wages of RMB {m} million owed to {n} workers.",
        "Did not pay social insurance for {n} employees for 18 months.",
    ),
    "market_regulation": (
        "Sold products failing national standards; {n} batches sampled unqualified.",
        "Obtained company registration with false materials.",
    ),
    "e_commerce": (
        "Organised {n} thousand fake orders and reviews on a platform.",
        "Sold counterfeit goods online, sales of RMB {m} million.",
    ),
    "transport": (
        "Overloaded freight vehicles {n} times within one year.",
        "Operated passenger transport without a licence.",
    ),
    "construction": (
        "Subcontracted a project illegally and used substandard steel.",
        "Forged qualification certificates in a public tender.",
    ),
    "government_procurement": (
        "Provided false materials in a government procurement bid.",
        "Colluded with {n} other bidders in a procurement project.",
    ),
    "statistics": (
        "Overstated output value by RMB {m} million in statistical returns.",
        "Refused to provide statistical information in the economic census.",
    ),
}
RED_FACTS = (
    "Rated an A-level taxpayer for {n} consecutive years.",
    "Certified as an advanced enterprise after an audit; no violations on record for {n} years.",
    "Exemplary compliance in inspections for {n} consecutive years.",
)
AMEND_FACTS = (
    "Corrected: the amount established by the investigation is RMB {m} million.",
    "Corrected: the period of the conduct was {n} months, not as first stated.",
    "Supplemented with the findings of the review hearing.",
)
AMEND_REASONS = ("Clerical error in the decision.", "Facts corrected after review.", "Period shortened after review.")
OBJECTION_GROUNDS = (
    "The facts in the decision are wrong: the amount was paid before the decision.",
    "The decision names the wrong company: the identifier belongs to another entity.",
    "The conduct was corrected within the time limit the notice set.",
    "The procedure was not followed: no hearing was offered before the decision.",
)
UNIT_GROUNDS = (
    "Our records show the subject performed its obligations; please review before we apply the measure.",
    "The subject's identifier does not match our registration data.",
)
OBJECTION_REASONING = {
    "upheld": "The evidence shows the decision was wrong; the entry is removed.",
    "partially_upheld": "The facts are partly wrong; the entry is kept and the facts are corrected.",
    "rejected": "The evidence does not change the facts established; the entry stands.",
}
RESTORATION_MEASURES = {
    "obligation_performed": ("Paid the tax, late fees and fines in full.", "Paid the outstanding wages and penalties."),
    "credit_commitment": ("Signed and published a credit commitment on the portal.",),
    "restoration_training": ("Attended the credit restoration course of the provincial credit centre.",),
    "volunteer_service": ("Volunteer service in the community.",),
    "public_interest_service": ("Public-interest service at the district environmental station.",),
}
RESTORATION_REASONING = {
    "approved": "The obligations are performed and the measures taken are sufficient.",
    "rejected": "The obligations are not performed in full; the application is refused.",
}
CONDUCT = (
    "Untrustworthy conduct established by an inspection.",
    "Violation found in a random inspection (双随机).",
    "Repeated violation after a rectification notice.",
)
SERIOUS_CONDUCT = (
    "Serious untrustworthy conduct during the key-scrutiny period: repeated after a final warning.",
    "Serious violation established by a special inspection campaign.",
)
OUTCOMES = {
    "punishment": ("Applied as the memorandum provides.", "Application refused under the memorandum.", "Bid rejected."),
    "reward": ("Green channel granted.", "Inspection waived under the memorandum.", "Priority handling granted."),
}
# Media outlets by level (provincial and local ones by province).
NATIONAL_MEDIA = (("People's Daily", "people.com.cn"), ("Xinhua", "news.cn"), ("CCTV", "cctv.com"))
PROVINCIAL_MEDIA = {
    "110000": ("Beijing Daily", "bjd.com.cn"),
    "310000": ("Jiefang Daily", "jfdaily.com"),
    "320000": ("Xinhua Daily", "xhby.net"),
    "330000": ("Zhejiang Daily", "zjol.com.cn"),
    "440000": ("Southern Daily", "southcn.com"),
    "510000": ("Sichuan Daily", "scdaily.cn"),
}
LOCAL_MEDIA = (
    ("Guangzhou Daily", "gzdaily.cn"),
    ("Hangzhou Daily", "hangzhou.com.cn"),
    ("Chengdu Business Daily", "cdsb.com"),
)


def fill(rng: random.Random, template: str) -> str:
    return template.format(n=rng.randint(2, 40), m=round(rng.uniform(0.3, 80.0), 1))


def document_no(unit_code: str, kind: str, year: int, seq: int) -> str:
    """A decision's number as the unit writes it: `粤税稽罚〔2026〕118号`, or a court's case
    number `（2026）粤0106执118号`."""
    region, _, system = unit_code.partition("-")
    province = PROVINCE_ABBR.get(region[:2] + "0000", "国")
    if system == "SPC":
        return f"（{year}）{province}{region[2:]}执{seq}号"
    return f"{province}{SYSTEM_ABBR.get(system, system)}{kind}〔{year}〕{seq}号"


def media_report(rng: random.Random, province: str, case_id: str, published_on: date) -> dict[str, str]:
    """One media report of a case: national, the province's daily or a local paper."""
    roll = rng.random()
    if roll < 0.3 or province not in PROVINCIAL_MEDIA:
        (outlet, site), level = rng.choice(NATIONAL_MEDIA), "national"
    elif roll < 0.8:
        (outlet, site), level = PROVINCIAL_MEDIA[province], "provincial"
    else:
        (outlet, site), level = rng.choice(LOCAL_MEDIA), "local"
    return {
        "outlet": outlet,
        "level": level,
        "url": f"https://www.{site}/credit/{published_on:%Y%m}/{case_id[-12:]}.html",
        "published_on": published_on.isoformat(),
    }
