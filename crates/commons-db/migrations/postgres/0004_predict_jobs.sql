-- Batch inference (issue 16): jobs of kind 'predict', made of units of role 'predict'.
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('train', 'eval', 'predict', 'noop'));
ALTER TABLE units DROP CONSTRAINT units_role_check;
ALTER TABLE units ADD CONSTRAINT units_role_check CHECK (role IN ('train', 'eval', 'predict', 'noop'));
