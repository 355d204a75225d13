-- Data no-op. 0011 only rewrote data: the sub-second fractions it removed
-- are not recorded anywhere and the revisions/change-log rows it added are
-- valid history, so there is nothing to restore. No schema object changed.

SELECT 1;
