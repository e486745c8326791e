-- Window aggregates (SEMANTICS.md section 4), one row per (device_id, period, window_start).
-- Upserts keep the highest revision. Text keys use the "C" collation so ordering (and so the
-- API's keyset pagination) is byte order on every server, whatever its locale.
CREATE TABLE metrics (
    device_id           text COLLATE "C" NOT NULL,
    period              text COLLATE "C" NOT NULL
                        CHECK (period IN ('hour', 'day', 'week', 'month')),
    window_start        timestamptz NOT NULL,
    window_end          timestamptz NOT NULL,
    reading_count       integer NOT NULL CHECK (reading_count >= 0),
    power_reading_count integer NOT NULL CHECK (power_reading_count >= 0),
    power_mean_w        double precision,
    power_min_w         double precision,
    power_max_w         double precision,
    energy_kwh          double precision NOT NULL,
    cost                numeric NOT NULL,
    currency            text NOT NULL,
    coverage            double precision NOT NULL,
    covered_seconds     double precision NOT NULL,
    first_ts            timestamptz,
    last_ts             timestamptz,
    anomaly_score       double precision,
    is_anomaly          boolean,
    revision            integer NOT NULL CHECK (revision >= 0),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, period, window_start),
    CHECK (window_end > window_start)
);

-- The primary key serves queries by device (and the default ordering); these serve
-- "all devices, one period, a time range" and "anomalies in a time range".
CREATE INDEX metrics_period_window_start ON metrics (period, window_start);
CREATE INDEX metrics_anomalies ON metrics (period, window_start) WHERE is_anomaly;
