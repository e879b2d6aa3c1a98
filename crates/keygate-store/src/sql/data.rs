//! Ingested data: resources, their instances and datapoints, values, logs.
//!
//! Writes look each resource, instance and datapoint up once per call (a payload
//! names the same ones many times) and write a row only when something in it changed,
//! so a steady stream of values costs one insert a value. Inserts of resources,
//! instances and datapoints take the row another writer just made (`ON CONFLICT`):
//! on PostgreSQL, two nodes may push for a new resource at once.

use std::collections::HashMap;

use super::dialect::{Conn, DbRow, Row, query, query_scalar};
use keygate_core::model::{EpochSeconds, UserId};

use crate::data::*;
use crate::error::{Result, StoreError};

/// How often a resource's or instance's `updated_on` is written when nothing else
/// about it changed: once a minute is enough to tell live from gone.
const TOUCH_EVERY: i64 = 60;

fn to_json(p: &Properties) -> String {
    // A map of strings always serializes.
    serde_json::to_string(p).unwrap_or_else(|_| "{}".to_owned())
}

fn from_json(text: &str) -> Result<Properties> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt("stored properties are not JSON"))
}

/// What was stored of a resource the last time it was read in this call.
struct Known {
    id: i64,
    name: String,
    description: String,
    properties: Properties,
    updated_on: EpochSeconds,
}

/// Looks resources, instances and datapoints up once per write call.
#[derive(Default)]
pub(super) struct Lookups {
    resources: HashMap<String, Option<Known>>,
    instances: HashMap<(i64, String, String), (i64, Properties, EpochSeconds)>,
    datapoints: HashMap<(i64, String), i64>,
}

impl Lookups {
    /// The resource with these ids: read once, then kept for the call.
    async fn resource(&mut self, conn: &mut Conn, key: &str) -> Result<Option<&mut Known>> {
        if !self.resources.contains_key(key) {
            let row = query("SELECT id, name, description, properties, updated_on FROM data_resources WHERE resource_key = $1")
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
            let known = match row {
                Some(r) => {
                    let props: String = r.try_get(3)?;
                    Some(Known {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                        description: r.try_get(2)?,
                        properties: from_json(&props)?,
                        updated_on: r.try_get(4)?,
                    })
                }
                None => None,
            };
            self.resources.insert(key.to_owned(), known);
        }
        Ok(self.resources.get_mut(key).and_then(Option::as_mut))
    }

    /// Creates a resource, or merges what `r` says into the stored one; `None` when
    /// it does not exist and `create` is false.
    pub(super) async fn upsert_resource(
        &mut self,
        conn: &mut Conn,
        r: &ResourceInput,
        create: bool,
        by: UserId,
        now: EpochSeconds,
    ) -> Result<Option<i64>> {
        let key = resource_key(&r.ids);
        if let Some(k) = self.resource(conn, &key).await? {
            let mut changed = false;
            for (name, value) in &r.properties {
                if k.properties.get(name) != Some(value) {
                    k.properties.insert(name.clone(), value.clone());
                    changed = true;
                }
            }
            if !r.name.is_empty() && r.name != k.name {
                k.name.clone_from(&r.name);
                changed = true;
            }
            if !r.description.is_empty() && r.description != k.description {
                k.description.clone_from(&r.description);
                changed = true;
            }
            if changed || now - k.updated_on >= TOUCH_EVERY {
                query("UPDATE data_resources SET name = $1, description = $2, properties = $3, updated_on = $4 WHERE id = $5")
                    .bind(&k.name)
                    .bind(&k.description)
                    .bind(to_json(&k.properties))
                    .bind(now)
                    .bind(k.id)
                    .execute(&mut *conn)
                    .await?;
                k.updated_on = now;
            }
            return Ok(Some(k.id));
        }
        if !create {
            return Ok(None);
        }
        let id: i64 = query_scalar("INSERT INTO data_resources (resource_key, name, description, properties, created_by, created_on, updated_on) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (resource_key) DO UPDATE SET updated_on = excluded.updated_on RETURNING id")
            .bind(&key)
            .bind(&r.name)
            .bind(&r.description)
            .bind(to_json(&r.properties))
            .bind(by)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
        self.resources.insert(
            key,
            Some(Known {
                id,
                name: r.name.clone(),
                description: r.description.clone(),
                properties: r.properties.clone(),
                updated_on: now,
            }),
        );
        Ok(Some(id))
    }

