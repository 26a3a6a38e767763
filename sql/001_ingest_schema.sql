-- holocron-scrapy state tables for SQL Server (schema [ingest]).
--
-- GENERATED FILE, do not edit: regenerate with
--     python -m holocron_scrapy.store.ddl > sql/001_ingest_schema.sql
-- (tests/unit/test_ddl.py fails when this file and holocron_scrapy/store/schema.py disagree).
--
-- Idempotent: it creates only the schema, tables and indexes that are missing. Run it with
--     sqlcmd -S <host>,<port> -d <database> -U <user> -C -b -i sql/001_ingest_schema.sql
-- (-C trusts the server certificate, -b stops at the first error; use -G or -E for Entra ID or
-- Windows authentication). The crawler can also create the tables itself (create_tables()).

SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO

IF SCHEMA_ID(N'ingest') IS NULL EXEC(N'CREATE SCHEMA [ingest]');
GO

IF OBJECT_ID(N'[ingest].[IngestRecords]', N'U') IS NULL
BEGIN
CREATE TABLE ingest.[IngestRecords] (
	ingest_id BIGINT NOT NULL IDENTITY,
	source_system NVARCHAR(64) NOT NULL,
	source_name NVARCHAR(128) NOT NULL,
	resource_type NVARCHAR(64) NOT NULL,
	resource_id NVARCHAR(2000) NOT NULL,
	request_uri NVARCHAR(max) NOT NULL,
	request_method NVARCHAR(16) NOT NULL,
	request_headers NVARCHAR(max) NOT NULL,
	status_code INTEGER NOT NULL,
	response_headers NVARCHAR(max) NOT NULL,
	payload NVARCHAR(max) NOT NULL,
	fetched_at_utc DATETIME2 NOT NULL,
	hash_sha256 VARCHAR(64) NOT NULL,
	run_id NVARCHAR(32) NOT NULL,
	work_item_id BIGINT NULL,
	attempt INTEGER NOT NULL,
	error_message NVARCHAR(max) NULL,
	duration_ms INTEGER NULL,
	CONSTRAINT pk_ingest_records PRIMARY KEY (ingest_id)
);
END
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_ingest_records_resource' AND object_id = OBJECT_ID(N'[ingest].[IngestRecords]'))
    CREATE INDEX ix_ingest_records_resource ON ingest.[IngestRecords] (source_system, source_name, resource_type);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_ingest_records_run' AND object_id = OBJECT_ID(N'[ingest].[IngestRecords]'))
    CREATE INDEX ix_ingest_records_run ON ingest.[IngestRecords] (run_id);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_ingest_records_source_ingest' AND object_id = OBJECT_ID(N'[ingest].[IngestRecords]'))
    CREATE INDEX ix_ingest_records_source_ingest ON ingest.[IngestRecords] (source_system, source_name, ingest_id);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_ingest_records_work_item_id' AND object_id = OBJECT_ID(N'[ingest].[IngestRecords]'))
    CREATE INDEX ix_ingest_records_work_item_id ON ingest.[IngestRecords] (work_item_id);
GO

IF OBJECT_ID(N'[ingest].[runs]', N'U') IS NULL
BEGIN
CREATE TABLE ingest.runs (
	run_id NVARCHAR(32) NOT NULL,
	source_system NVARCHAR(64) NOT NULL,
	source_name NVARCHAR(128) NOT NULL,
	worker_id NVARCHAR(200) NOT NULL,
	hostname NVARCHAR(255) NOT NULL,
	pid INTEGER NOT NULL,
	status NVARCHAR(16) NOT NULL,
	finish_reason NVARCHAR(200) NULL,
	started_at DATETIME2 NOT NULL,
	finished_at DATETIME2 NULL,
	heartbeat_at DATETIME2 NULL,
	pid_namespace NVARCHAR(100) NULL,
	items_discovered INTEGER NOT NULL DEFAULT 0,
	items_completed INTEGER NOT NULL DEFAULT 0,
	items_failed INTEGER NOT NULL DEFAULT 0,
	items_skipped INTEGER NOT NULL DEFAULT 0,
	records_written INTEGER NOT NULL DEFAULT 0,
	requests_made INTEGER NOT NULL DEFAULT 0,
	CONSTRAINT pk_runs PRIMARY KEY (run_id)
);
END
GO

IF COL_LENGTH(N'[ingest].[runs]', N'heartbeat_at') IS NULL
    ALTER TABLE [ingest].[runs] ADD heartbeat_at DATETIME2 NULL;
GO

IF COL_LENGTH(N'[ingest].[runs]', N'pid_namespace') IS NULL
    ALTER TABLE [ingest].[runs] ADD pid_namespace NVARCHAR(100) NULL;
GO

IF OBJECT_ID(N'[ingest].[source_budget]', N'U') IS NULL
BEGIN
CREATE TABLE ingest.source_budget (
	source_system NVARCHAR(64) NOT NULL,
	source_name NVARCHAR(128) NOT NULL,
	next_request_at DATETIME2 NOT NULL,
	requests BIGINT NOT NULL DEFAULT 0,
	CONSTRAINT pk_source_budget PRIMARY KEY (source_system, source_name)
);
END
GO

IF OBJECT_ID(N'[ingest].[source_identities]', N'U') IS NULL
BEGIN
CREATE TABLE ingest.source_identities (
	source_system NVARCHAR(64) NOT NULL,
	source_name NVARCHAR(128) NOT NULL,
	source_url NVARCHAR(2000) NOT NULL,
	created_at DATETIME2 NOT NULL,
	CONSTRAINT pk_source_identities PRIMARY KEY (source_system, source_name)
);
END
GO

