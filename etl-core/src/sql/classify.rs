//! What kind of statement a transform holds, from its first keywords.

/// Whether `sql` must run on its own, outside a transaction block: Redshift refuses these inside
/// `BEGIN ... END` (VACUUM, CREATE/DROP DATABASE, ALTER TABLE APPEND, ALTER TABLE ... ALTER COLUMN,
/// external tables and schemas, libraries), PostgreSQL refuses some more (`... CONCURRENTLY`,
/// `ALTER SYSTEM`, tablespaces), and a transform's own transaction control (`BEGIN`, `COMMIT`,
/// `ROLLBACK`, ...) must not be nested in the engine's.
pub fn needs_own_transaction(sql: &str) -> bool {
    let words = leading_words(sql, 4);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    matches!(
        w.as_slice(),
        ["vacuum", ..]
            | ["begin", ..]
            | ["start", "transaction", ..]
            | ["commit", ..]
            | ["end", ..]
            | ["rollback", ..]
            | ["abort", ..]
            | ["create" | "drop", "database", ..]
            | ["create" | "drop" | "alter", "external", ..]
            | ["create" | "drop", "library", ..]
            | ["create" | "drop" | "alter", "tablespace", ..]
            | ["alter", "system", ..]
            | ["create", "index", "concurrently", ..]
            | ["create", "unique", "index", "concurrently"]
            | ["drop", "index", "concurrently", ..]
            | ["reindex", ..]
    ) || (w.first() == Some(&"alter") && w.get(1) == Some(&"table") && alter_table_needs_own(sql))
}

/// `ALTER TABLE ... APPEND FROM` and `ALTER TABLE ... ALTER COLUMN` (Redshift).
fn alter_table_needs_own(sql: &str) -> bool {
    let words = leading_words(sql, 64);
    words
        .windows(2)
        .any(|p| (p[0] == "append" && p[1] == "from") || (p[0] == "alter" && p[1] == "column"))
}

/// The first `n` words of the statement, lower-case, after comments.
fn leading_words(sql: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() && out.len() < n {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = memchr::memchr(b'\n', &bytes[i..]).map_or(bytes.len(), |k| i + k + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = memchr::memmem::find(&bytes[i + 2..], b"*/")
                    .map_or(bytes.len(), |k| i + 2 + k + 2);
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push(sql[start..i].to_ascii_lowercase());
            }
            // Anything else (a quote, a parenthesis) ends the keyword prefix.
            b if !b.is_ascii_whitespace() => break,
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::needs_own_transaction;

    #[test]
    fn classifies() {
        for own in [
            "VACUUM raw.usage",
            "-- tidy up\nvacuum delete only t",
            "BEGIN",
            "commit",
            "end transaction",
            "create database x",
            "CREATE EXTERNAL TABLE spectrum.t (a int)",
            "alter table t append from s",
            "ALTER TABLE t ALTER COLUMN c TYPE varchar(300)",
            "create index concurrently i on t (a)",
        ] {
            assert!(needs_own_transaction(own), "{own}");
        }
        for block in [
            "create table t as select 1",
            "insert into t select * from s",
            "alter table t add column c int",
            "/* vacuum */ select 1",
            "delete from t where a = 'vacuum'",
            "create index i on t (a)",
        ] {
            assert!(!needs_own_transaction(block), "{block}");
        }
    }
}
