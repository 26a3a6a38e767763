-- The T-SQL of every holocron-scrapy store operation, compiled by SQLAlchemy's mssql
-- dialect (pyodbc parameters: ?). GENERATED FILE, do not edit: regenerate with
--     python -m tests.mssql_operations > sql/compiled/mssql_store_operations.sql
-- (tests/unit/test_store_mssql_compile.py fails when it differs from the code).
-- Batched operations show one chunk; IN lists show their __[POSTCOMPILE_x] expansion.

-- == start_run =================================================================================

INSERT INTO runs (run_id, source_system, source_name, worker_id, hostname, pid, status, started_at, heartbeat_at, pid_namespace) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- == add_work_items ============================================================================

INSERT INTO work_items (dedupe_hash, dedupe_key, source_system, source_name, resource_type, resource_id, priority, depth, run_id, discovered_from, hops, status, attempt, created_at, updated_at) OUTPUT inserted.dedupe_hash SELECT discovered.dedupe_hash, discovered.dedupe_key, discovered.source_system, discovered.source_name, discovered.resource_type, discovered.resource_id, discovered.priority, discovered.depth, discovered.run_id, discovered.discovered_from, discovered.hops, ? AS anon_1, ? AS anon_2, ? AS anon_3, ? AS anon_4
FROM (VALUES (?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS NVARCHAR(max)), CAST(? AS BIGINT), CAST(? AS INTEGER)), (?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS NVARCHAR(max)), CAST(? AS BIGINT), CAST(? AS INTEGER)), (?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS NVARCHAR(max)), CAST(? AS BIGINT), CAST(? AS INTEGER)), (?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS NVARCHAR(max)), CAST(? AS BIGINT), CAST(? AS INTEGER)), (?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS NVARCHAR(max)), CAST(? AS BIGINT), CAST(? AS INTEGER)), (?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS NVARCHAR(max)), CAST(? AS BIGINT), CAST(? AS INTEGER)), (?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS NVARCHAR(max)), CAST(? AS BIGINT), CAST(? AS INTEGER)), (?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS NVARCHAR(max)), CAST(? AS BIGINT), CAST(? AS INTEGER))) AS discovered (dedupe_hash, dedupe_key, source_system, source_name, resource_type, resource_id, priority, depth, run_id, discovered_from, hops)
WHERE discovered.dedupe_hash IS NOT NULL AND NOT (EXISTS (SELECT 1
FROM work_items AS existing WITH (UPDLOCK, HOLDLOCK)
WHERE existing.dedupe_hash = discovered.dedupe_hash));

-- == add_work_items (improve_depth) ============================================================

INSERT INTO work_items (dedupe_hash, dedupe_key, source_system, source_name, resource_type, resource_id, priority, depth, run_id, discovered_from, hops, status, attempt, created_at, updated_at) OUTPUT inserted.dedupe_hash SELECT discovered.dedupe_hash, discovered.dedupe_key, discovered.source_system, discovered.source_name, discovered.resource_type, discovered.resource_id, discovered.priority, discovered.depth, discovered.run_id, discovered.discovered_from, discovered.hops, ? AS anon_1, ? AS anon_2, ? AS anon_3, ? AS anon_4
FROM (VALUES (?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS NVARCHAR(max)), CAST(? AS BIGINT), CAST(? AS INTEGER))) AS discovered (dedupe_hash, dedupe_key, source_system, source_name, resource_type, resource_id, priority, depth, run_id, discovered_from, hops)
WHERE discovered.dedupe_hash IS NOT NULL AND NOT (EXISTS (SELECT 1
FROM work_items AS existing WITH (UPDLOCK, HOLDLOCK)
WHERE existing.dedupe_hash = discovered.dedupe_hash));

SELECT work_items.id, work_items.dedupe_hash
FROM work_items JOIN (VALUES (?, ?)) AS reached (dedupe_hash, depth) ON work_items.dedupe_hash = reached.dedupe_hash AND work_items.depth > reached.depth ORDER BY work_items.id;

