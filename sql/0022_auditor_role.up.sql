-- message: Add the 'auditor' label to enum project_role (read-only audit access)

ALTER TYPE project_role ADD VALUE IF NOT EXISTS 'auditor';
