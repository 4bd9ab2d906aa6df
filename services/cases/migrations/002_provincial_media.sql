-- The media indicator counts cases reported by provincial media platforms only (the notice,
-- section VII; contracts.md, Fidelity rules): the tallies' media_cases are recounted from the cases
-- they add up, which keep every media report with its level.
UPDATE case_tallies AS t
   SET media_cases = (
       SELECT count(*)
         FROM cases AS c
        WHERE c.applied_on >= make_date(t.year, t.month, 1)
          AND c.applied_on < make_date(t.year, t.month, 1) + interval '1 month'
          AND c.province = t.province AND c.unit = t.unit AND c.field = t.field AND c.list = t.list
          AND c.measure = t.measure
          AND EXISTS (SELECT 1 FROM jsonb_array_elements(c.media) AS m WHERE m->>'level' = 'provincial'));
