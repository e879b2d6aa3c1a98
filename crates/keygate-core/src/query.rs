//! LogicMonitor list queries: `filter`, `sort`, `fields`, `size` and `offset`.
//!
//! A query is parsed against a resource's field specification and evaluated on the
//! records themselves, so no user input ever becomes SQL and both storage backends
//! give the same answers (text is compared case-insensitively everywhere).

use std::cmp::Ordering;

use crate::error::QueryError;

/// Default page size.
pub const DEFAULT_SIZE: usize = 50;
/// Largest page size.
pub const MAX_SIZE: usize = 1000;
/// Longest `filter` accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Most terms in one `filter`.
pub const MAX_TERMS: usize = 32;

/// How a field compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Whole numbers, compared numerically.
    Int,
    /// Text, compared case-insensitively.
    Text,
}

/// A field that can be filtered and sorted on.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// The property name as in the JSON.
    pub name: &'static str,
    /// How it compares.
    pub kind: FieldKind,
}

/// A field's value on one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// A number.
    Int(i64),
    /// Text.
    Text(&'a str),
}

/// Something a list query can be evaluated on.
pub trait Record {
    /// The value of a filterable field (names come from the resource's [`FieldSpec`]s).
    fn value(&self, field: &str) -> Option<FieldValue<'_>>;
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `:` equals (`*` is a wildcard).
    Eq,
    /// `!:` not equals.
    Ne,
    /// `~` contains.
    Contains,
    /// `!~` does not contain.
    NotContains,
    /// `>`.
    Gt,
    /// `<`.
    Lt,
    /// `>:`.
    Ge,
    /// `<:`.
    Le,
}

/// One `field op value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The field.
    pub field: &'static str,
    /// The operator.
    pub op: Op,
    /// The value, quotes removed, lower-cased for text fields.
    pub value: String,
    kind: FieldKind,
    number: i64,
}

/// Sort order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    /// The field.
    pub field: &'static str,
    /// `true` for `-field`.
    pub descending: bool,
}

/// The raw query parameters as received.
#[derive(Debug, Default, Clone)]
pub struct RawListParams {
    /// `filter`.
    pub filter: Option<String>,
    /// `sort`.
    pub sort: Option<String>,
    /// `fields`.
    pub fields: Option<String>,
    /// `size`.
    pub size: Option<String>,
    /// `offset`.
    pub offset: Option<String>,
}

/// A parsed, validated list query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Terms, all of which must match.
    pub terms: Vec<Term>,
    /// Order.
    pub sort: Sort,
    /// Properties to return, `None` for all.
    pub fields: Option<Vec<String>>,
    /// Page size.
    pub size: usize,
    /// Items to skip.
    pub offset: usize,
}

/// The `fields` and nothing else, for single-object responses.
pub fn parse_fields(
    raw: Option<&str>,
    properties: &[&str],
) -> Result<Option<Vec<String>>, QueryError> {
    let Some(raw) = raw else { return Ok(None) };
    let mut out = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !properties.contains(&name) {
            return Err(QueryError::Fields {
                field: clip(name),
                allowed: properties.join(", "),
            });
        }
        out.push(name.to_owned());
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

impl ListQuery {
    /// Parses raw parameters against the resource's filterable fields and properties.
    pub fn parse(
        raw: &RawListParams,
        filterable: &[FieldSpec],
        properties: &[&str],
    ) -> Result<Self, QueryError> {
        let size = match raw.size.as_deref() {
            None => DEFAULT_SIZE,
            Some(s) => match s.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_SIZE).contains(&n) => n,
                _ => return Err(QueryError::Size { max: MAX_SIZE }),
            },
        };
        let offset = match raw.offset.as_deref() {
            None => 0,
            Some(s) => s.trim().parse::<usize>().map_err(|_| QueryError::Offset)?,
        };
        let terms = match raw.filter.as_deref() {
            None => Vec::new(),
            Some(f) => parse_filter(f, filterable)?,
        };
        let sort = match raw.sort.as_deref() {
            None => Sort {
                field: "id",
                descending: false,
            },
            Some(s) => parse_sort(s, filterable)?,
        };
        let fields = parse_fields(raw.fields.as_deref(), properties)?;
        Ok(Self {
            terms,
            sort,
            fields,
            size,
            offset,
        })
    }

    /// Whether one record matches every term.
    pub fn matches<R: Record>(&self, r: &R) -> bool {
        self.terms.iter().all(|t| t.matches(r))
    }

    /// Filters, sorts and pages `items`; returns the number of matches and the page.
    pub fn apply<R: Record>(&self, items: Vec<R>) -> (usize, Vec<R>) {
        let mut hits: Vec<R> = items.into_iter().filter(|r| self.matches(r)).collect();
        let sort = &self.sort;
        hits.sort_by(|a, b| {
            let o = compare(a.value(sort.field), b.value(sort.field));
            let o = if sort.descending { o.reverse() } else { o };
            // Ties keep a stable order by id, so pages never overlap.
            o.then_with(|| compare(a.value("id"), b.value("id")))
        });
        let total = hits.len();
        let page = hits.into_iter().skip(self.offset).take(self.size).collect();
        (total, page)
    }
}