    /// The id of a resource by its ids, if it exists.
    pub(super) async fn resource_id(
        &mut self,
        conn: &mut Conn,
        ids: &Properties,
    ) -> Result<Option<i64>> {
        self.resource_id_by_key(conn, &resource_key(ids)).await
    }

    /// The id of a resource by its key ([`resource_key`]), if it exists.
    pub(super) async fn resource_id_by_key(
        &mut self,
        conn: &mut Conn,
        key: &str,
    ) -> Result<Option<i64>> {
        Ok(self.resource(conn, key).await?.map(|k| k.id))
    }

    /// Replaces or merges a resource's properties; `false` when it does not exist.
    pub(super) async fn set_resource_properties(
        &mut self,
        conn: &mut Conn,
        ids: &Properties,
        props: &Properties,
        replace: bool,
        now: EpochSeconds,
    ) -> Result<bool> {
        let Some(k) = self.resource(conn, &resource_key(ids)).await? else {
            return Ok(false);
        };
        if replace {
            k.properties.clone_from(props);
        } else {
            k.properties
                .extend(props.iter().map(|(n, v)| (n.clone(), v.clone())));
        }
        query("UPDATE data_resources SET properties = $1, updated_on = $2 WHERE id = $3")
            .bind(to_json(&k.properties))
            .bind(now)
            .bind(k.id)
            .execute(&mut *conn)
            .await?;
        k.updated_on = now;
        Ok(true)
    }

    /// Creates an instance, or merges `props` (or replaces them with `replace`) into
    /// the stored one; returns its id.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn upsert_instance(
        &mut self,
        conn: &mut Conn,
        resource: i64,
        ds: (&str, &str, &str),
        instance: (&str, &str),
        props: &Properties,
        replace: bool,
        now: EpochSeconds,
    ) -> Result<i64> {
        let key = (resource, ds.0.to_owned(), instance.0.to_owned());
        if !self.instances.contains_key(&key) {
            let row = query("SELECT id, properties, updated_on FROM data_instances WHERE resource_id = $1 AND datasource = $2 AND instance = $3")
                .bind(resource)
                .bind(ds.0)
                .bind(instance.0)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(r) = row {
                let text: String = r.try_get(1)?;
                self.instances.insert(
                    key.clone(),
                    (r.try_get(0)?, from_json(&text)?, r.try_get(2)?),
                );
            }
        }
        if let Some((id, stored, updated_on)) = self.instances.get_mut(&key) {
            let before = stored.clone();
            if replace {
                stored.clone_from(props);
            } else {
                stored.extend(props.iter().map(|(n, v)| (n.clone(), v.clone())));
            }
            if *stored != before || replace || now - *updated_on >= TOUCH_EVERY {
                query("UPDATE data_instances SET properties = $1, updated_on = $2 WHERE id = $3")
                    .bind(to_json(stored))
                    .bind(now)
                    .bind(*id)
                    .execute(&mut *conn)
                    .await?;
                *updated_on = now;
            }
            return Ok(*id);
        }
        let id: i64 = query_scalar("INSERT INTO data_instances (resource_id, datasource, datasource_display, datasource_group, instance, instance_display, properties, updated_on) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (resource_id, datasource, instance) DO UPDATE SET updated_on = excluded.updated_on RETURNING id")
            .bind(resource)
            .bind(ds.0)
            .bind(ds.1)
            .bind(ds.2)
            .bind(instance.0)
            .bind(instance.1)
            .bind(to_json(props))
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
        self.instances.insert(key, (id, props.clone(), now));
        Ok(id)
    }

    /// The datapoint's id, creating it on first sight.
    pub(super) async fn datapoint(
        &mut self,
        conn: &mut Conn,
        instance: i64,
        dp: &DatapointInput,
    ) -> Result<i64> {
        let key = (instance, dp.name.clone());
        if let Some(id) = self.datapoints.get(&key) {
            return Ok(*id);
        }
        let found: Option<i64> =
            query_scalar("SELECT id FROM data_datapoints WHERE instance_id = $1 AND name = $2")
                .bind(instance)
                .bind(&dp.name)
                .fetch_optional(&mut *conn)
                .await?;
        let id = match found {
            Some(id) => id,
            None => {
                query_scalar("INSERT INTO data_datapoints (instance_id, name, kind, aggregation, percentile) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (instance_id, name) DO UPDATE SET kind = excluded.kind RETURNING id")
                    .bind(instance)
                    .bind(&dp.name)
                    .bind(&dp.kind)
                    .bind(&dp.aggregation)
                    .bind(dp.percentile)
                    .fetch_one(&mut *conn)
                    .await?
            }
        };
        self.datapoints.insert(key, id);
        Ok(id)
    }
}

