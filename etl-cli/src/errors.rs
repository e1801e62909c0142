//! Printing errors: one `etl: ` line with the whole cause chain, each thing said once, then the
//! server's detail and hint, and where in the statement the server pointed.

/// Prints `e` to stderr, with what to check when the warehouse could not be reached.
pub fn print(e: &anyhow::Error) {
    eprintln!("etl: {e:#}");
    if matches!(
        e.downcast_ref::<etl_core::Error>(),
        Some(etl_core::Error::Connect { .. })
    ) {
        eprintln!(
            "  check that the server runs and is reachable, and the connection settings: \
             --database-url, --secret-id or the PG* variables (etl run without them starts its own)"
        );
    }
}

/// A closed stdout (`etl sql ... | head`) is not an error.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `LINE 2: select nope from t` and a caret under the position the server reported, like psql.
pub fn caret(sql: &str, err: &etl_core::Error) -> Option<String> {
    let position = err.db_error()?.position?;
    let (line, column, text) = etl_core::error::locate(sql, position)?;
    let prefix = format!("LINE {line}: ");
    let pad: String = text
        .chars()
        .take(column - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    Some(format!(
        "{prefix}{text}\n{}{pad}^",
        " ".repeat(prefix.len())
    ))
}
