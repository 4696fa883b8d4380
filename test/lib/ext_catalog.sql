-- test/lib/ext_catalog.sql: pg_vault's catalog in the current database, as
-- text for diff.  test/upgrade.sh compares it between a fresh CREATE
-- EXTENSION and an ALTER EXTENSION ... UPDATE; test/dump_restore.sh between
-- a database and its restored dump.  Run with psql -XAt -f.
--
-- What it describes: the extension row (version, schema, configuration
-- tables), the ACL of its schema, and every member object (pg_depend
-- deptype 'e'), each by pg_describe_object with its comment, owner, ACL and
-- initial privileges (pg_init_privs, which pg_dump relies on); functions
-- and procedures also by pg_get_functiondef, types by their kind, base type,
-- default and constraints, relations by their columns, constraints,
-- indexes, triggers and view definition.  ACL items are sorted, so grants
-- made in another order compare equal.  Rows come ordered by object, in the
-- C collation: a difference shows as a readable diff.

WITH ext AS (
	SELECT e.* FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_vault'
),
members AS (
	SELECT d.classid, d.objid, d.objsubid,
		   pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS obj
	FROM pg_catalog.pg_depend d, ext
	WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
	  AND d.refobjid = ext.oid AND d.deptype = 'e'
),
facts(obj, fact) AS (
	SELECT '(extension)', pg_catalog.format('version %s, schema %s, relocatable %s, config tables %s',
		extversion, extnamespace::pg_catalog.regnamespace, extrelocatable,
		coalesce((SELECT pg_catalog.string_agg(c.t::pg_catalog.regclass::text || ' WHERE ' || coalesce(c.w, ''), '; ')
				  FROM ROWS FROM (pg_catalog.unnest(extconfig), pg_catalog.unnest(extcondition)) AS c(t, w)), 'none'))
	FROM ext
	UNION ALL
	SELECT '(extension)', 'comment: ' || coalesce(pg_catalog.obj_description(ext.oid, 'pg_extension'), '-')
	FROM ext
	UNION ALL
	SELECT '(extension schema)', 'acl: ' || coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text COLLATE "C")
													   FROM pg_catalog.unnest(n.nspacl) a), '-')
	FROM pg_catalog.pg_namespace n, ext WHERE n.oid = ext.extnamespace
	UNION ALL
	-- every member: comment and initial privileges
	SELECT m.obj, 'comment: ' || coalesce((SELECT de.description FROM pg_catalog.pg_description de
										   WHERE de.classoid = m.classid AND de.objoid = m.objid
											 AND de.objsubid = m.objsubid), '-')
	FROM members m
	UNION ALL
	SELECT m.obj, 'initial privileges: ' || coalesce((
		SELECT ip.privtype::text || ' ' || pg_catalog.string_agg(a::text, ' ' ORDER BY a::text COLLATE "C")
		FROM pg_catalog.pg_init_privs ip, pg_catalog.unnest(ip.initprivs) a
		WHERE ip.classoid = m.classid AND ip.objoid = m.objid AND ip.objsubid = m.objsubid
		GROUP BY ip.privtype), '-')
	FROM members m
	UNION ALL
	-- functions and procedures
	SELECT m.obj, pg_catalog.format('owner %s, acl: %s', p.proowner::pg_catalog.regrole,
		coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text COLLATE "C")
				  FROM pg_catalog.unnest(p.proacl) a), '-'))
	FROM members m JOIN pg_catalog.pg_proc p ON p.oid = m.objid
	WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
	UNION ALL
	SELECT m.obj, 'definition: ' || CASE WHEN p.prokind = 'a' THEN 'aggregate'
										 ELSE pg_catalog.pg_get_functiondef(p.oid) END
	FROM members m JOIN pg_catalog.pg_proc p ON p.oid = m.objid
	WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
	UNION ALL
	-- types and domains
	SELECT m.obj, pg_catalog.format('type %s, kind %s, base %s, not null %s, default %s, owner %s, acl: %s',
		pg_catalog.format_type(t.oid, NULL), t.typtype,
		coalesce(pg_catalog.format_type(NULLIF(t.typbasetype, 0), NULLIF(t.typtypmod, -1)), '-'),
		t.typnotnull, coalesce(t.typdefault, '-'), t.typowner::pg_catalog.regrole,
		coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text COLLATE "C")
				  FROM pg_catalog.unnest(t.typacl) a), '-'))
	FROM members m JOIN pg_catalog.pg_type t ON t.oid = m.objid
	WHERE m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
	UNION ALL
	SELECT m.obj, pg_catalog.format('constraint %s: %s', c.conname, pg_catalog.pg_get_constraintdef(c.oid))
	FROM members m JOIN pg_catalog.pg_constraint c ON c.contypid = m.objid
	WHERE m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
	UNION ALL
	-- tables, views, sequences
	SELECT m.obj, pg_catalog.format('kind %s, owner %s, options %s, acl: %s', r.relkind,
		r.relowner::pg_catalog.regrole, coalesce(r.reloptions::text, '-'),
		coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text COLLATE "C")
				  FROM pg_catalog.unnest(r.relacl) a), '-'))
	FROM members m JOIN pg_catalog.pg_class r ON r.oid = m.objid
	WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND m.objsubid = 0
	UNION ALL
	SELECT m.obj, pg_catalog.format('column %s %s%s%s, acl: %s', a.attname,
		pg_catalog.format_type(a.atttypid, a.atttypmod),
		CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
		coalesce(' DEFAULT ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), ''),
		coalesce(a.attacl::text, '-'))
	FROM members m JOIN pg_catalog.pg_attribute a ON a.attrelid = m.objid
	LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND m.objsubid = 0
	  AND a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT m.obj, pg_catalog.format('constraint %s: %s', c.conname, pg_catalog.pg_get_constraintdef(c.oid))
	FROM members m JOIN pg_catalog.pg_constraint c ON c.conrelid = m.objid
	WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND m.objsubid = 0
	UNION ALL
	SELECT m.obj, 'index: ' || pg_catalog.pg_get_indexdef(i.indexrelid)
	FROM members m JOIN pg_catalog.pg_index i ON i.indrelid = m.objid
	WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND m.objsubid = 0
	UNION ALL
	SELECT m.obj, 'trigger: ' || pg_catalog.pg_get_triggerdef(tg.oid)
	FROM members m JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = m.objid
	WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND m.objsubid = 0 AND NOT tg.tgisinternal
	UNION ALL
	SELECT m.obj, 'view: ' || pg_catalog.pg_get_viewdef(r.oid)
	FROM members m JOIN pg_catalog.pg_class r ON r.oid = m.objid
	WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND m.objsubid = 0
	  AND r.relkind IN ('v', 'm')
)
SELECT obj || ' | ' || fact FROM facts
ORDER BY obj COLLATE "C", fact COLLATE "C";
