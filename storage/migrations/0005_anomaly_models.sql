-- Checkpoints of the shared anomaly models (river HalfSpaceTrees per period, and the flag
-- thresholds), one row per (consumer group, readings partition): a worker restores the
-- model of each partition it is assigned and saves it periodically and on revocation.
CREATE TABLE anomaly_models (
    app_id     text NOT NULL,
    partition  integer NOT NULL CHECK (partition >= 0),
    model      bytea NOT NULL,
    windows    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, partition)
);
