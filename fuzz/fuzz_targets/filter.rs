//! LogicMonitor list queries (`filter`, `sort`, `fields`, `size`, `offset`) on
//! arbitrary text: parsed and evaluated, or refused with an error — never a panic.
#![no_main]

use keygate_core::query::{FieldKind, FieldSpec, FieldValue, ListQuery, RawListParams, Record};
use libfuzzer_sys::fuzz_target;

const FIELDS: &[FieldSpec] = &[
    FieldSpec { name: "id", kind: FieldKind::Int },
    FieldSpec { name: "note", kind: FieldKind::Text },
    FieldSpec { name: "status", kind: FieldKind::Int },
    FieldSpec { name: "adminName", kind: FieldKind::Text },
];
const PROPS: &[&str] = &["id", "note", "status", "adminName"];

struct Row(i64, &'static str, i64, &'static str);

impl Record for Row {
    fn value(&self, field: &str) -> Option<FieldValue<'_>> {
        Some(match field {
            "id" => FieldValue::Int(self.0),
            "note" => FieldValue::Text(self.1),
            "status" => FieldValue::Int(self.2),
            "adminName" => FieldValue::Text(self.3),
            _ => return None,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // One input feeds every parameter, split on a byte rarely found in queries.
    let mut parts = s.split('\u{1}').map(|p| Some(p.to_owned()));
    let raw = RawListParams {
        filter: parts.next().flatten(),
        sort: parts.next().flatten(),
        fields: parts.next().flatten(),
        size: parts.next().flatten(),
        offset: parts.next().flatten(),
    };
    if let Ok(q) = ListQuery::parse(&raw, FIELDS, PROPS) {
        let rows = vec![
            Row(1, "alpha", 2, "admin"),
            Row(2, "Beta*", 1, "ingest"),
            Row(3, "", 2, "ünïcode"),
        ];
        let (total, page) = q.apply(rows);
        assert!(total <= 3 && page.len() <= q.size.min(total));
    }
});
