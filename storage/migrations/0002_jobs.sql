-- Jobs requested over the API and run by the job agent: parameters, status, progress,
-- result, error and execution time.
CREATE TABLE jobs (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL,
    status       text NOT NULL,
    parameters   jsonb NOT NULL DEFAULT '{}'::jsonb,
    result       jsonb,
    error        text,
    progress     integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    duration_s   double precision,
    worker_id    text,
    heartbeat_at timestamptz
);

CREATE INDEX jobs_created_at ON jobs (created_at DESC);
CREATE INDEX jobs_status_created_at ON jobs (status, created_at);