/// Stores one value; a value for the same datapoint and time replaces it.
pub(super) async fn put_value(
    conn: &mut Conn,
    datapoint: i64,
    at_ms: i64,
    value: f64,
) -> Result<()> {
    query("INSERT INTO data_values (datapoint_id, at_ms, value) VALUES ($1, $2, $3) ON CONFLICT (datapoint_id, at_ms) DO UPDATE SET value = excluded.value")
        .bind(datapoint)
        .bind(at_ms)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Log lines one multi-row insert carries: a request of 100 lines is 7 statements
/// instead of 100 (on PostgreSQL, 7 round trips), each bound and stepped once.
const LOG_ROWS: usize = 16;

/// The columns of a log row, in the order [`put_logs`] binds them.
const LOG_COLUMNS: &str = "INSERT INTO data_logs (resource_id, resource_key, at_ms, level, message, metadata, sent_by) VALUES ";
const LOG_PARAMS: usize = 7;

/// The insert of `rows` log rows: `$1` to `$7` for the first, `$8` to `$14` for the
/// next, and so on. Made from constants only, once per process.
fn log_insert(rows: usize) -> String {
    let mut sql = String::from(LOG_COLUMNS);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 1..=LOG_PARAMS {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * LOG_PARAMS + c).to_string());
        }
        sql.push(')');
    }
    sql
}

/// The inserts of 1 to `LOG_ROWS` rows, made once per process.
static LOG_INSERTS: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (1..=LOG_ROWS).map(log_insert).collect());

