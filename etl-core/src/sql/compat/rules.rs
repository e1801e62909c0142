//! The rewrite rules that need more than one token of context: `TOP n`, EXTRACT, DATE_TRUNC's
//! abbreviations, LISTAGG (DISTINCT, window), PERCENTILE_CONT/DISC as window functions,
//! RATIO_TO_REPORT, REGEXP_REPLACE, CONVERT, Redshift's string literals and type names.
//!
//! Each rule takes the statement's tokens and the index of the word it starts at, pushes its
//! edits, and returns the index of the next token to look at (the caller sorts the edits).
//! Every rule cites the Amazon Redshift Database Developer Guide page it follows, under
//! <https://docs.aws.amazon.com/redshift/latest/dg/>.

use super::{Call, Edit, Kind, Token, canonical_datepart, is_punct, is_word, rewrite_fragment};

/// The text of one argument of a [`Call`], rewritten on its own.
fn arg(sql: &str, range: (usize, usize)) -> String {
    rewrite_fragment(&sql[range.0..range.1])
}

/// Whether the token is a plain unsigned integer literal.
fn is_integer(sql: &str, tok: Option<&Token>) -> bool {
    tok.is_some_and(|t| {
        t.kind == Kind::Other && sql[t.start..t.end].bytes().all(|b| b.is_ascii_digit())
    })
}