UPDATE work_items SET status=CASE WHEN (work_items.status IN (__[POSTCOMPILE_status_1])) THEN ? ELSE work_items.status END, priority=improved.priority, depth=improved.depth, attempt=CASE WHEN (work_items.status IN (__[POSTCOMPILE_status_1])) THEN ? ELSE work_items.attempt END, run_id=coalesce(improved.run_id, work_items.run_id), discovered_from=improved.discovered_from, updated_at=?, finished_at=CASE WHEN (work_items.status IN (__[POSTCOMPILE_status_1])) THEN NULL ELSE work_items.finished_at END FROM work_items, (VALUES (?, ?, ?, CAST(? AS BIGINT), CAST(? AS NVARCHAR(max)))) AS improved (id, depth, priority, discovered_from, run_id) WHERE work_items.id = improved.id AND work_items.depth > improved.depth;

-- == claim =====================================================================================

UPDATE work_items SET status=?, lease_owner=?, lease_expires_at=?, updated_at=? WHERE work_items.id IN (SELECT TOP __[POSTCOMPILE_param_1] work_items.id
FROM work_items WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.lease_expires_at IS NOT NULL AND work_items.lease_expires_at < ? ORDER BY work_items.lease_expires_at);

UPDATE work_items SET next_retry_at=?, updated_at=? WHERE work_items.id IN (SELECT TOP __[POSTCOMPILE_param_1] work_items.id
FROM work_items WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.next_retry_at IS NOT NULL AND work_items.next_retry_at <= ? ORDER BY work_items.next_retry_at);

UPDATE work_items SET status=?, attempt=(work_items.attempt + ?), run_id=?, lease_owner=?, lease_expires_at=?, claimed_at=?, updated_at=? OUTPUT inserted.id, inserted.source_system, inserted.source_name, inserted.resource_type, inserted.resource_id, inserted.depth, inserted.priority, inserted.attempt, inserted.content_hash, inserted.version, inserted.[cursor], inserted.hops WHERE work_items.id IN (SELECT TOP __[POSTCOMPILE_param_1] work_items.id
FROM work_items WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.next_retry_at IS NULL ORDER BY work_items.priority DESC, work_items.id);

-- == claim (resumed) ===========================================================================

UPDATE work_items SET status=?, lease_owner=?, lease_expires_at=?, updated_at=? WHERE work_items.id IN (SELECT TOP __[POSTCOMPILE_param_1] work_items.id
FROM work_items WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.lease_expires_at IS NOT NULL AND work_items.lease_expires_at < ? ORDER BY work_items.lease_expires_at);

UPDATE work_items SET next_retry_at=?, updated_at=? WHERE work_items.id IN (SELECT TOP __[POSTCOMPILE_param_1] work_items.id
FROM work_items WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.next_retry_at IS NOT NULL AND work_items.next_retry_at <= ? ORDER BY work_items.next_retry_at);

UPDATE work_items SET status=?, attempt=(work_items.attempt + ?), run_id=?, lease_owner=?, lease_expires_at=?, claimed_at=?, updated_at=? OUTPUT inserted.id, inserted.source_system, inserted.source_name, inserted.resource_type, inserted.resource_id, inserted.depth, inserted.priority, inserted.attempt, inserted.content_hash, inserted.version, inserted.[cursor], inserted.hops WHERE work_items.id IN (SELECT TOP __[POSTCOMPILE_param_1] work_items.id
FROM work_items WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.next_retry_at IS NULL AND work_items.priority = ? AND work_items.id > ? ORDER BY work_items.priority DESC, work_items.id);

UPDATE work_items SET status=?, attempt=(work_items.attempt + ?), run_id=?, lease_owner=?, lease_expires_at=?, claimed_at=?, updated_at=? OUTPUT inserted.id, inserted.source_system, inserted.source_name, inserted.resource_type, inserted.resource_id, inserted.depth, inserted.priority, inserted.attempt, inserted.content_hash, inserted.version, inserted.[cursor], inserted.hops WHERE work_items.id IN (SELECT TOP __[POSTCOMPILE_param_1] work_items.id
FROM work_items WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.next_retry_at IS NULL AND work_items.priority < ? ORDER BY work_items.priority DESC, work_items.id);

