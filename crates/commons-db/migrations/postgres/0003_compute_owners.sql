-- Every submitter has a fair-share row from its first job on: leases only update it (they run
-- beside each other and must not insert; see commons-compute's writer).
INSERT INTO compute_owners (owner_id, last_served) SELECT DISTINCT owner_id, 0 FROM jobs
ON CONFLICT (owner_id) DO NOTHING;
