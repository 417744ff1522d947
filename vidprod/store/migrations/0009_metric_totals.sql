-- Running totals behind the Prometheus counters (frames rendered, publications,
-- webhook deliveries): kept with the jobs, so the last job's figures before a machine
-- stops are still exported after the next start.
CREATE TABLE metric_totals (
    name    TEXT NOT NULL,
    labels  TEXT NOT NULL DEFAULT '[]',  -- JSON list of label values, in the counter's order
    value   REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (name, labels)
);