fn compare(a: Option<FieldValue<'_>>, b: Option<FieldValue<'_>>) -> Ordering {
    match (a, b) {
        (Some(FieldValue::Int(x)), Some(FieldValue::Int(y))) => x.cmp(&y),
        (Some(FieldValue::Text(x)), Some(FieldValue::Text(y))) => cmp_ci(x, y),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

fn cmp_ci(a: &str, b: &str) -> Ordering {
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
}

impl Term {
    fn matches<R: Record>(&self, r: &R) -> bool {
        match (r.value(self.field), self.kind) {
            (Some(FieldValue::Int(v)), FieldKind::Int) => match self.op {
                Op::Eq => v == self.number,
                Op::Ne => v != self.number,
                Op::Gt => v > self.number,
                Op::Lt => v < self.number,
                Op::Ge => v >= self.number,
                Op::Le => v <= self.number,
                Op::Contains => v.to_string().contains(&self.value),
                Op::NotContains => !v.to_string().contains(&self.value),
            },
            (Some(FieldValue::Text(v)), FieldKind::Text) => {
                let v = v.to_lowercase();
                let want = self.value.as_str();
                match self.op {
                    Op::Eq => glob(&v, want),
                    Op::Ne => !glob(&v, want),
                    Op::Contains => v.contains(want),
                    Op::NotContains => !v.contains(want),
                    Op::Gt => v.as_str() > want,
                    Op::Lt => v.as_str() < want,
                    Op::Ge => v.as_str() >= want,
                    Op::Le => v.as_str() <= want,
                }
            }
            _ => false,
        }
    }
}

/// Equality where `*` in the pattern matches any run of characters.
fn glob(text: &str, pattern: &str) -> bool {
    if !pattern.contains('*') {
        return text == pattern;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().map_or(("", &[][..]), |(f, r)| (*f, r));
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn field_names(specs: &[FieldSpec]) -> String {
    specs.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

fn parse_sort(raw: &str, specs: &[FieldSpec]) -> Result<Sort, QueryError> {
    // A literal '+' arrives as a space when the client did not percent-encode it.
    let (descending, name) = if let Some(n) = raw.strip_prefix('-') {
        (true, n)
    } else if let Some(n) = raw.strip_prefix('+').or_else(|| raw.strip_prefix(' ')) {
        (false, n)
    } else {
        (false, raw)
    };
    let spec = specs
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| QueryError::Sort {
            field: clip(raw),
            allowed: field_names(specs),
        })?;
    Ok(Sort {
        field: spec.name,
        descending,
    })
}

fn parse_filter(raw: &str, specs: &[FieldSpec]) -> Result<Vec<Term>, QueryError> {
    let allowed = field_names(specs);
    let syntax = |reason: &str| QueryError::FilterSyntax {
        reason: reason.to_owned(),
        allowed: allowed.clone(),
    };
    if raw.len() > MAX_FILTER_LEN {
        return Err(syntax(&format!(
            "the filter is longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let mut terms = Vec::new();
    let mut rest = raw.trim();
    if rest.is_empty() {
        return Ok(terms);
    }
    loop {
        if terms.len() == MAX_TERMS {
            return Err(syntax(&format!("more than {MAX_TERMS} terms")));
        }
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        if name.is_empty() {
            return Err(syntax("a term must start with a field name"));
        }
        rest = &rest[name_len..];
        let spec = specs.iter().find(|f| f.name == name).ok_or_else(|| {
            QueryError::UnknownFilterField {
                field: clip(name),
                allowed: allowed.clone(),
            }
        })?;
        let (op, op_len) = [
            ("!:", Op::Ne),
            ("!~", Op::NotContains),
            (">:", Op::Ge),
            ("<:", Op::Le),
            (":", Op::Eq),
            ("~", Op::Contains),
            (">", Op::Gt),
            ("<", Op::Lt),
        ]
        .iter()
        .find(|(s, _)| rest.starts_with(s))
        .map(|(s, op)| (*op, s.len()))
        .ok_or_else(|| syntax(&format!("missing operator after \"{}\"", clip(name))))?;
        rest = &rest[op_len..];
        let (value, after) = read_value(rest).map_err(&syntax)?;
        rest = after;
        let number = match spec.kind {
            FieldKind::Int if matches!(op, Op::Contains | Op::NotContains) => 0,
            FieldKind::Int => {
                value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| QueryError::FilterNotNumber {
                        field: spec.name.to_owned(),
                    })?
            }
            FieldKind::Text => 0,
        };
        let value = match spec.kind {
            FieldKind::Text => value.to_lowercase(),
            FieldKind::Int => value,
        };
        terms.push(Term {
            field: spec.name,
            op,
            value,
            kind: spec.kind,
            number,
        });
        match rest.strip_prefix(',') {
            Some(r) => rest = r,
            None if rest.is_empty() => return Ok(terms),
            None => return Err(syntax("terms must be joined by ','")),
        }
    }
}

/// Reads a value: either `"quoted"` (with `\"` and `\\` escapes) or bare up to a comma.
fn read_value(s: &str) -> Result<(String, &str), &'static str> {
    let Some(body) = s.strip_prefix('"') else {
        let end = s.find(',').unwrap_or(s.len());
        let v = &s[..end];
        if v.contains('"') {
            return Err("a value with a double quote must be quoted as a whole");
        }
        return Ok((v.to_owned(), &s[end..]));
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("a quoted value has no closing quote")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row {
        id: i64,
        note: String,
    }

    impl Record for Row {
        fn value(&self, field: &str) -> Option<FieldValue<'_>> {
            match field {
                "id" => Some(FieldValue::Int(self.id)),
                "note" => Some(FieldValue::Text(&self.note)),
                _ => None,
            }
        }
    }

    const SPECS: &[FieldSpec] = &[
        FieldSpec {
            name: "id",
            kind: FieldKind::Int,
        },
        FieldSpec {
            name: "note",
            kind: FieldKind::Text,
        },
    ];

    fn q(filter: &str) -> Result<ListQuery, QueryError> {
        let raw = RawListParams {
            filter: Some(filter.into()),
            ..Default::default()
        };
        ListQuery::parse(&raw, SPECS, &["id", "note"])
    }

    fn rows() -> Vec<Row> {
        ["CI deploy", "ci, nightly", "laptop", "x' OR '1'='1"]
            .iter()
            .enumerate()
            .map(|(i, n)| Row {
                id: i as i64 + 1,
                note: (*n).into(),
            })
            .collect()
    }

    fn ids(filter: &str) -> Vec<i64> {
        let query = q(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        query.apply(rows()).1.iter().map(|r| r.id).collect()
    }

    #[test]
    fn operators_match_as_documented() {
        assert_eq!(ids("note:ci*"), vec![1, 2]);
        assert_eq!(ids("note:\"ci, nightly\""), vec![2]);
        assert_eq!(ids("note~LAP"), vec![3]);
        assert_eq!(ids("note!~ci"), vec![3, 4]);
        assert_eq!(ids("id>:2,id<4"), vec![2, 3]);
        assert_eq!(ids("id!:1"), vec![2, 3, 4]);
        assert_eq!(ids("note:*nightly"), vec![2]);
        assert_eq!(ids("note:\"x' OR '1'='1\""), vec![4]);
        assert_eq!(ids("note:\"x' OR 1=1\""), Vec::<i64>::new());
    }

    #[test]
    fn bad_filters_are_refused_with_the_field_list() {
        assert!(matches!(
            q("owner:1"),
            Err(QueryError::UnknownFilterField { .. })
        ));
        assert!(matches!(
            q("id:abc"),
            Err(QueryError::FilterNotNumber { .. })
        ));
        assert!(matches!(q("note"), Err(QueryError::FilterSyntax { .. })));
        assert!(matches!(
            q("note:\"open"),
            Err(QueryError::FilterSyntax { .. })
        ));
        let e = q("bogus:1")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("id, note"), "{e}");
    }

    #[test]
    fn size_offset_and_sort_are_validated() {
        let parse = |size: &str, offset: &str, sort: &str| {
            let raw = RawListParams {
                size: Some(size.into()),
                offset: Some(offset.into()),
                sort: Some(sort.into()),
                ..Default::default()
            };
            ListQuery::parse(&raw, SPECS, &["id", "note"])
        };
        assert!(parse("0", "0", "+id").is_err());
        assert!(parse("1001", "0", "+id").is_err());
        assert!(parse("-1", "0", "+id").is_err());
        assert!(parse("10", "-1", "+id").is_err());
        assert!(parse("10", "0", "+owner").is_err());
        let query = parse("2", "1", "-id").unwrap_or_else(|e| panic!("{e}"));
        let (total, page) = query.apply(rows());
        assert_eq!(total, 4);
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 2]);
        assert!(parse("10", "0", " id").is_ok());
    }

    #[test]
    fn glob_handles_edges() {
        assert!(glob("abc", "a*c"));
        assert!(glob("ac", "a*c"));
        assert!(!glob("a", "a*a"));
        assert!(glob("anything", "*"));
        assert!(glob("abcabc", "*bc*c"));
        assert!(!glob("abd", "a*c"));
    }
}