UPDATE work_items SET status=?, attempt=(work_items.attempt + ?), run_id=?, lease_owner=?, lease_expires_at=?, claimed_at=?, updated_at=? OUTPUT inserted.id, inserted.source_system, inserted.source_name, inserted.resource_type, inserted.resource_id, inserted.depth, inserted.priority, inserted.attempt, inserted.content_hash, inserted.version, inserted.[cursor], inserted.hops WHERE work_items.id IN (SELECT TOP __[POSTCOMPILE_param_1] work_items.id
FROM work_items WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.next_retry_at IS NULL ORDER BY work_items.priority DESC, work_items.id);

-- == renew_leases ==============================================================================

UPDATE runs SET heartbeat_at=? WHERE runs.run_id = ?;

UPDATE work_items SET lease_expires_at=?, updated_at=? WHERE work_items.status = ? AND work_items.lease_owner = ? AND work_items.attempt = ? AND work_items.id IN (SELECT work_items.id
FROM work_items WITH (UPDLOCK, ROWLOCK)
WHERE work_items.id IN (__[POSTCOMPILE_id_1]) AND work_items.status = ? AND work_items.lease_owner = ? AND work_items.attempt = ?);

-- == run_states ================================================================================

SELECT runs.run_id, runs.status, runs.hostname, runs.pid, runs.pid_namespace, coalesce(runs.heartbeat_at, runs.started_at) AS last_seen
FROM runs
WHERE runs.run_id IN (__[POSTCOMPILE_run_id_1]);

-- == leased_ids ================================================================================

SELECT work_items.id
FROM work_items
WHERE work_items.lease_owner IS NOT NULL AND work_items.lease_owner = ? AND work_items.status = ? ORDER BY work_items.id;

-- == commit_records ============================================================================

SELECT work_items.id, work_items.attempt, work_items.depth
FROM work_items WITH (UPDLOCK, ROWLOCK)
WHERE work_items.status = ? AND work_items.lease_owner = ? AND work_items.id IN (__[POSTCOMPILE_id_1]) ORDER BY work_items.id;

UPDATE work_items SET status=outcome.status, lease_owner=?, lease_expires_at=?, next_retry_at=outcome.next_retry_at, content_hash=coalesce(outcome.content_hash, work_items.content_hash), version=coalesce(outcome.version, work_items.version), [cursor]=CASE WHEN (outcome.next_retry_at IS NOT NULL) THEN work_items.[cursor] ELSE NULL END, error_message=outcome.error_message, updated_at=?, finished_at=outcome.finished_at FROM work_items, (VALUES (?, ?, ?, CAST(? AS NVARCHAR(max)), CAST(? AS VARCHAR(max)), CAST(? AS NVARCHAR(max)), CAST(? AS DATETIME2), CAST(? AS DATETIME2))) AS outcome (id, attempt, status, error_message, content_hash, version, next_retry_at, finished_at) WHERE work_items.id = outcome.id AND work_items.attempt = outcome.attempt AND work_items.status = ? AND work_items.lease_owner = ?;

INSERT INTO [IngestRecords] (source_system, source_name, resource_type, resource_id, request_uri, request_method, request_headers, status_code, response_headers, payload, fetched_at_utc, hash_sha256, run_id, work_item_id, attempt, error_message, duration_ms) OUTPUT inserted.ingest_id VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- == finish_items ==============================================================================

SELECT work_items.id, work_items.attempt, work_items.depth
FROM work_items WITH (UPDLOCK, ROWLOCK)
WHERE work_items.status = ? AND work_items.lease_owner = ? AND work_items.id IN (__[POSTCOMPILE_id_1]) ORDER BY work_items.id;

