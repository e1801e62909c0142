//! Schema and table statements, and the data-manipulation statements of the load methods.

use super::{Dialect, Ident, TableName, push_column_list, push_ident, push_qualified};
use crate::job::{DistStyle, Table};

/// `CREATE SCHEMA IF NOT EXISTS "s"`.
pub fn create_schema(schema: &Ident) -> String {
    let mut out = String::from("CREATE SCHEMA IF NOT EXISTS ");
    push_ident(&mut out, schema.as_str());
    out
}

/// `CREATE TABLE IF NOT EXISTS "s"."t" (...)`. Redshift's ENCODE, DISTSTYLE, DISTKEY and SORTKEY are
/// written only in the Redshift dialect.
pub fn create_table(dialect: Dialect, table: &Table) -> String {
    let mut out = String::from("CREATE TABLE IF NOT EXISTS ");
    push_qualified(&mut out, &table.name);
    out.push_str(" (");
    for (i, c) in table.columns.iter().enumerate() {
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        push_ident(&mut out, c.name.as_str());
        out.push(' ');
        match dialect {
            Dialect::Redshift => out.push_str(&c.ty.to_string()),
            Dialect::Postgres => out.push_str(&c.ty.postgres_sql()),
        }
        if !c.nullable {
            out.push_str(" NOT NULL");
        }
        if dialect == Dialect::Redshift
            && let Some(e) = &c.encode
        {
            // Validated against the allow-list of encodings: a bare keyword.
            out.push_str(" ENCODE ");
            out.push_str(e);
        }
    }
    out.push_str("\n)");
    if dialect == Dialect::Redshift {
        let distkey = table.columns.iter().find(|c| c.distkey);
        let style = table.diststyle.or(distkey.map(|_| DistStyle::Key));
        if let Some(style) = style {
            out.push_str(match style {
                DistStyle::Auto => " DISTSTYLE AUTO",
                DistStyle::Even => " DISTSTYLE EVEN",
                DistStyle::Key => " DISTSTYLE KEY",
                DistStyle::All => " DISTSTYLE ALL",
            });
        }
        if let Some(c) = distkey {
            out.push_str(" DISTKEY (");
            push_ident(&mut out, c.name.as_str());
            out.push(')');
        }
        let mut sort: Vec<_> = table
            .columns
            .iter()
            .filter_map(|c| c.sortkey.map(|k| (k, &c.name)))
            .collect();
        if !sort.is_empty() {
            sort.sort_by_key(|(k, _)| *k);
            // A compound sort key is Redshift's default: plain SORTKEY means the same and is what
            // more tools parse.
            out.push_str(" SORTKEY ");
            push_column_list(&mut out, sort.into_iter().map(|(_, n)| n));
        }
    }
    out
}

/// `DROP TABLE [IF EXISTS] "s"."t"`.
pub fn drop_table(table: &TableName, if_exists: bool) -> String {
    let mut out = String::from(if if_exists {
        "DROP TABLE IF EXISTS "
    } else {
        "DROP TABLE "
    });
    push_qualified(&mut out, table);
    out
}

/// `DROP TABLE "t"` for a session-private temporary table.
pub fn drop_temp_table(table: &Ident) -> String {
    let mut out = String::from("DROP TABLE ");
    push_ident(&mut out, table.as_str());
    out
}

/// `DELETE FROM "s"."t"`: REPLACE's first half. Not TRUNCATE, which commits in Redshift.
pub fn delete_all(table: &TableName) -> String {
    let mut out = String::from("DELETE FROM ");
    push_qualified(&mut out, table);
    out
}

/// `ANALYZE "s"."t"`: refreshes the planner's statistics of a table just loaded. PostgreSQL runs
/// it inside the load's transaction (its statistics then commit with the rows); Redshift's COPY
/// refreshes them itself (`STATUPDATE`).
pub fn analyze(table: &TableName) -> String {
    let mut out = String::from("ANALYZE ");
    push_qualified(&mut out, table);
    out
}

