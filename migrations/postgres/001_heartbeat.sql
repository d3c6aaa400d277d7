-- lagtrace heartbeat schema for PostgreSQL, version 1 (run with search_path set to
-- lagtrace's schema). One row per cluster, written by `lagtrace record` on the
-- primary and read back on every hot standby. Times are the recorder's clock (UTC
-- microseconds), never the server's.
CREATE TABLE IF NOT EXISTS heartbeat (
  cluster   VARCHAR(64) NOT NULL PRIMARY KEY,
  seq       BIGINT      NOT NULL,
  t_send_us BIGINT      NOT NULL,
  writer    TEXT        NOT NULL
);
COMMENT ON TABLE heartbeat IS 'lagtrace heartbeat: one row per cluster';
COMMENT ON COLUMN heartbeat.seq IS 'beat number, increases by one per beat';
COMMENT ON COLUMN heartbeat.t_send_us IS 'recorder clock when the beat was sent, UTC microseconds';
COMMENT ON COLUMN heartbeat.writer IS 'address:port of the primary that wrote the beat, as it sees itself';