UPDATE work_items SET status=outcome.status, lease_owner=?, lease_expires_at=?, next_retry_at=outcome.next_retry_at, content_hash=coalesce(outcome.content_hash, work_items.content_hash), version=coalesce(outcome.version, work_items.version), [cursor]=CASE WHEN (outcome.next_retry_at IS NOT NULL) THEN work_items.[cursor] ELSE NULL END, error_message=outcome.error_message, updated_at=?, finished_at=outcome.finished_at FROM work_items, (VALUES (?, ?, ?, CAST(? AS NVARCHAR(max)), CAST(? AS VARCHAR(max)), CAST(? AS NVARCHAR(max)), CAST(? AS DATETIME2), CAST(? AS DATETIME2))) AS outcome (id, attempt, status, error_message, content_hash, version, next_retry_at, finished_at) WHERE work_items.id = outcome.id AND work_items.attempt = outcome.attempt AND work_items.status = ? AND work_items.lease_owner = ?;

-- == save_cursor ===============================================================================

UPDATE work_items SET lease_expires_at=?, [cursor]=?, updated_at=? WHERE work_items.id = ? AND work_items.status = ? AND work_items.lease_owner = ? AND work_items.attempt = ?;

-- == outlook ===================================================================================

SELECT count(*) AS count_1, min(work_items.next_retry_at) AS min_1
FROM work_items
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.next_retry_at IS NOT NULL AND work_items.next_retry_at > ?;

SELECT count(*) AS count_1, min(work_items.lease_expires_at) AS min_1
FROM work_items
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.lease_expires_at IS NOT NULL AND work_items.lease_expires_at >= ? AND (work_items.lease_owner IS NULL OR work_items.lease_owner != ?);

SELECT coalesce((SELECT TOP __[POSTCOMPILE_param_1] work_items.id
FROM work_items
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.next_retry_at IS NULL ORDER BY work_items.priority DESC, work_items.id), (SELECT TOP __[POSTCOMPILE_param_2] work_items.id
FROM work_items
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.next_retry_at IS NOT NULL AND work_items.next_retry_at <= ? ORDER BY work_items.next_retry_at), (SELECT TOP __[POSTCOMPILE_param_3] work_items.id
FROM work_items
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.lease_expires_at IS NOT NULL AND work_items.lease_expires_at < ? ORDER BY work_items.lease_expires_at)) AS coalesce_1;

-- == lease_owners ==============================================================================

SELECT DISTINCT work_items.lease_owner
FROM work_items
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status = ? AND work_items.lease_owner IS NOT NULL;

-- == release (ids) =============================================================================

UPDATE work_items SET status=?, attempt=CASE WHEN (work_items.attempt > ?) THEN work_items.attempt - ? ELSE ? END, lease_owner=?, lease_expires_at=?, updated_at=? WHERE work_items.lease_owner IS NOT NULL AND work_items.lease_owner = ? AND work_items.status = ? AND work_items.id IN (SELECT work_items.id
FROM work_items WITH (UPDLOCK, ROWLOCK)
WHERE work_items.id IN (__[POSTCOMPILE_id_1]) AND work_items.lease_owner IS NOT NULL AND work_items.lease_owner = ? AND work_items.status = ?);

-- == release (source) ==========================================================================

UPDATE work_items SET status=?, attempt=CASE WHEN (work_items.attempt > ?) THEN work_items.attempt - ? ELSE ? END, lease_owner=?, lease_expires_at=?, updated_at=? WHERE work_items.lease_owner IS NOT NULL AND work_items.lease_owner = ? AND work_items.status = ? AND work_items.source_system = ? AND work_items.source_name = ? AND work_items.id IN (SELECT work_items.id
FROM work_items WITH (UPDLOCK, ROWLOCK)
WHERE work_items.lease_owner IS NOT NULL AND work_items.lease_owner = ? AND work_items.status = ? AND work_items.source_system = ? AND work_items.source_name = ?);

-- == release (all) =============================================================================