/// Stores log lines, each with the resource it matched (if any) and its resource
/// key, `LOG_ROWS` to a statement.
pub(super) async fn put_logs(
    conn: &mut Conn,
    lines: &[((Option<i64>, &str), &LogInput)],
    by: UserId,
) -> Result<()> {
    for chunk in lines.chunks(LOG_ROWS) {
        let sql = LOG_INSERTS
            .get(chunk.len() - 1)
            .ok_or(StoreError::Corrupt("a batch of log lines of no size"))?;
        let mut q = query(sql.as_str());
        for &((resource, key), log) in chunk {
            q = q
                .bind(resource)
                .bind(key)
                .bind(log.at_ms)
                .bind(&log.level)
                .bind(&log.message)
                .bind(&log.metadata)
                .bind(by);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The resource columns [`resource_from_row`] reads, in its order.
macro_rules! resource_columns {
    () => {
        "id, resource_key, name, description, properties, created_by, created_on, updated_on"
    };
}

fn resource_from_row(r: &DbRow) -> Result<DataResource> {
    let ids: String = r.try_get(1)?;
    let props: String = r.try_get(4)?;
    Ok(DataResource {
        id: r.try_get(0)?,
        ids: from_json(&ids)?,
        name: r.try_get(2)?,
        description: r.try_get(3)?,
        properties: from_json(&props)?,
        created_by: r.try_get(5)?,
        created_on: r.try_get(6)?,
        updated_on: r.try_get(7)?,
        instances: Vec::new(),
    })
}

/// Resources, newest first, and how many there are in all.
pub(super) async fn resources(
    conn: &mut Conn,
    owner: Option<UserId>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DataResource>, i64)> {
    let rows = query(concat!(
        "SELECT ",
        resource_columns!(),
        " FROM data_resources WHERE (CAST($3 AS BIGINT) IS NULL OR created_by = $3) ORDER BY id DESC LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = query_scalar(
        "SELECT COUNT(*) FROM data_resources WHERE (CAST($1 AS BIGINT) IS NULL OR created_by = $1)",
    )
    .bind(owner)
    .fetch_one(&mut *conn)
    .await?;
    Ok((
        rows.iter().map(resource_from_row).collect::<Result<_>>()?,
        total,
    ))
}

/// One resource with its instances and datapoints (of `owner`'s, when given).
pub(super) async fn resource(
    conn: &mut Conn,
    owner: Option<UserId>,
    id: i64,
) -> Result<DataResource> {
    let row = query(concat!(
        "SELECT ",
        resource_columns!(),
        " FROM data_resources WHERE id = $1 AND (CAST($2 AS BIGINT) IS NULL OR created_by = $2)"
    ))
    .bind(id)
    .bind(owner)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("resource {id}")))?;
    let mut r = resource_from_row(&row)?;
    let instances = query("SELECT id, datasource, datasource_display, datasource_group, instance, instance_display, properties FROM data_instances WHERE resource_id = $1 ORDER BY datasource, instance")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    let points = query("SELECT d.instance_id, d.id, d.name, d.kind, d.aggregation, d.percentile FROM data_datapoints d JOIN data_instances i ON i.id = d.instance_id WHERE i.resource_id = $1 ORDER BY d.name")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    let mut by_instance: HashMap<i64, Vec<DataDatapoint>> = HashMap::new();
    for p in &points {
        by_instance
            .entry(p.try_get(0)?)
            .or_default()
            .push(DataDatapoint {
                id: p.try_get(1)?,
                name: p.try_get(2)?,
                kind: p.try_get(3)?,
                aggregation: p.try_get(4)?,
                percentile: p.try_get(5)?,
            });
    }
    for i in &instances {
        let id: i64 = i.try_get(0)?;
        let props: String = i.try_get(6)?;
        r.instances.push(DataInstance {
            id,
            datasource: i.try_get(1)?,
            datasource_display: i.try_get(2)?,
            datasource_group: i.try_get(3)?,
            name: i.try_get(4)?,
            display_name: i.try_get(5)?,
            properties: from_json(&props)?,
            datapoints: by_instance.remove(&id).unwrap_or_default(),
        });
    }
    Ok(r)
}

/// A datapoint's values in a time range, oldest first.
pub(super) async fn series(
    conn: &mut Conn,
    owner: Option<UserId>,
    datapoint: i64,
    range: TimeRange,
) -> Result<Vec<(i64, f64)>> {
    let exists: Option<i64> = query_scalar("SELECT d.id FROM data_datapoints d JOIN data_instances i ON i.id = d.instance_id JOIN data_resources r ON r.id = i.resource_id WHERE d.id = $1 AND (CAST($2 AS BIGINT) IS NULL OR r.created_by = $2)")
        .bind(datapoint)
        .bind(owner)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("datapoint {datapoint}")));
    }
    let rows = query("SELECT at_ms, value FROM data_values WHERE datapoint_id = $1 AND at_ms >= $2 AND at_ms <= $3 ORDER BY at_ms LIMIT $4")
        .bind(datapoint)
        .bind(range.from_ms)
        .bind(range.to_ms)
        .bind(range.limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// `text` as a LIKE pattern that matches it anywhere, its own `%`, `_` and `\`
/// taken literally.
fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Log lines, newest first.
pub(super) async fn logs(conn: &mut Conn, q: &LogQuery) -> Result<Vec<DataLog>> {
    let rows = query("SELECT id, resource_id, resource_key, at_ms, level, message, metadata FROM data_logs WHERE at_ms >= $1 AND at_ms <= $2 AND (CAST($3 AS BIGINT) IS NULL OR resource_id = $3) AND (CAST($4 AS TEXT) IS NULL OR LOWER(message) LIKE $4 ESCAPE '\\') AND (CAST($6 AS BIGINT) IS NULL OR sent_by = $6) ORDER BY at_ms DESC, id DESC LIMIT $5")
        .bind(q.range.from_ms)
        .bind(q.range.to_ms)
        .bind(q.resource)
        .bind(q.text.as_deref().map(contains_pattern))
        .bind(q.range.limit)
        .bind(q.owner)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            let ids: String = r.try_get(2)?;
            Ok(DataLog {
                id: r.try_get(0)?,
                resource_id: r.try_get(1)?,
                ids: from_json(&ids)?,
                at_ms: r.try_get(3)?,
                level: r.try_get(4)?,
                message: r.try_get(5)?,
                metadata: r.try_get(6)?,
            })
        })
        .collect()
}

