"""A realistic `data` for every message type of the contract, as it travels (JSON, no nulls)."""

from __future__ import annotations

from typing import Any

USCC = "91110000101623741K"
RESIDENT_ID = "110101199003071233"

COMPANY = {
    "kind": "legal_person",
    "scheme": "uscc",
    "id": USCC,
    "name": "北京示例科技有限公司",
    "legal_representative": "张伟",
}
PERSON = {"kind": "natural_person", "scheme": "resident_id", "id": RESIDENT_ID, "name": "李娜"}
DECISION = {
    "document_no": "京税罚〔2026〕118号",
    "decided_on": "2026-11-20",
    "legal_basis": "《重大税收违法失信主体信息公布管理办法》第六条",
    "facts": "2024年至2025年间虚开增值税专用发票，涉及税额人民币1,250万元。",
}
DESIGNATION_ID = "0193d1c2-7a51-7c3e-9f0a-3b1d2e4f5a6b"
RECORD: dict[str, Any] = {
    "designation_id": DESIGNATION_ID,
    "list": "black",
    "field": "taxation",
    "standard": "TAX-BLACK-01",
    "standard_version": 2,
    "subject": COMPANY,
    "unit": "110000-SAT",
    "unit_level": "provincial",
    "region": "110000",
    "decision": DECISION,
    "effective_from": "2026-11-25",
    "effective_to": "2029-11-24",
    "public": True,
    "status": "active",
}
REMOVED_RECORD: dict[str, Any] = {
    **RECORD,
    "status": "removed",
    "removal_reason": "objection_upheld",
    "removed_at": "2026-12-08T16:02:11+08:00",
}
KEY_SCRUTINY_RECORD: dict[str, Any] = {
    **RECORD,
    "designation_id": "0193d1c2-0000-7000-8000-000000000001",
    "list": "key_scrutiny",
    "standard": "TAX-KS-01",
    "standard_version": 1,
    "checksum_override": {"reason": "营业执照原件所载代码，登记机关确认校验位错误"},
}
OBJECTION_OPENED = {
    "objection_id": "0193d1c3-1111-7000-8000-000000000002",
    "designation_id": DESIGNATION_ID,
    "unit": "110000-SAT",
    "objector": {"kind": "subject", "id": USCC, "name": "北京示例科技有限公司", "contact": "010-88886666"},
    "grounds": "涉案发票已由税务机关认定为善意取得，不应认定为虚开。",
    "due_on": "2026-12-09",
}
RESTORATION_OPENED = {
    "application_id": "0193d1c4-2222-7000-8000-000000000003",
    "designation_id": DESIGNATION_ID,
    "unit": "110000-SAT",
    "due_on": "2026-12-01",
    "notify_by": "2026-12-09",
}
TRANSFER_RECOMMENDED = {
    "recommendation_id": "0193d1c5-3333-7000-8000-000000000004",
    "subject": COMPANY,
    "designation_id": KEY_SCRUTINY_RECORD["designation_id"],
    "unit": "110000-SAT",
    "conduct_report_id": "0193d1c5-4444-7000-8000-000000000005",
    "due_on": "2026-12-02",
}
ENTRY: dict[str, Any] = {
    "entry_id": DESIGNATION_ID,
    "subject": COMPANY,
    "field": "taxation",
    "standard": "TAX-BLACK-01",
    "unit": "110000-SAT",
    "region": "110000",
    "effective_from": "2026-11-25",
    "effective_to": "2029-11-24",
    "under_objection": False,
    "decision": DECISION,
}

