//! Loading tables: the client-side path (files → Redshift COPY semantics → `COPY ... FROM STDIN`)
//! and the server-side path (Redshift `COPY ... FROM 's3://...'`).

pub mod datetime;
