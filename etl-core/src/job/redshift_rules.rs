//! Rules Redshift enforces only on the cluster, checked when the manifest is validated so that a
//! job that passes locally does not fail in `CREATE TABLE`, `COPY` or `CreateCluster`.

use super::types::ColumnType;

/// Largest `MAXERROR` Redshift accepts: "The maximum limit is 100,000"; a larger value is
/// rejected by COPY (<https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-data-load.html#copy-maxerror>).
pub const MAX_MAXERROR: u64 = 100_000;

/// Which column types an `ENCODE` applies to: the table of
/// <https://docs.aws.amazon.com/redshift/latest/dg/c_Compression_encodings.html> ("Data types"
/// column). `RAW` applies to every type; TIME and TIMETZ appear in no other row. Redshift refuses
/// any other combination in CREATE TABLE; PostgreSQL ignores ENCODE, so only this check catches it
/// before the cluster.
///
/// # Errors
/// The rule broken, naming the types the encoding does take.
pub fn check_encoding(encoding: &str, ty: &ColumnType) -> Result<(), String> {
    use ColumnType as T;
    let numeric_and_dates = |t: &ColumnType| {
        matches!(
            t,
            T::SmallInt
                | T::Integer
                | T::BigInt
                | T::Decimal { .. }
                | T::Date
                | T::Timestamp
                | T::TimestampTz
        )
    };
    let (ok, takes): (bool, &str) = match encoding {
        "raw" => (true, "every type"),
        "az64" => (
            numeric_and_dates(ty),
            "SMALLINT, INTEGER, BIGINT, DECIMAL, DATE, TIMESTAMP, TIMESTAMPTZ",
        ),
        "bytedict" => (
            numeric_and_dates(ty) || matches!(ty, T::Real | T::Double | T::Char(_) | T::Varchar(_)),
            "SMALLINT, INTEGER, BIGINT, DECIMAL, REAL, DOUBLE PRECISION, CHAR, VARCHAR, DATE, \
             TIMESTAMP, TIMESTAMPTZ",
        ),
        "delta" => (
            matches!(
                ty,
                T::SmallInt | T::Integer | T::BigInt | T::Date | T::Timestamp | T::Decimal { .. }
            ),
            "SMALLINT, INTEGER, BIGINT, DATE, TIMESTAMP, DECIMAL",
        ),
        "delta32k" => (
            matches!(
                ty,
                T::Integer | T::BigInt | T::Date | T::Timestamp | T::Decimal { .. }
            ),
            "INTEGER, BIGINT, DATE, TIMESTAMP, DECIMAL",
        ),
        "lzo" => (
            numeric_and_dates(ty) || ty.is_character(),
            "SMALLINT, INTEGER, BIGINT, DECIMAL, CHAR, VARCHAR, DATE, TIMESTAMP, TIMESTAMPTZ",
        ),
        "mostly8" => (
            matches!(ty, T::SmallInt | T::Integer | T::BigInt | T::Decimal { .. }),
            "SMALLINT, INTEGER, BIGINT, DECIMAL",
        ),
        "mostly16" => (
            matches!(ty, T::Integer | T::BigInt | T::Decimal { .. }),
            "INTEGER, BIGINT, DECIMAL",
        ),
        "mostly32" => (
            matches!(ty, T::BigInt | T::Decimal { .. }),
            "BIGINT, DECIMAL",
        ),
        "runlength" | "zstd" => (
            numeric_and_dates(ty)
                || matches!(
                    ty,
                    T::Real | T::Double | T::Boolean | T::Char(_) | T::Varchar(_)
                ),
            "SMALLINT, INTEGER, BIGINT, DECIMAL, REAL, DOUBLE PRECISION, BOOLEAN, CHAR, VARCHAR, \
             DATE, TIMESTAMP, TIMESTAMPTZ",
        ),
        "text255" | "text32k" => (matches!(ty, T::Varchar(_)), "VARCHAR only"),
        // Unknown encodings are reported by the caller's allow-list.
        _ => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "ENCODE {} does not apply to {}: Redshift takes it for {takes} \
             (https://docs.aws.amazon.com/redshift/latest/dg/c_Compression_encodings.html)",
            encoding.to_ascii_uppercase(),
            ty.name()
        ))
    }
}

