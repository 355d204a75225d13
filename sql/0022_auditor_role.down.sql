-- preflight: SELECT NOT EXISTS (SELECT 1 FROM memberships WHERE role::text = 'auditor')

-- PostgreSQL cannot drop an enum label, so the type is rebuilt without it:
-- rename the old type, create the 3-label type, cast the column through
-- text, restore its default, drop the old type. Refused while a membership
-- has the auditor role (checked again under the table lock).

SELECT pg_advisory_xact_lock(2050255582);  -- 0x7A346ADE, enum rebuild lock
LOCK TABLE memberships IN ACCESS EXCLUSIVE MODE;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM memberships WHERE role::text = 'auditor') THEN
        RAISE EXCEPTION 'downgrade refused: a membership has the auditor role'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;

ALTER TYPE project_role RENAME TO project_role_pre_auditor;
CREATE TYPE project_role AS ENUM ('viewer', 'operator', 'admin');
ALTER TABLE memberships ALTER COLUMN role DROP DEFAULT;
ALTER TABLE memberships ALTER COLUMN role TYPE project_role USING role::text::project_role;
ALTER TABLE memberships ALTER COLUMN role SET DEFAULT 'viewer';
DROP TYPE project_role_pre_auditor;
