-- Devices seen on the readings topic: first and last reading time, the last reading itself.
CREATE TABLE devices (
    device_id    text COLLATE "C" PRIMARY KEY,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    last_reading jsonb,
    timezone     text
);
