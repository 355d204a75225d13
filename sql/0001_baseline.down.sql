-- Removes everything 0001 created, in reverse dependency order. Extensions
-- are left in place (z4j-migrate owns them). No CASCADE: an object of
-- somebody else's that depends on these tables makes the downgrade fail
-- instead of being dropped silently.

DROP TRIGGER z4j_schedules_notify_trigger ON schedules;
DROP FUNCTION z4j_schedules_notify();
DROP TRIGGER audit_log_no_delete ON audit_log;
DROP TRIGGER audit_log_no_update ON audit_log;
DROP FUNCTION audit_log_forbid_mutation();

DROP TABLE export_jobs;
DROP TABLE saved_views;
DROP TABLE project_config;
DROP TABLE user_preferences;
DROP TABLE extension_store;
DROP TABLE feature_flags;
DROP TABLE z4j_meta;
DROP TABLE audit_log;
DROP TABLE alert_events;
DROP TABLE notification_deliveries;
DROP TABLE user_notifications;
DROP TABLE project_default_subscriptions;
DROP TABLE user_subscriptions;
DROP TABLE user_channels;
DROP TABLE notification_channels;
DROP TABLE scheduler_rate_buckets;
DROP TABLE pending_fires;
DROP TABLE schedule_fires;
DROP TABLE schedules;
DROP TABLE commands;
-- Dropping the partitioned parent drops its default and daily partitions.
DROP TABLE events;
DROP TABLE task_annotations;
DROP TABLE tasks;
DROP TABLE queues;
DROP TABLE workers;
DROP TABLE agent_workers;
DROP TABLE agents;
DROP TABLE api_keys;
DROP TABLE first_boot_tokens;
DROP TABLE password_reset_tokens;
DROP TABLE sessions;
DROP TABLE invitations;
DROP TABLE memberships;
DROP TABLE users;
DROP TABLE projects;

DROP TYPE worker_state;
DROP TYPE task_state;
DROP TYPE task_priority;
DROP TYPE schedule_kind;
DROP TYPE project_role;
DROP TYPE command_status;
DROP TYPE agent_state;