/// Stores one span; one sent again (same trace and span id) replaces the first.
pub(super) async fn put_span(conn: &mut Conn, s: &SpanInput, by: UserId) -> Result<()> {
    query("INSERT INTO data_spans (trace_id, span_id, parent_span_id, service, name, kind, start_ns, end_ns, status, status_message, attributes, resource, sent_by) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
           ON CONFLICT (trace_id, span_id) DO UPDATE SET parent_span_id = excluded.parent_span_id, service = excluded.service, name = excluded.name, kind = excluded.kind, \
           start_ns = excluded.start_ns, end_ns = excluded.end_ns, status = excluded.status, status_message = excluded.status_message, attributes = excluded.attributes, resource = excluded.resource")
        .bind(&s.trace_id)
        .bind(&s.span_id)
        .bind(&s.parent_span_id)
        .bind(&s.service)
        .bind(&s.name)
        .bind(&s.kind)
        .bind(s.start_ns)
        .bind(s.end_ns)
        .bind(&s.status)
        .bind(&s.status_message)
        .bind(&s.attributes)
        .bind(&s.resource)
        .bind(by)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Spans: one trace's oldest first, otherwise newest first.
pub(super) async fn spans(conn: &mut Conn, q: &SpanQuery) -> Result<Vec<DataSpan>> {
    let from_ns = q.range.from_ms.saturating_mul(1_000_000);
    let to_ns = q
        .range
        .to_ms
        .saturating_mul(1_000_000)
        .saturating_add(999_999);
    let rows = query("SELECT trace_id, span_id, parent_span_id, service, name, kind, start_ns, end_ns, status, status_message, attributes, resource, sent_by FROM data_spans \
                      WHERE start_ns >= $1 AND start_ns <= $2 AND (CAST($3 AS TEXT) IS NULL OR trace_id = $3) AND (CAST($4 AS TEXT) IS NULL OR service = $4) \
                      AND (CAST($5 AS BIGINT) IS NULL OR sent_by = $5) \
                      ORDER BY CASE WHEN CAST($3 AS TEXT) IS NULL THEN -start_ns ELSE start_ns END, span_id LIMIT $6")
        .bind(from_ns)
        .bind(to_ns)
        .bind(q.trace_id.as_deref())
        .bind(q.service.as_deref())
        .bind(q.owner)
        .bind(q.range.limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DataSpan {
                span: SpanInput {
                    trace_id: r.try_get(0)?,
                    span_id: r.try_get(1)?,
                    parent_span_id: r.try_get(2)?,
                    service: r.try_get(3)?,
                    name: r.try_get(4)?,
                    kind: r.try_get(5)?,
                    start_ns: r.try_get(6)?,
                    end_ns: r.try_get(7)?,
                    status: r.try_get(8)?,
                    status_message: r.try_get(9)?,
                    attributes: r.try_get(10)?,
                    resource: r.try_get(11)?,
                },
                sent_by: r.try_get(12)?,
            })
        })
        .collect()
}

/// Deletes values, log lines and spans from before `before_ms`; returns how many.
pub(super) async fn prune(conn: &mut Conn, before_ms: i64) -> Result<u64> {
    let values = query("DELETE FROM data_values WHERE at_ms < $1")
        .bind(before_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let logs = query("DELETE FROM data_logs WHERE at_ms < $1")
        .bind(before_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let spans = query("DELETE FROM data_spans WHERE start_ns < $1")
        .bind(before_ms.saturating_mul(1_000_000))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(values + logs + spans)
}

#[cfg(test)]
mod tests {
    use super::{contains_pattern, log_insert};

    #[test]
    fn a_multi_row_insert_numbers_its_parameters_on() {
        assert_eq!(
            log_insert(2),
            "INSERT INTO data_logs (resource_id, resource_key, at_ms, level, message, metadata, sent_by) VALUES ($1, $2, $3, $4, $5, $6, $7), ($8, $9, $10, $11, $12, $13, $14)"
        );
    }

    #[test]
    fn search_text_is_taken_literally() {
        assert_eq!(
            contains_pattern("Disk 50%_full\\"),
            "%disk 50\\%\\_full\\\\%"
        );
    }
}