IF OBJECT_ID(N'[ingest].[sync_points]', N'U') IS NULL
BEGIN
CREATE TABLE ingest.sync_points (
	source_system NVARCHAR(64) NOT NULL,
	source_name NVARCHAR(128) NOT NULL,
	feed_timestamp DATETIME2 NOT NULL,
	rc_id BIGINT NULL,
	log_id BIGINT NULL,
	run_id NVARCHAR(32) NULL,
	updated_at DATETIME2 NOT NULL,
	max_depth INTEGER NULL,
	expansions NVARCHAR(200) NULL,
	CONSTRAINT pk_sync_points PRIMARY KEY (source_system, source_name)
);
END
GO

IF OBJECT_ID(N'[ingest].[work_items]', N'U') IS NULL
BEGIN
CREATE TABLE ingest.work_items (
	id BIGINT NOT NULL IDENTITY,
	dedupe_hash VARCHAR(64) NOT NULL,
	dedupe_key NVARCHAR(2259) NOT NULL,
	source_system NVARCHAR(64) NOT NULL,
	source_name NVARCHAR(128) NOT NULL,
	resource_type NVARCHAR(64) NOT NULL,
	resource_id NVARCHAR(2000) NOT NULL,
	status NVARCHAR(16) NOT NULL,
	priority INTEGER NOT NULL DEFAULT 0,
	depth INTEGER NOT NULL DEFAULT 0,
	attempt INTEGER NOT NULL DEFAULT 0,
	run_id NVARCHAR(32) NULL,
	discovered_from BIGINT NULL,
	lease_owner NVARCHAR(200) NULL,
	lease_expires_at DATETIME2 NULL,
	claimed_at DATETIME2 NULL,
	next_retry_at DATETIME2 NULL,
	content_hash VARCHAR(64) NULL,
	version NVARCHAR(64) NULL,
	[cursor] NVARCHAR(max) NULL,
	hops INTEGER NULL,
	error_message NVARCHAR(max) NULL,
	created_at DATETIME2 NOT NULL,
	updated_at DATETIME2 NOT NULL,
	finished_at DATETIME2 NULL,
	CONSTRAINT pk_work_items PRIMARY KEY (id),
	CONSTRAINT ck_work_items_status CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'skipped')),
	CONSTRAINT uq_work_items_dedupe_hash UNIQUE (dedupe_hash)
);
END
GO

IF COL_LENGTH(N'[ingest].[work_items]', N'version') IS NULL
    ALTER TABLE [ingest].[work_items] ADD version NVARCHAR(64) NULL;
GO

IF COL_LENGTH(N'[ingest].[work_items]', N'cursor') IS NULL
    ALTER TABLE [ingest].[work_items] ADD [cursor] NVARCHAR(max) NULL;
GO

IF COL_LENGTH(N'[ingest].[work_items]', N'hops') IS NULL
    ALTER TABLE [ingest].[work_items] ADD hops INTEGER NULL;
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_work_items_claim' AND object_id = OBJECT_ID(N'[ingest].[work_items]'))
    CREATE INDEX ix_work_items_claim ON ingest.work_items (source_system, source_name, status, priority, id);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_work_items_lease_expiry' AND object_id = OBJECT_ID(N'[ingest].[work_items]'))
    CREATE INDEX ix_work_items_lease_expiry ON ingest.work_items (source_system, source_name, status, lease_expires_at) WHERE lease_expires_at IS NOT NULL;
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_work_items_lease_owner' AND object_id = OBJECT_ID(N'[ingest].[work_items]'))
    CREATE INDEX ix_work_items_lease_owner ON ingest.work_items (lease_owner, status, id) WHERE lease_owner IS NOT NULL;
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_work_items_ready' AND object_id = OBJECT_ID(N'[ingest].[work_items]'))
    CREATE INDEX ix_work_items_ready ON ingest.work_items (source_system, source_name, status, priority DESC, id) WHERE next_retry_at IS NULL;
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_work_items_retry_at' AND object_id = OBJECT_ID(N'[ingest].[work_items]'))
    CREATE INDEX ix_work_items_retry_at ON ingest.work_items (source_system, source_name, status, next_retry_at) WHERE next_retry_at IS NOT NULL;
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_work_items_type_id' AND object_id = OBJECT_ID(N'[ingest].[work_items]'))
    CREATE INDEX ix_work_items_type_id ON ingest.work_items (source_system, source_name, status, resource_type, id);
GO

-- The counts of the queue by source, resource type and status, kept by the engine in
-- every statement changing work_items: an indexed view, which leaves the OUTPUT
-- clause of the claim and of the insert of new items allowed (store/counts.py).
IF OBJECT_ID(N'[ingest].[work_item_counts_v]', N'V') IS NULL
    EXEC(N'CREATE VIEW [ingest].[work_item_counts_v] WITH SCHEMABINDING AS
SELECT source_system, source_name, resource_type, status, COUNT_BIG(*) AS items
FROM [ingest].[work_items]
GROUP BY source_system, source_name, resource_type, status');
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_work_item_counts_v' AND object_id = OBJECT_ID(N'[ingest].[work_item_counts_v]'))
    CREATE UNIQUE CLUSTERED INDEX [ix_work_item_counts_v] ON [ingest].[work_item_counts_v] (source_system, source_name, resource_type, status);
GO