UPDATE work_items SET status=?, attempt=CASE WHEN (work_items.attempt > ?) THEN work_items.attempt - ? ELSE ? END, lease_owner=?, lease_expires_at=?, updated_at=? WHERE work_items.lease_owner IS NOT NULL AND work_items.lease_owner = ? AND work_items.status = ? AND work_items.id IN (SELECT work_items.id
FROM work_items WITH (UPDLOCK, ROWLOCK)
WHERE work_items.lease_owner IS NOT NULL AND work_items.lease_owner = ? AND work_items.status = ?);

-- == completed_versions ========================================================================

SELECT TOP __[POSTCOMPILE_param_1] work_items.id, work_items.resource_id, work_items.version
FROM work_items
WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.resource_type = ? AND work_items.status = ? AND work_items.id > ? ORDER BY work_items.id;

-- == requeue_ids ===============================================================================

UPDATE work_items SET status=?, attempt=?, lease_owner=?, lease_expires_at=?, next_retry_at=?, error_message=?, updated_at=?, finished_at=? WHERE work_items.status = ? AND work_items.id IN (SELECT work_items.id
FROM work_items WITH (UPDLOCK, ROWLOCK)
WHERE work_items.id IN (__[POSTCOMPILE_id_1]) AND work_items.status = ?);

-- == requeue_keys ==============================================================================

UPDATE work_items SET status=?, attempt=?, lease_owner=?, lease_expires_at=?, next_retry_at=?, error_message=?, updated_at=?, finished_at=? WHERE work_items.status IN (__[POSTCOMPILE_status_1]) AND work_items.id IN (SELECT work_items.id
FROM work_items WITH (UPDLOCK, ROWLOCK)
WHERE work_items.dedupe_hash IN (__[POSTCOMPILE_dedupe_hash_1]) AND work_items.status IN (__[POSTCOMPILE_status_1]));

-- == requeue ===================================================================================

UPDATE work_items SET status=?, attempt=?, lease_owner=?, lease_expires_at=?, next_retry_at=?, error_message=?, updated_at=?, finished_at=? WHERE work_items.source_system = ? AND work_items.source_name = ? AND work_items.status IN (__[POSTCOMPILE_status_1]);

-- == counts ====================================================================================

SELECT work_item_counts_v.resource_type, work_item_counts_v.status, sum(work_item_counts_v.items) AS sum_1, count(*) AS count_1
FROM work_item_counts_v WITH (NOEXPAND)
WHERE work_item_counts_v.source_system = ? AND work_item_counts_v.source_name = ? GROUP BY work_item_counts_v.resource_type, work_item_counts_v.status;

-- == work_item =================================================================================

SELECT work_items.id, work_items.dedupe_hash, work_items.dedupe_key, work_items.source_system, work_items.source_name, work_items.resource_type, work_items.resource_id, work_items.status, work_items.priority, work_items.depth, work_items.attempt, work_items.run_id, work_items.discovered_from, work_items.lease_owner, work_items.lease_expires_at, work_items.claimed_at, work_items.next_retry_at, work_items.content_hash, work_items.version, work_items.[cursor], work_items.hops, work_items.error_message, work_items.created_at, work_items.updated_at, work_items.finished_at
FROM work_items
WHERE work_items.id = ?;

-- == reserve_request ===========================================================================

SELECT source_budget.next_request_at
FROM source_budget WITH (UPDLOCK, ROWLOCK)
WHERE source_budget.source_system = ? AND source_budget.source_name = ?;

INSERT INTO source_budget (source_system, source_name, next_request_at, requests) VALUES (?, ?, ?, ?);

SELECT source_budget.next_request_at
FROM source_budget WITH (UPDLOCK, ROWLOCK)
WHERE source_budget.source_system = ? AND source_budget.source_name = ?;

UPDATE source_budget SET next_request_at=?, requests=(source_budget.requests + ?) WHERE source_budget.source_system = ? AND source_budget.source_name = ?;

-- == finish_run ================================================================================

UPDATE runs SET status=?, finish_reason=?, finished_at=?, items_completed=? WHERE runs.run_id = ?;