/// The number of nodes a new cluster of each node type may have, from the node type table of
/// <https://docs.aws.amazon.com/redshift/latest/mgmt/working-with-clusters.html#rs-node-type-info>
/// ("Node range" when the cluster is created; elastic resize may go further later). A type missing
/// here is one `cfn/redshift.yaml` does not offer either.
pub const NODE_RANGES: &[(&str, u32, u32)] = &[
    ("ra3.large", 1, 16),
    ("ra3.xlplus", 1, 16),
    ("ra3.4xlarge", 2, 32),
    ("ra3.16xlarge", 2, 128),
];

/// Checks a node type and number of nodes against [`NODE_RANGES`]; `None` leaves the deployment's
/// default (the permanent stack's `RedshiftNodeType` / `RedshiftNumberOfNodes`).
///
/// # Errors
/// `(field, message)`: the field that is wrong and the documented range.
pub fn check_nodes(
    node_type: Option<&str>,
    number_of_nodes: Option<u32>,
) -> Result<(), (&'static str, String)> {
    let Some(node_type) = node_type else {
        return Ok(());
    };
    let Some(&(_, min, max)) = NODE_RANGES.iter().find(|(t, _, _)| *t == node_type) else {
        return Err((
            "node_type",
            format!(
                "{node_type:?} is not a node type cfn/redshift.yaml creates; use one of {}",
                NODE_RANGES
                    .iter()
                    .map(|(t, _, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    match number_of_nodes {
        Some(n) if n < min || n > max => Err((
            "number_of_nodes",
            format!(
                "a new {node_type} cluster has {min} to {max} nodes, not {n} \
                 (https://docs.aws.amazon.com/redshift/latest/mgmt/working-with-clusters.html#rs-node-type-info)"
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_follow_the_documented_table() {
        let t = |s: &str| ColumnType::parse(s).unwrap();
        for (encoding, ty) in [
            ("raw", "timetz"),
            ("az64", "bigint"),
            ("az64", "timestamptz"),
            ("bytedict", "varchar(10)"),
            ("delta", "smallint"),
            ("delta32k", "date"),
            ("lzo", "char(3)"),
            ("mostly8", "smallint"),
            ("mostly16", "decimal(10,2)"),
            ("mostly32", "bigint"),
            ("runlength", "boolean"),
            ("text255", "varchar(20)"),
            ("zstd", "double precision"),
        ] {
            assert!(check_encoding(encoding, &t(ty)).is_ok(), "{encoding} {ty}");
        }
        for (encoding, ty) in [
            ("az64", "varchar(10)"),
            ("az64", "boolean"),
            ("az64", "real"),
            ("delta", "varchar(10)"),
            ("delta32k", "smallint"),
            ("lzo", "boolean"),
            ("lzo", "double precision"),
            ("mostly8", "real"),
            ("mostly16", "smallint"),
            ("mostly32", "integer"),
            ("text255", "char(3)"),
            ("text32k", "integer"),
            ("zstd", "time"),
            ("bytedict", "boolean"),
        ] {
            let err = check_encoding(encoding, &t(ty)).unwrap_err();
            assert!(
                err.contains("c_Compression_encodings"),
                "{encoding} {ty}: {err}"
            );
        }
    }

    #[test]
    fn node_counts_follow_the_node_type_table() {
        assert!(
            check_nodes(None, Some(500)).is_ok(),
            "the deployment decides"
        );
        assert!(check_nodes(Some("ra3.xlplus"), Some(1)).is_ok());
        assert!(check_nodes(Some("ra3.16xlarge"), Some(128)).is_ok());
        assert!(check_nodes(Some("ra3.4xlarge"), None).is_ok());
        assert_eq!(
            check_nodes(Some("ra3.4xlarge"), Some(1)).unwrap_err().0,
            "number_of_nodes"
        );
        assert_eq!(
            check_nodes(Some("ra3.xlplus"), Some(17)).unwrap_err().0,
            "number_of_nodes"
        );
        assert_eq!(
            check_nodes(Some("dc1.large"), Some(2)).unwrap_err().0,
            "node_type"
        );
    }
}
