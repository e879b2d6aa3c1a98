//! `PATCH`/`PUT /rest/resource_property/ingest` and `/rest/instance_property/ingest`:
//! one object naming a resource (and an instance) and the properties to merge in
//! (`PATCH`) or to replace all with (`PUT`).

use keygate_store::data::PropertyUpdate;

use crate::Result;
use crate::limits::{MAX_DATASOURCE, MAX_NAME};
use crate::walk::{self, invalid, object, properties, required_text};

/// Which properties a request updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A resource's (`resourceProperties`).
    Resource,
    /// An instance's (`dataSource`, `instanceName`, `instanceProperties`).
    Instance,
}

/// Parses and validates a property update; `replace` for `PUT`.
pub fn parse(body: &[u8], target: Target, replace: bool) -> Result<PropertyUpdate> {
    let v = walk::json(body)?;
    let m = object(&v, "the request body")?;
    let at = "";
    let ids = walk::resource_ids(m, "resourceIds", at)?;
    let (instance, key) = match target {
        Target::Resource => (None, "resourceProperties"),
        Target::Instance => (
            Some((
                required_text(m, "dataSource", at, MAX_DATASOURCE)?,
                required_text(m, "instanceName", at, MAX_NAME)?,
            )),
            "instanceProperties",
        ),
    };
    let props = properties(m, key, at)?.ok_or_else(|| invalid(key, "is required"))?;
    if props.is_empty() {
        return Err(invalid(key, "must name at least one property"));
    }
    if let Some(name) = props
        .keys()
        .find(|k| k.starts_with("system.") || k.starts_with("auto."))
    {
        return Err(invalid(
            &format!("{key}[\"{}\"]", name.escape_debug()),
            "cannot be set: system. and auto. properties are the platform's own",
        ));
    }
    Ok(PropertyUpdate {
        ids,
        instance,
        properties: props,
        replace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_and_instance_updates() {
        let r = parse(
            br#"{"resourceIds":{"system.hostname":"web-1"},"resourceProperties":{"env":"prod"}}"#,
            Target::Resource,
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.properties["env"], "prod");
        assert_eq!(r.instance, None);
        let i = parse(
            br#"{"resourceIds":{"system.hostname":"web-1"},"dataSource":"CPU","instanceName":"CPU-0","instanceProperties":{"core":"0"}}"#,
            Target::Instance,
            true,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(i.instance, Some(("CPU".to_owned(), "CPU-0".to_owned())));
        assert!(i.replace);
    }

    #[test]
    fn platform_properties_and_missing_fields_are_refused() {
        let e = parse(
            br#"{"resourceIds":{"a":"b"},"resourceProperties":{"system.x":"1"}}"#,
            Target::Resource,
            false,
        );
        assert!(e.is_err_and(|e| {
            e.to_string()
                .starts_with("resourceProperties[\"system.x\"]")
        }));
        let e = parse(br#"{"resourceIds":{"a":"b"}}"#, Target::Instance, false);
        assert!(e.is_err_and(|e| e.to_string() == "dataSource is required"));
    }
}
