-- lagtrace heartbeat schema, version 1.
-- One row per cluster, written by `lagtrace record` on the cluster's primary and read
-- back on every replica. Times are the recorder's clock (UTC microseconds), never the
-- server's: lagtrace does not compare clocks between hosts.
CREATE TABLE IF NOT EXISTS heartbeat (
  cluster   VARCHAR(64)     NOT NULL COMMENT 'cluster name from lagtrace.toml',
  seq       BIGINT UNSIGNED NOT NULL COMMENT 'beat number, increases by one per beat',
  t_send_us BIGINT          NOT NULL COMMENT 'recorder clock when the beat was sent, UTC microseconds',
  server_id INT UNSIGNED    NOT NULL COMMENT '@@server_id of the primary that wrote the beat',
  PRIMARY KEY (cluster)
) ENGINE=InnoDB COMMENT='lagtrace heartbeat: one row per cluster';
