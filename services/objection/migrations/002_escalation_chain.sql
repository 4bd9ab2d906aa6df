-- An overdue item climbs the chain (the notice: objections must not hold a punishment forever): the
-- unit it was escalated to has its own time to decide (escalation_due_on), after which it goes one
-- level further up, to the national unit at the top (escalation_due_on null: nobody above).
-- Items already escalated before this migration get 14 days from their escalation.
ALTER TABLE objections ADD COLUMN escalations int NOT NULL DEFAULT 0, ADD COLUMN escalation_due_on date;
ALTER TABLE applications ADD COLUMN escalations int NOT NULL DEFAULT 0, ADD COLUMN escalation_due_on date;
UPDATE objections SET escalations = 1, escalation_due_on = (overdue_at AT TIME ZONE 'Asia/Shanghai')::date + 14
 WHERE status = 'overdue' AND escalated_to IS NOT NULL;
UPDATE applications SET escalations = 1, escalation_due_on = (overdue_at AT TIME ZONE 'Asia/Shanghai')::date + 14
 WHERE status = 'overdue' AND escalated_to IS NOT NULL;
CREATE INDEX objections_escalation_due ON objections (escalation_due_on) WHERE status = 'overdue';
CREATE INDEX applications_escalation_due ON applications (escalation_due_on) WHERE status = 'overdue';
