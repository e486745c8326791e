-- Jobs (issue 6): cancellation of running jobs, the statuses the job agent uses, indexes for
-- the API's filters and for the stale-job check, and the files jobs produce (artifacts).
ALTER TABLE jobs ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_known
    CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled'));

-- GET /api/v1/jobs pages newest first by (created_at, id), optionally per status or kind.
CREATE INDEX jobs_created_at_id ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_kind_created_at ON jobs (kind, created_at DESC, id DESC);
-- Workers look for running jobs whose heartbeat is too old (their worker died).
CREATE INDEX jobs_running_heartbeat ON jobs (heartbeat_at) WHERE status = 'running';

CREATE TABLE job_artifacts (
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name         text COLLATE "C" NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    content_type text NOT NULL,
    bytes        bytea NOT NULL,
    size         bigint NOT NULL CHECK (size >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, name)
);