/// `LOCK "s"."t"`: serializes loads of one table (both dialects accept the bare form).
pub fn lock_table(table: &TableName) -> String {
    let mut out = String::from("LOCK TABLE ");
    push_qualified(&mut out, table);
    out
}

/// `CREATE TEMP TABLE "staging" (LIKE "s"."t")`: the upsert's staging table, private to the session.
pub fn create_staging_like(staging: &Ident, target: &TableName) -> String {
    let mut out = String::from("CREATE TEMP TABLE ");
    push_ident(&mut out, staging.as_str());
    out.push_str(" (LIKE ");
    push_qualified(&mut out, target);
    out.push(')');
    out
}

/// Deletes from the staging table every row but one per key: the first by the non-key columns in
/// descending order, NULLs last. Written with `ROW_NUMBER()` over a copy, since neither warehouse has
/// a row id both can use.
pub fn dedup_staging(staging: &Ident, table: &Table, keys: &[Ident]) -> [String; 3] {
    let mut dedup = String::from("CREATE TEMP TABLE ");
    push_ident(&mut dedup, &format!("{}_dedup", staging.as_str()));
    dedup.push_str(" AS SELECT ");
    push_names(&mut dedup, table.columns.iter().map(|c| &c.name));
    dedup.push_str(" FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY ");
    push_names(&mut dedup, keys.iter());
    dedup.push_str(" ORDER BY ");
    let mut first = true;
    for c in table.columns.iter().filter(|c| !keys.contains(&c.name)) {
        if !first {
            dedup.push_str(", ");
        }
        first = false;
        push_ident(&mut dedup, c.name.as_str());
        dedup.push_str(" DESC NULLS LAST");
    }
    if first {
        // Every column is a key: duplicates are identical rows, any order will do.
        push_names(&mut dedup, keys.iter());
    }
    dedup.push_str(") AS \"etl_rn\" FROM ");
    push_ident(&mut dedup, staging.as_str());
    dedup.push_str(") AS \"s\" WHERE \"etl_rn\" = 1");

    let mut truncate = String::from("DELETE FROM ");
    push_ident(&mut truncate, staging.as_str());

    let mut refill = String::from("INSERT INTO ");
    push_ident(&mut refill, staging.as_str());
    refill.push_str(" SELECT * FROM ");
    push_ident(&mut refill, &format!("{}_dedup", staging.as_str()));
    [dedup, truncate, refill]
}

/// `DELETE FROM target USING staging WHERE target.k = staging.k AND ...`.
pub fn delete_matching_staging(target: &TableName, staging: &Ident, keys: &[Ident]) -> String {
    let mut out = String::from("DELETE FROM ");
    push_qualified(&mut out, target);
    out.push_str(" USING ");
    push_ident(&mut out, staging.as_str());
    out.push_str(" WHERE ");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push_str(" AND ");
        }
        push_qualified(&mut out, target);
        out.push('.');
        push_ident(&mut out, k.as_str());
        out.push_str(" = ");
        push_ident(&mut out, staging.as_str());
        out.push('.');
        push_ident(&mut out, k.as_str());
    }
    out
}

/// `INSERT INTO target (cols) SELECT cols FROM staging`.
pub fn insert_from_staging(target: &TableName, staging: &Ident, table: &Table) -> String {
    let mut out = String::from("INSERT INTO ");
    push_qualified(&mut out, target);
    out.push(' ');
    push_column_list(&mut out, table.columns.iter().map(|c| &c.name));
    out.push_str(" SELECT ");
    push_names(&mut out, table.columns.iter().map(|c| &c.name));
    out.push_str(" FROM ");
    push_ident(&mut out, staging.as_str());
    out
}

fn push_names<'a>(out: &mut String, names: impl Iterator<Item = &'a Ident>) {
    for (i, n) in names.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_ident(out, n.as_str());
    }
}
