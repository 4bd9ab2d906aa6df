-- Campaigns of special handling (contracts.md, Additions): a case may name one; the designations
-- naming one carry it in their record. GET /v1/campaigns counts both against the targets.
ALTER TABLE cases ADD COLUMN campaign text;
CREATE INDEX cases_campaign ON cases (campaign, applied_on) WHERE campaign IS NOT NULL;
CREATE INDEX designations_campaign ON designations ((record ->> 'campaign')) WHERE record ? 'campaign';