EXAMPLES: dict[str, dict[str, Any]] = {
    # --- requests
    "credit.designation.designate": {
        "list": "black",
        "standard": "TAX-BLACK-01",
        "subject": COMPANY,
        "decision": DECISION,
        "effective_from": "2026-11-25",
        "effective_to": "2029-11-24",
        "transfer_from": KEY_SCRUTINY_RECORD["designation_id"],
        "checksum_override": {"reason": "营业执照原件所载代码，登记机关确认校验位错误"},
    },
    "credit.designation.remove": {
        "designation_id": DESIGNATION_ID,
        "reason": "revoked",
        "decision": {
            "document_no": "京税撤〔2026〕7号",
            "decided_on": "2026-12-01",
            "facts": "原认定事实有误。",
        },
    },
    "credit.designation.import": {
        "entries": [
            {
                "ref": "京税2019-0042",
                "list": "black",
                "standard": "TAX-BLACK-01",
                "subject": COMPANY,
                "decision": {**DECISION, "decided_on": "2019-03-11"},
                "effective_from": "2019-03-15",
                "effective_to": "2022-03-14",
            },
            {
                "ref": "京税2023-0117",
                "list": "key_scrutiny",
                "standard": "TAX-KS-01",
                "subject": PERSON,
                "decision": {**DECISION, "decided_on": "2023-06-02"},
                "effective_from": "2023-06-05",
                "effective_to": "2025-06-04",
                "removed_on": "2024-01-10",
                "removal_reason": "restored",
            },
        ]
    },
    "credit.designation.amend": {
        "designation_id": DESIGNATION_ID,
        "changes": {"facts": "涉及税额更正为人民币1,180万元。", "effective_to": "2028-11-24"},
        "reason": "复核更正涉案金额",
    },
    "credit.objection.file": {
        "designation_id": DESIGNATION_ID,
        "objector": OBJECTION_OPENED["objector"],
        "grounds": OBJECTION_OPENED["grounds"],
        "evidence": ["京税复〔2026〕33号", "https://files.example.cn/evidence/3391.pdf"],
    },
    "credit.objection.decide": {
        "objection_id": OBJECTION_OPENED["objection_id"],
        "outcome": "partially_upheld",
        "reasoning": "部分发票系善意取得，涉案金额予以调整，认定维持。",
        "decided_on": "2026-12-05",
    },
    "credit.restoration.apply": {
        "designation_id": DESIGNATION_ID,
        "applicant": {"id": USCC, "name": "北京示例科技有限公司", "contact": "010-88886666"},
        "measures": [
            {"kind": "obligation_performed", "detail": "补缴税款及滞纳金", "completed_on": "2027-03-01"},
            {
                "kind": "restoration_training",
                "detail": "法定代表人参加信用修复培训",
                "completed_on": "2027-03-10",
            },
            {
                "kind": "volunteer_service",
                "detail": "社区志愿服务",
                "completed_on": "2027-04-01",
                "hours": 40.0,
            },
        ],
        "evidence": ["完税证明 No.2027-0301-118"],
    },
    "credit.restoration.decide": {
        "application_id": RESTORATION_OPENED["application_id"],
        "outcome": "approved",
        "reasoning": "已履行法定义务，符合修复条件。",
        "decided_on": "2027-04-08",
    },
    "credit.conduct.report": {
        "subject": COMPANY,
        "field": "taxation",
        "serious": True,
        "occurred_on": "2027-01-15",
        "document_no": "京税稽〔2027〕12号",
        "description": "重点关注期间再次虚开发票。",
    },
    "credit.enforcement.report": {
        "designation_id": DESIGNATION_ID,
        "measure": "MOU-TAX-2026-P03",
        "applied_on": "2027-02-10",
        "outcome": "限制其参与政府采购活动",
        "description": "在政府采购资格审查中查询到其为失信主体，依法拒绝其投标。",
        "typical": True,
        "media": [
            {
                "outlet": "人民日报",
                "level": "national",
                "url": "https://www.people.com.cn/n1/2027/0212/c1001-1.html",
                "published_on": "2027-02-12",
            }
        ],
        "campaign": "CAMPAIGN-2027-TAX",
    },
    # --- credit.designation.events.v1
    "credit.designation.created": {"record": RECORD},
    "credit.designation.amended": {
        "record": {**RECORD, "effective_to": "2028-11-24"},
        "changes": {"effective_to": "2028-11-24"},
        "reason": "复核缩短期限",
    },
    "credit.designation.removed": {
        "record": REMOVED_RECORD,
        "reason": "objection_upheld",
        "related_id": OBJECTION_OPENED["objection_id"],
    },
    # --- credit.objection.events.v1
    "credit.objection.opened": OBJECTION_OPENED,
    "credit.objection.overdue": {
        "objection_id": OBJECTION_OPENED["objection_id"],
        "designation_id": DESIGNATION_ID,
        "unit": "110000-SAT",
        "escalated_to": "000000-SAT",
        "due_on": "2026-12-09",
    },
    "credit.objection.resolved": {
        "objection_id": OBJECTION_OPENED["objection_id"],
        "designation_id": DESIGNATION_ID,
        "unit": "110000-SAT",
        "outcome": "upheld",
        "reasoning": "认定依据不足，予以撤销。",
        "decided_on": "2026-12-08",
    },
    "credit.restoration.opened": RESTORATION_OPENED,
    "credit.restoration.overdue": {
        "application_id": RESTORATION_OPENED["application_id"],
        "designation_id": DESIGNATION_ID,
        "unit": "110000-SAT",
        "escalated_to": "000000-SAT",
        "due_on": "2026-12-01",
    },
    "credit.restoration.resolved": {
        "application_id": RESTORATION_OPENED["application_id"],
        "designation_id": DESIGNATION_ID,
        "unit": "110000-SAT",
        "outcome": "rejected",
        "reasoning": "未满最短公示期。",
        "decided_on": "2026-11-30",
    },
    # --- credit.warning.events.v1
    "credit.warning.listed": {
        "subject": COMPANY,
        "fields": ["taxation", "customs", "environment"],
        "designation_ids": ["d-1", "d-2", "d-3"],
        "since": "2027-01-20",
    },
    "credit.warning.updated": {
        "subject": COMPANY,
        "fields": ["taxation", "customs", "environment", "market"],
        "designation_ids": ["d-1", "d-2", "d-3", "d-4"],
        "since": "2027-01-20",
    },
    "credit.warning.cleared": {"subject": COMPANY, "remaining_fields": ["taxation", "customs"]},
    "credit.transfer.recommended": TRANSFER_RECOMMENDED,
    "credit.transfer.overdue": {
        "recommendation_id": TRANSFER_RECOMMENDED["recommendation_id"],
        "designation_id": KEY_SCRUTINY_RECORD["designation_id"],
        "unit": "110000-SAT",
        "escalated_to": "000000-SAT",
        "due_on": "2026-12-02",
    },
    # --- credit.cases.events.v1
    "credit.case.recorded": {
        "case_id": "0193d1c6-5555-7000-8000-000000000006",
        "designation_id": DESIGNATION_ID,
        "subject": COMPANY,
        "list": "black",
        "field": "taxation",
        "measure": "MOU-TAX-2026-P03",
        "measure_kind": "punishment",
        "unit": "110000-CZJ",
        "province": "110000",
        "applied_on": "2027-02-10",
        "typical": True,
        "media_reported": True,
    },
    # --- credit.unit.inbox.v1
    "credit.inbox.objection": {"objection": OBJECTION_OPENED, "designation": RECORD},
    "credit.inbox.restoration": {"restoration": RESTORATION_OPENED, "designation": RECORD},
    "credit.inbox.transfer": {"transfer": TRANSFER_RECOMMENDED, "designation": KEY_SCRUTINY_RECORD},
    "credit.inbox.escalation": {
        "kind": "objection",
        "item_id": OBJECTION_OPENED["objection_id"],
        "unit": "110000-SAT",
        "escalated_to": "000000-SAT",
        "due_on": "2026-12-09",
        "designation": RECORD,
    },
    # --- credit.lists.changes.v1 / credit.lists.public.v1
    "credit.list.entry_added": {
        "seq": 1,
        "list": "black",
        "entry": ENTRY,
        "at": "2026-11-25T09:30:02+08:00",
        "decided_on": "2026-11-20",
        "published_at": "2026-11-25T09:30:02+08:00",
    },
    # --- credit.subject.notices.v1
    "credit.notice.designated": {
        "subject": PERSON,
        "designation_id": DESIGNATION_ID,
        "list": "black",
        "standard": "TAX-BLACK-01",
        "unit": "110000-SAT",
        "effective_from": "2026-11-25",
        "effective_to": "2029-11-24",
        "rights": {"objection": True, "restoration_from": "2027-11-25"},
    },
    "credit.notice.removed": {"subject": PERSON, "designation_id": DESIGNATION_ID, "reason": "restored"},
    "credit.notice.objection_resolved": {
        "subject": COMPANY,
        "id": OBJECTION_OPENED["objection_id"],
        "outcome": "rejected",
        "reasoning": "发票认定有税务稽查结论为据，异议理由不成立。",
    },
    "credit.notice.restoration_resolved": {
        "subject": COMPANY,
        "id": RESTORATION_OPENED["application_id"],
        "outcome": "approved",
        "reasoning": "已补缴税款及滞纳金并完成信用修复培训。",
    },
    "credit.list.entry_updated": {
        "seq": 2,
        "list": "black",
        "entry": {**ENTRY, "under_objection": True},
        "reason": "objection_opened",
        "at": "2026-11-26T10:00:00+08:00",
    },
    "credit.list.entry_removed": {
        "seq": 3,
        "list": "key_scrutiny",
        "entry": {
            **ENTRY,
            "subject": {**PERSON, "id": "110101********1233"},
            "standard": "TAX-KS-01",
            "decision": {k: v for k, v in DECISION.items() if k != "facts"},
        },
        "reason": "transferred",
        "at": "2027-02-01T00:00:00+08:00",
    },
    # --- credit.feedback.v1 / credit.deadletter.v1
    "credit.request.accepted": {
        "request_id": DESIGNATION_ID,
        "request_type": "credit.designation.designate",
        "result_id": DESIGNATION_ID,
    },
    "credit.request.rejected": {
        "request_id": "0193d1c7-6666-7000-8000-000000000007",
        "request_type": "credit.designation.designate",
        "errors": [
            {
                "code": "invalid_checksum",
                "field": "subject.id",
                "message": "the check character does not match",
            },
            {"code": "level_too_low", "field": "standard", "message": "the standard needs a provincial unit"},
        ],
    },
    "credit.deadletter.recorded": {
        "service": "designation",
        "topic": "credit.designation.requests.v1",
        "partition": 7,
        "offset": 12345,
        "key_b64": "OTExMTAwMDAxMDE2MjM3NDFL",
        "value_b64": "eyJub3QiOiAiYW4gZXZlbnQifQ==",
        "error": "not a CloudEvent: field required: specversion",
    },
    # --- credit.reference.v1
    "credit.reference.upserted": {
        "kind": "unit",
        "code": "110000-SAT",
        "name": "国家税务总局北京市税务局",
        "level": "provincial",
        "region": "110000",
        "unit_kind": "department",
        "authorised_fields": ["taxation"],
        "parent": "000000-SAT",
        "liaison": {"name": "王强", "title": "信用管理处处长", "phone": "010-55550000"},
        "active": True,
    },
}

