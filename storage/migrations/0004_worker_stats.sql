-- Each worker's processing counters, published periodically; the API sums them.
CREATE TABLE worker_stats (
    worker_id  text PRIMARY KEY,
    updated_at timestamptz NOT NULL DEFAULT now(),
    stats      jsonb NOT NULL
);
