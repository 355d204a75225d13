-- message: notification_deliveries.recipient_user_id (FK users SET NULL), backfilled from the user channel or subscription owner, plus recipient index

LOCK TABLE notification_deliveries, user_subscriptions IN ACCESS EXCLUSIVE MODE;

ALTER TABLE notification_deliveries ADD COLUMN recipient_user_id UUID;
ALTER TABLE notification_deliveries ADD CONSTRAINT fk_notification_deliveries_recipient_user_id
    FOREIGN KEY (recipient_user_id) REFERENCES users (id) ON DELETE SET NULL;

UPDATE notification_deliveries d
SET recipient_user_id = COALESCE(
        (SELECT uc.user_id FROM user_channels uc WHERE uc.id = d.user_channel_id),
        (SELECT us.user_id FROM user_subscriptions us WHERE us.id = d.subscription_id))
WHERE d.user_channel_id IS NOT NULL OR d.subscription_id IS NOT NULL;

CREATE INDEX ix_notification_deliveries_recipient_sent ON notification_deliveries (recipient_user_id, sent_at DESC);
