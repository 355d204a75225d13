-- preflight: SELECT NOT EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.recipient_user_id IS NOT NULL AND d.recipient_user_id IS DISTINCT FROM COALESCE((SELECT uc.user_id FROM user_channels uc WHERE uc.id = d.user_channel_id), (SELECT us.user_id FROM user_subscriptions us WHERE us.id = d.subscription_id)))

-- Refused while a delivery names a recipient that cannot be reconstructed
-- from its user channel or subscription (the owner would be lost).

DROP INDEX ix_notification_deliveries_recipient_sent;
ALTER TABLE notification_deliveries DROP CONSTRAINT fk_notification_deliveries_recipient_user_id;
ALTER TABLE notification_deliveries DROP COLUMN recipient_user_id;