/// `SELECT [DISTINCT | ALL] TOP n ...` becomes `SELECT [DISTINCT | ALL] ... LIMIT n`, the LIMIT at
/// the end of that SELECT (before the parenthesis that closes it, a `;`, or the end). Left alone
/// when a UNION / INTERSECT / EXCEPT / MINUS follows at the same level (PostgreSQL would apply
/// the LIMIT to the whole set operation); `sql::compat::unsupported` flags that case.
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_TOP_clause.html> (TOP is in the SELECT list
/// page: `SELECT TOP 10 ...` returns the first 10 rows, after ORDER BY).
pub(super) fn top(sql: &str, tokens: &[Token], i: usize, edits: &mut Vec<Edit>) -> usize {
    let mut k = i + 1;
    if is_word(sql, tokens.get(k), "distinct") || is_word(sql, tokens.get(k), "all") {
        k += 1;
    }
    if !(is_word(sql, tokens.get(k), "top") && is_integer(sql, tokens.get(k + 1))) {
        return i + 1;
    }
    let Some(last) = top_scope_end(sql, tokens, k + 2) else {
        return i + 1;
    };
    let n = &sql[tokens[k + 1].start..tokens[k + 1].end];
    // `TOP n ` goes, up to the next token, so that no double space is left.
    edits.push(Edit {
        start: tokens[k].start,
        end: tokens.get(k + 2).map_or(tokens[k + 1].end, |t| t.start),
        text: String::new(),
    });
    edits.push(Edit {
        start: tokens[last].end,
        end: tokens[last].end,
        text: format!(" LIMIT {n}"),
    });
    k + 2
}

/// The last token of the SELECT whose body starts at `from`, or `None` when a set operation
/// follows it at the same level (or the body is empty).
fn top_scope_end(sql: &str, tokens: &[Token], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = from;
    while let Some(t) = tokens.get(j) {
        match t.kind {
            Kind::Punct(b'(' | b'[') => depth += 1,
            Kind::Punct(b')' | b']') => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            Kind::Other if depth == 0 && &sql[t.start..t.end] == ";" => break,
            Kind::Word
                if depth == 0
                    && ["union", "intersect", "except", "minus"]
                        .iter()
                        .any(|w| sql[t.start..t.end].eq_ignore_ascii_case(w)) =>
            {
                return None;
            }
            _ => {}
        }
        j += 1;
    }
    (j > from).then(|| j - 1)
}

/// `EXTRACT(part FROM x)` becomes `public.date_part('part', x)`: Redshift's EXTRACT returns the
/// part alone as an INTEGER (`second` without its fraction, `millisecond` without the seconds,
/// decade 201 for 2000), PostgreSQL's a NUMERIC with the lower parts included. The function is
/// called qualified, so PostgreSQL's own `date_part` is not chosen; Redshift also names the
/// column `date_part`. A part that is not one of Redshift's is left for PostgreSQL to judge.
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_EXTRACT_function.html>
pub(super) fn extract(sql: &str, tokens: &[Token], i: usize, edits: &mut Vec<Edit>) -> usize {
    let (Some(part), true) = (tokens.get(i + 2), is_word(sql, tokens.get(i + 3), "from")) else {
        return i + 1;
    };
    let text = &sql[part.start..part.end];
    let word = match part.kind {
        Kind::Word => text,
        Kind::Str => match super::string_content(text) {
            Some(s) => s,
            None => return i + 1,
        },
        _ => return i + 1,
    };
    if canonical_datepart(word).is_none() {
        return i + 1;
    }
    edits.push(Edit {
        start: tokens[i].start,
        end: tokens[i + 3].end,
        text: format!("public.date_part('{}',", word.to_ascii_lowercase()),
    });
    i + 4
}

/// `DATE_TRUNC('qtrs', x)`: a Redshift-only spelling of the part becomes PostgreSQL's name for it
/// (`quarter`, `milliseconds`, ...); the function and its column name stay `date_trunc`.
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_DATE_TRUNC.html>
pub(super) fn date_trunc(sql: &str, tokens: &[Token], i: usize, edits: &mut Vec<Edit>) -> usize {
    let (Some(part), true) = (tokens.get(i + 2), is_punct(tokens.get(i + 3), b',')) else {
        return i + 1;
    };
    if part.kind != Kind::Str {
        return i + 1;
    }
    let Some(word) = super::string_content(&sql[part.start..part.end]) else {
        return i + 1;
    };
    let Some(canonical) = canonical_datepart(word) else {
        return i + 1;
    };
    let postgres = match canonical {
        "millisecond" => "milliseconds",
        "microsecond" => "microseconds",
        other => other,
    };
    if !word.eq_ignore_ascii_case(postgres) {
        edits.push(Edit {
            start: part.start,
            end: part.end,
            text: format!("'{postgres}'"),
        });
    }
    i + 4
}

/// The parts of `name(args) [WITHIN GROUP (ORDER BY list)] [OVER (window)]`.
struct Aggregate {
    call: Call,
    /// `ORDER BY ...` of WITHIN GROUP, as written, and the token that closes WITHIN GROUP.
    order_by: Option<(String, usize)>,
    /// The window's parenthesised list and the index of its `(`, when OVER follows.
    over: Option<(usize, Call)>,
}

impl Aggregate {
    fn parse(sql: &str, tokens: &[Token], i: usize) -> Option<Aggregate> {
        let call = Call::parse(tokens, i + 1)?;
        let c = call.close;
        let mut after = c;
        let mut order_by = None;
        if is_word(sql, tokens.get(c + 1), "within") {
            if !(is_word(sql, tokens.get(c + 2), "group")
                && is_punct(tokens.get(c + 3), b'(')
                && is_word(sql, tokens.get(c + 4), "order"))
            {
                return None;
            }
            let order = Call::parse(tokens, c + 3)?;
            let text = rewrite_fragment(&sql[tokens[c + 4].start..tokens[order.close].start]);
            order_by = Some((text, order.close));
            after = order.close;
        }
        let over = if is_word(sql, tokens.get(after + 1), "over") {
            Some((after + 2, Call::parse(tokens, after + 2)?))
        } else {
            None
        };
        Some(Aggregate {
            call,
            order_by,
            over,
        })
    }

    /// The index of the last token of the whole construct.
    fn end(&self) -> usize {
        match (&self.over, &self.order_by) {
            (Some((_, w)), _) => w.close,
            (None, Some((_, close))) => *close,
            (None, None) => self.call.close,
        }
    }
}

/// Whether the window list (tokens strictly inside `w`) has its own ORDER BY or frame at its top
/// level.
fn window_has_order_or_frame(sql: &str, tokens: &[Token], open: usize, w: &Call) -> bool {
    let mut depth = 0usize;
    for t in &tokens[open + 1..w.close] {
        match t.kind {
            Kind::Punct(b'(' | b'[') => depth += 1,
            Kind::Punct(b')' | b']') => depth = depth.saturating_sub(1),
            Kind::Word if depth == 0 => {
                let word = &sql[t.start..t.end];
                if ["order", "rows", "range", "groups"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// The OVER clause that feeds an aggregate every row of its partition in `order_by`'s order:
/// `over (<partition> ORDER BY ... ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)`.
fn whole_partition_window(
    sql: &str,
    tokens: &[Token],
    open: usize,
    w: &Call,
    order_by: Option<&str>,
) -> String {
    let inner = rewrite_fragment(&sql[tokens[open].end..tokens[w.close].start]);
    match order_by {
        Some(order) => {
            let sep = if inner.is_empty() { "" } else { " " };
            format!(
                "over ({inner}{sep}{order} rows between unbounded preceding and unbounded following)"
            )
        }
        None => format!("over ({inner})"),
    }
}

/// LISTAGG in all its Redshift forms:
///
/// - `listagg(x, d) within group (order by y)` → `listagg(x, d order by y)` (PostgreSQL takes
///   WITHIN GROUP for ordered-set aggregates only, an ORDER BY in the arguments for any);
/// - `listagg(distinct x, d) ...` → `listagg(x, d, true ...)`, the compat aggregate that drops
///   repeats comparing without trailing blanks, as Redshift does;
/// - the window form `listagg(x, d) within group (order by y) over (partition by p)` →
///   `listagg(x, d) over (partition by p order by y rows between unbounded preceding and
///   unbounded following)`: the aggregate sees the whole partition, in WITHIN GROUP's order.
///
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_LISTAGG.html>,
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_WF_LISTAGG.html>
pub(super) fn listagg(sql: &str, tokens: &[Token], i: usize, edits: &mut Vec<Edit>) -> usize {
    let Some(agg) = Aggregate::parse(sql, tokens, i) else {
        return i + 1;
    };
    let distinct = is_word(sql, tokens.get(i + 2), "distinct");
    if !distinct && agg.order_by.is_none() {
        return i + 1; // PostgreSQL runs it as it is
    }
    if let Some((open, w)) = &agg.over
        && window_has_order_or_frame(sql, tokens, *open, w)
    {
        // Redshift allows neither an ORDER BY nor a frame in LISTAGG's OVER: leave it to fail.
        return i + 1;
    }
    let args = if distinct {
        if agg.call.args.len() > 2 {
            return i + 1;
        }
        let value = rewrite_fragment(&sql[tokens[i + 2].end..agg.call.args[0].1]);
        let delimiter = agg
            .call
            .args
            .get(1)
            .map_or_else(|| "NULL".to_owned(), |&r| arg(sql, r));
        format!("{value}, {delimiter}, true")
    } else {
        rewrite_fragment(&sql[tokens[i + 1].end..tokens[agg.call.close].start])
    };
    let name = &sql[tokens[i].start..tokens[i].end];
    let text = match &agg.over {
        Some((open, w)) => format!(
            "{name}({args}) {}",
            whole_partition_window(
                sql,
                tokens,
                *open,
                w,
                agg.order_by.as_ref().map(|o| o.0.as_str())
            )
        ),
        None => match &agg.order_by {
            Some((order, _)) => format!("{name}({args} {order})"),
            None => format!("{name}({args})"),
        },
    };
    let end = agg.end();
    edits.push(Edit {
        start: tokens[i].start,
        end: tokens[end].end,
        text,
    });
    end + 1
}

/// `percentile_cont(f) within group (order by x) over (partition by p)` →
/// `percentile_cont(f, x, true) over (partition by p)`, the compat aggregate (PostgreSQL cannot
/// use an ordered-set aggregate as a window function); the same for PERCENTILE_DISC. Only an
/// ascending ORDER BY on one expression is rewritten; the aggregate form is PostgreSQL's own.
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_WF_PERCENTILE_CONT.html>,
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_WF_PERCENTILE_DISC.html>
pub(super) fn percentile(sql: &str, tokens: &[Token], i: usize, edits: &mut Vec<Edit>) -> usize {
    let Some(agg) = Aggregate::parse(sql, tokens, i) else {
        return i + 1;
    };
    let (Some((open_w, w)), Some((order, close))) = (&agg.over, &agg.order_by) else {
        return i + 1;
    };
    if agg.call.args.len() != 1 {
        return i + 1;
    }
    // "order by x [asc]": one expression, ascending.
    let open = agg.call.close + 3;
    let order_call = Call::parse(tokens, open).expect("parsed by Aggregate");
    debug_assert_eq!(order_call.close, *close);
    if order_call.args.len() != 1 || window_has_order_or_frame(sql, tokens, *open_w, w) {
        return i + 1;
    }
    let body = order.trim();
    let Some(expr) = body
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("order"))
        .and_then(|_| {
            let rest = body[5..].trim_start();
            rest.get(..2)
                .filter(|p| p.eq_ignore_ascii_case("by"))
                .map(|_| rest[2..].trim())
        })
    else {
        return i + 1;
    };
    let lower = expr.to_ascii_lowercase();
    if lower.ends_with(" desc") || lower.contains(" nulls ") {
        return i + 1;
    }
    let expr = expr
        .strip_suffix(" asc")
        .or_else(|| expr.strip_suffix(" ASC"))
        .unwrap_or(expr);
    let fraction = arg(sql, agg.call.args[0]);
    let name = &sql[tokens[i].start..tokens[i].end];
    let text = format!(
        "{name}({fraction}, {expr}, true) {}",
        whole_partition_window(sql, tokens, *open_w, w, None)
    );
    edits.push(Edit {
        start: tokens[i].start,
        end: tokens[w.close].end,
        text,
    });
    w.close + 1
}

/// `ratio_to_report(x) over (partition by p)` → `((x)::double precision / sum(x) over (partition
/// by p))`: the value over the sum of its partition, as FLOAT8 (NULL for a NULL value).
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_WF_RATIO_TO_REPORT.html>
pub(super) fn ratio_to_report(
    sql: &str,
    tokens: &[Token],
    i: usize,
    edits: &mut Vec<Edit>,
) -> usize {
    let Some(call) = Call::parse(tokens, i + 1) else {
        return i + 1;
    };
    if call.args.len() != 1 || !is_word(sql, tokens.get(call.close + 1), "over") {
        return i + 1;
    }
    let Some(w) = Call::parse(tokens, call.close + 2) else {
        return i + 1;
    };
    let x = arg(sql, call.args[0]);
    let window = whole_partition_window(sql, tokens, call.close + 2, &w, None);
    edits.push(Edit {
        start: tokens[i].start,
        end: tokens[w.close].end,
        text: format!("(({x})::double precision / sum({x}) {window})"),
    });
    w.close + 1
}

/// REGEXP_REPLACE replaces every match in Redshift, the first only in PostgreSQL:
/// `regexp_replace(s, p)` → `regexp_replace(s, p, '', 'g')`, `(s, p, r)` → `(s, p, r, 'g')`,
/// `(s, p, r, position)` → `(s, p, r, position, 0)` (0: every match, PostgreSQL 15),
/// `(s, p, r, position, 'parameters')` → `(s, p, r, position, 0, 'flags')` with `c` and `i` kept
/// and `p` (PCRE) dropped: PostgreSQL's regular expressions accept the common PCRE syntax.
/// <https://docs.aws.amazon.com/redshift/latest/dg/REGEXP_REPLACE.html>
pub(super) fn regexp_replace(
    sql: &str,
    tokens: &[Token],
    i: usize,
    edits: &mut Vec<Edit>,
) -> usize {
    let Some(call) = Call::parse(tokens, i + 1) else {
        return i + 1;
    };
    let args: Vec<String> = call.args.iter().map(|&r| arg(sql, r)).collect();
    if args.iter().any(String::is_empty) {
        return i + 1;
    }
    let tail = match args.len() {
        2 => ", '', 'g'".to_owned(),
        3 => ", 'g'".to_owned(),
        4 => ", 0".to_owned(),
        5 => {
            let params = &args[4];
            let flags = match super::string_content(params) {
                Some(p) => format!(
                    "'{}'",
                    p.chars()
                        .filter(|c| matches!(c, 'c' | 'i'))
                        .collect::<String>()
                ),
                None => params.clone(),
            };
            let name = &sql[tokens[i].start..tokens[i].end];
            edits.push(Edit {
                start: tokens[i].start,
                end: tokens[call.close].end,
                text: format!(
                    "{name}({}, {}, {}, {}, 0, {flags})",
                    args[0], args[1], args[2], args[3]
                ),
            });
            return call.close + 1;
        }
        _ => return i + 1,
    };
    let name = &sql[tokens[i].start..tokens[i].end];
    edits.push(Edit {
        start: tokens[i].start,
        end: tokens[call.close].end,
        text: format!("{name}({}{tail})", args.join(", ")),
    });
    call.close + 1
}

/// `CONVERT(type, expression)` → `CAST(expression AS type)`; PostgreSQL's own three-argument
/// `convert(bytes, from, to)` is left alone.
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_CAST_function.html>
pub(super) fn convert(sql: &str, tokens: &[Token], i: usize, edits: &mut Vec<Edit>) -> usize {
    let Some(call) = Call::parse(tokens, i + 1) else {
        return i + 1;
    };
    if call.args.len() != 2 {
        return i + 1;
    }
    // The type starts with a word: int, varchar(10), decimal(10,2), double precision, ...
    let first = tokens
        .iter()
        .position(|t| t.start >= call.args[0].0)
        .map(|j| tokens[j]);
    if first.is_none_or(|t| t.kind != Kind::Word) {
        return i + 1;
    }
    let ty = arg(sql, call.args[0]);
    let expr = arg(sql, call.args[1]);
    edits.push(Edit {
        start: tokens[i].start,
        end: tokens[call.close].end,
        text: format!("CAST({expr} AS {ty})"),
    });
    call.close + 1
}

/// Redshift's type names PostgreSQL lacks: `NVARCHAR` → `VARCHAR`, `NCHAR` → `CHAR`, and a
/// length of `MAX` → 65535 (VARCHAR) or 4096 (CHAR), Redshift's maximum.
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_Character_types.html>
pub(super) fn type_name(sql: &str, tokens: &[Token], i: usize, edits: &mut Vec<Edit>) -> usize {
    let word = sql[tokens[i].start..tokens[i].end].to_ascii_lowercase();
    let (renamed, max) = match word.as_str() {
        "nvarchar" => (Some("varchar"), "65535"),
        "nchar" => (Some("char"), "4096"),
        "varchar" => (None, "65535"),
        "char" | "character" | "bpchar" => {
            // CHARACTER VARYING(MAX)
            if is_word(sql, tokens.get(i + 1), "varying") {
                return max_length(sql, tokens, i + 1, "65535", edits);
            }
            (None, "4096")
        }
        _ => return i + 1,
    };
    // Only in a type position: the word is followed by `(`, `,`, `)` or a word, never a call of a
    // function with the same name (there is none in PostgreSQL).
    if let Some(new) = renamed {
        edits.push(Edit {
            start: tokens[i].start,
            end: tokens[i].end,
            text: new.to_owned(),
        });
    }
    max_length(sql, tokens, i, max, edits)
}

/// `(MAX)` after the type word at `i` becomes `(max)`'s number.
fn max_length(sql: &str, tokens: &[Token], i: usize, max: &str, edits: &mut Vec<Edit>) -> usize {
    if is_punct(tokens.get(i + 1), b'(')
        && is_word(sql, tokens.get(i + 2), "max")
        && is_punct(tokens.get(i + 3), b')')
    {
        edits.push(Edit {
            start: tokens[i + 2].start,
            end: tokens[i + 2].end,
            text: max.to_owned(),
        });
        return i + 4;
    }
    i + 1
}

/// A Redshift string literal with a backslash becomes a PostgreSQL escape string (`'a\\d'` →
/// `E'a\\d'`): Redshift reads backslash escapes in every literal, PostgreSQL only in `E'...'`.
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_character_literals.html>
pub(super) fn escape_string(sql: &str, tokens: &[Token], i: usize, edits: &mut Vec<Edit>) {
    let t = tokens[i];
    if !sql[t.start..t.end].contains('\\') {
        return;
    }
    // Already E'...' (or U&'...', B'...', X'...'): a word glued to the quote.
    if i > 0 && tokens[i - 1].kind == Kind::Word && tokens[i - 1].end == t.start {
        return;
    }
    edits.push(Edit {
        start: t.start,
        end: t.start,
        text: "E".to_owned(),
    });
}

/// A construct the rehearsal cannot reproduce: where it starts (byte offset), what it is, and
/// what to write instead. `sql::compat::unsupported` turns these into its findings.
pub(super) struct Unsupported {
    pub offset: usize,
    pub construct: &'static str,
    pub instead: &'static str,
}

/// Redshift system tables and views: none of them exists in PostgreSQL.
const SYSTEM_PREFIXES: &[&str] = &["stl_", "stv_", "svl_", "svv_", "svcs_", "sys_"];

/// Redshift functions about the cluster's own history, absent in PostgreSQL.
const SESSION_FUNCTIONS: &[&str] = &[
    "pg_last_copy_count",
    "pg_last_copy_id",
    "pg_last_query_id",
    "pg_last_unload_count",
    "pg_last_unload_id",
];

/// Finds, in one statement or script, what `rewrite_for_postgres` and the compat functions leave
/// different from Redshift. Code only: strings, quoted identifiers and comments are skipped. The
/// list, with the reasons, is in `sql/compat/README.md` ("What PostgreSQL does not reproduce").
pub(super) fn unsupported(sql: &str, tokens: &[Token]) -> Vec<Unsupported> {
    let mut out = Vec::new();
    let mut push = |offset, construct, instead| {
        out.push(Unsupported {
            offset,
            construct,
            instead,
        });
    };
    for (i, t) in tokens.iter().enumerate() {
        if t.kind != Kind::Word {
            continue;
        }
        let word = sql[t.start..t.end].to_ascii_lowercase();
        let call = is_punct(tokens.get(i + 1), b'(');
        let after_dot = is_punct(tokens.get(i.wrapping_sub(1)), b'.');
        match word.as_str() {
            "listagg" if call && !after_dot => {
                // A window with its own ORDER BY or frame (Redshift refuses it too), or more than
                // the value and the delimiter with DISTINCT: left as written.
                if let Some(agg) = Aggregate::parse(sql, tokens, i)
                    && let Some((open, w)) = &agg.over
                    && window_has_order_or_frame(sql, tokens, *open, w)
                {
                    push(
                        t.start,
                        "LISTAGG ... OVER (... ORDER BY ...)",
                        "LISTAGG(x, d) WITHIN GROUP (ORDER BY y) OVER (PARTITION BY p), with no \
                         ORDER BY or frame inside OVER",
                    );
                }
            }
            "percentile_cont" | "percentile_disc" if call && !after_dot => {
                if let Some(agg) = Aggregate::parse(sql, tokens, i)
                    && agg.over.is_some()
                {
                    let mut probe = Vec::new();
                    if percentile(sql, tokens, i, &mut probe) == i + 1 {
                        push(
                            t.start,
                            "PERCENTILE_CONT/DISC ... WITHIN GROUP (ORDER BY ... DESC | several \
                             columns) OVER (...)",
                            "one ascending ORDER BY expression (for DESC, use 1 - fraction with \
                             PERCENTILE_CONT), or the aggregate in a subquery joined back",
                        );
                    }
                }
            }
            "top"
                if is_integer(sql, tokens.get(i + 1))
                    && top_scope_end(sql, tokens, i + 2).is_none() =>
            {
                push(
                    t.start,
                    "SELECT TOP n ... UNION/INTERSECT/EXCEPT ...",
                    "put the SELECT with TOP in parentheses or a subquery, or use LIMIT",
                );
            }
            "qualify" if !after_dot => push(
                t.start,
                "QUALIFY",
                "filter on the window function in a subquery: select * from (select ..., \
                 row_number() over (...) as rn from t) q where rn = 1",
            ),
            "pivot" | "unpivot" if is_punct(tokens.get(i + 1), b'(') && !after_dot => push(
                t.start,
                "PIVOT / UNPIVOT",
                "aggregate with CASE (sum(case when k = 'a' then v end) as a, ...) or UNION ALL",
            ),
            "identity" if call && !after_dot => push(
                t.start,
                "IDENTITY(seed, step)",
                "GENERATED BY DEFAULT AS IDENTITY, or row_number() over (order by ...)",
            ),
            "diststyle" | "distkey" | "sortkey" | "encode"
                if !(after_dot || word == "encode" && call) =>
            {
                push(
                    t.start,
                    "DISTSTYLE / DISTKEY / SORTKEY / ENCODE in a transform",
                    "declare distribution, sort keys and encodings in the manifest's tables \
                     (the rehearsal ignores them); PostgreSQL refuses them in CREATE TABLE",
                )
            }
            "json_parse"
            | "json_serialize"
            | "json_extract_path_text"
            | "json_extract_array_element_text"
            | "is_valid_json"
            | "is_valid_json_array"
            | "json_array_length"
                if call && !after_dot =>
            {
                push(
                    t.start,
                    "JSON functions and SUPER",
                    "the rehearsal has no SUPER type; rehearse JSON logic separately (PostgreSQL's \
                     json operators differ) or keep it out of the rehearsed transform",
                )
            }
            "super" | "hllsketch" | "geometry" | "geography"
                if !call && !after_dot && type_position(sql, tokens, i) =>
            {
                push(
                    t.start,
                    "SUPER / HLLSKETCH / GEOMETRY / GEOGRAPHY column",
                    "a VARCHAR column for the rehearsal, or keep the step out of the rehearsed transform",
                )
            }
            w if SESSION_FUNCTIONS.contains(&w) && call && !after_dot => push(
                t.start,
                "PG_LAST_COPY_COUNT() / PG_LAST_QUERY_ID() and the like",
                "the row counts etl records in its journal (etl status), not the cluster's query \
                 history",
            ),
            w if SYSTEM_PREFIXES.iter().any(|p| w.starts_with(p))
                && w.len() > 5
                && !call
                && is_word_before_any(sql, tokens, i, &["from", "join"]) =>
            {
                push(
                    t.start,
                    "Redshift system tables (STL_, STV_, SVL_, SVV_, SYS_)",
                    "nothing to read locally; keep monitoring queries out of the transform",
                )
            }
            _ => {}
        }
    }
    // '+' between two string literals: Redshift concatenates, PostgreSQL refuses.
    for w in tokens.windows(3) {
        if w[0].kind == Kind::Str && w[2].kind == Kind::Str && &sql[w[1].start..w[1].end] == "+" {
            out.push(Unsupported {
                offset: w[0].start,
                construct: "'...' + '...' (string concatenation with +)",
                instead: "'...' || '...' or CONCAT(a, b)",
            });
        }
    }
    out.sort_by_key(|u| u.offset);
    out
}

/// Whether the word at `i` is preceded (possibly after `schema.`) by one of `words`.
fn is_word_before_any(sql: &str, tokens: &[Token], i: usize, words: &[&str]) -> bool {
    let mut j = i;
    // skip `schema .`
    if j >= 2 && is_punct(tokens.get(j - 1), b'.') {
        j -= 2;
    }
    j > 0 && words.iter().any(|w| is_word(sql, tokens.get(j - 1), w))
}

/// Whether the word at `i` stands where a column type does: after a column name in a column list
/// (`(a super, b int)`) or after `::` (two `:` tokens).
fn type_position(sql: &str, tokens: &[Token], i: usize) -> bool {
    let Some(prev) = i.checked_sub(1).map(|j| tokens[j]) else {
        return false;
    };
    let next_ok = tokens
        .get(i + 1)
        .is_none_or(|t| matches!(t.kind, Kind::Punct(b',' | b')')) || &sql[t.start..t.end] == ";");
    next_ok && (prev.kind == Kind::Word || &sql[prev.start..prev.end] == ":")
}
