-- The relay is woken by a NOTIFY the application sends after the write committed
-- (agora_platform::outbox::OutboxWaker), no longer by this trigger inside the write. A
-- transaction that notifies holds a lock on the whole database from its pre-commit to its end,
-- the wait for a synchronous replica included: with the trigger, every post commit waited for
-- the one before it to reach a replica.
DROP TRIGGER feed_outbox_notify ON feed_outbox;
DROP FUNCTION feed_outbox_notify();