REFERENCE_EXAMPLES: list[dict[str, Any]] = [
    EXAMPLES["credit.reference.upserted"],
    {"kind": "field", "code": "taxation", "name": "税务", "key_field": True},
    {
        "kind": "standard",
        "code": "TAX-BLACK-01",
        "field": "taxation",
        "list": "black",
        "title": "重大税收违法失信主体",
        "legal_basis": "《重大税收违法失信主体信息公布管理办法》",
        "min_level": "provincial",
        "default_period_days": 1095,
        "max_period_days": 1825,
        "restorable": True,
        "min_days_before_restoration": 365,
        "public": True,
        "status": "in_force",
        "version": 2,
    },
    {
        "kind": "mou",
        "code": "MOU-TAX-2026",
        "title": "关于对重大税收违法失信主体实施联合惩戒的合作备忘录",
        "signed_on": "2026-01-15",
        "fields": ["taxation"],
        "measures": [
            {
                "code": "MOU-TAX-2026-P03",
                "measure_kind": "punishment",
                "list": "black",
                "implementing_fields": ["procurement"],
                "description": "限制参与政府采购活动",
                "legal_basis": "《政府采购法》第二十二条",
            }
        ],
    },
    {"kind": "calendar", "code": "2027", "holidays": ["2027-01-01"], "working_weekend_days": ["2027-02-07"]},
    {
        "kind": "key",
        "code": "110000-SAT-2026-1",
        "principal": "unit:110000-SAT",
        "alg": "Ed25519",
        "public_key": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        "not_before": "2026-01-01T00:00:00+08:00",
        "not_after": "2027-12-31T23:59:59+08:00",
    },
    {
        "kind": "campaign",
        "code": "CAMPAIGN-2027-TAX",
        "title": "虚开骗税专项治理行动",
        "fields": ["taxation"],
        "regions": ["110000", "440000"],
        "starts_on": "2027-01-01",
        "ends_on": "2027-06-30",
        "targets": {"designations": 200, "cases": 50},
    },
]
