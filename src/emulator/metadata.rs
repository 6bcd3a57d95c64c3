//! `EntityDefinitions` from the local org's catalogue: the list with `$select` and
//! `$filter=LogicalName eq '…'` (or `EntitySetName eq '…'`), one definition by
//! `(LogicalName='…')` or `MetadataId`, its `Attributes` (all, by `(LogicalName='…')`, or
//! typed casts such as `Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`), with
//! `$select` and, on option-set types, `$expand=OptionSet`. `$expand=Attributes` on a
//! definition inlines its attributes. MetadataIds are stable (UUID v5 of the names).

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::emulator::Emulator;
use crate::emulator::entities::{json_response, only};
use crate::emulator::error::DvError;
use crate::emulator::request::Call;
use crate::metadata::{AttributeMeta, AttributeType, EntityMeta};
use crate::org::odata::{self, PROPERTY_NOT_FOUND};

pub(crate) fn handle(
    emulator: &Emulator,
    call: &Call,
    key: Option<&str>,
    rest: Option<&str>,
) -> Result<Response, DvError> {
    only(call, &Method::GET, "EntityDefinitions")?;
    let catalogue = emulator.org.catalogue();
    let api = call.api_url();
    let Some(key) = key else {
        if rest.is_some() {
            return Err(DvError::bad_request(
                "Address one table: EntityDefinitions(LogicalName='<name>')/…",
            ));
        }
        let filter = parse_filter(call.query_param("$filter"))?;
        let expand = expand_attributes(call)?;
        let value: Vec<Value> = catalogue
            .entities()
            .filter(|entity| {
                filter
                    .iter()
                    .all(|(property, literal)| match property.as_str() {
                        "LogicalName" => entity.logical_name == *literal,
                        "EntitySetName" => entity.entity_set_name == *literal,
                        _ => false,
                    })
            })
            .map(|entity| Value::Object(definition(entity, call, expand.as_ref())))
            .collect();
        let select = call
            .query_param("$select")
            .map(|select| format!("({select})"))
            .unwrap_or_default();
        return Ok(json_response(
            StatusCode::OK,
            json!({"@odata.context": format!("{api}$metadata#EntityDefinitions{select}"), "value": value}),
        ));
    };
    let entity = find_entity(emulator, key)?;
    let Some(rest) = rest else {
        let expand = expand_attributes(call)?;
        let mut body = definition(entity, call, expand.as_ref());
        body.insert(
            "@odata.context".into(),
            json!(format!("{api}$metadata#EntityDefinitions/$entity")),
        );
        return Ok(json_response(StatusCode::OK, Value::Object(body)));
    };
    let (segment, cast) = match rest.split_once('/') {
        Some((segment, cast)) => (segment, Some(cast)),
        None => (rest, None),
    };
    let (name, attribute_key) = crate::emulator::entities::split_key(segment)?;
    if name != "Attributes" {
        return Err(DvError::not_found_segment(name));
    }
    let cast = cast
        .map(|cast| {
            cast.strip_prefix("Microsoft.Dynamics.CRM.")
                .filter(|kind| kind.ends_with("AttributeMetadata"))
                .ok_or_else(|| DvError::not_found_segment(cast))
        })
        .transpose()?;
    let expand_option_set = match call.query_param("$expand") {
        None => false,
        Some(expand) if expand.split('(').next() == Some("OptionSet") => true,
        Some(expand) if expand.starts_with("GlobalOptionSet") => false,
        Some(expand) => {
            return Err(DvError::bad_request(format!(
                "$expand={expand} is not supported here; expand OptionSet on a typed cast"
            )));
        }
    };
    if expand_option_set && !cast.is_some_and(has_option_set) {
        return Err(DvError::new(
            StatusCode::BAD_REQUEST,
            PROPERTY_NOT_FOUND,
            "Could not find a property named 'OptionSet' on type \
             'Microsoft.Dynamics.CRM.AttributeMetadata'.",
        ));
    }
    let selected =
        |attribute: &&AttributeMeta| cast.is_none_or(|cast| metadata_type(attribute) == cast);
    if let Some(attribute_key) = attribute_key {
        let logical = quoted_key(attribute_key, "LogicalName");
        let attribute = entity
            .attributes
            .iter()
            .find(|attribute| {
                Some(attribute.logical_name.as_str()) == logical.as_deref()
                    || metadata_id(&format!(
                        "{}.{}",
                        entity.logical_name, attribute.logical_name
                    )) == attribute_key
            })
            .filter(selected)
            .ok_or_else(|| DvError::not_found_segment(attribute_key))?;
        let mut body = attribute_json(entity, attribute, call, expand_option_set);
        body.insert(
            "@odata.context".into(),
            json!(format!(
                "{api}$metadata#EntityDefinitions('{}')/Attributes/$entity",
                entity.logical_name
            )),
        );
        return Ok(json_response(StatusCode::OK, Value::Object(body)));
    }
    let value: Vec<Value> = entity
        .attributes
        .iter()
        .filter(selected)
        .map(|attribute| Value::Object(attribute_json(entity, attribute, call, expand_option_set)))
        .collect();
    let cast_path = cast
        .map(|cast| format!("/Microsoft.Dynamics.CRM.{cast}"))
        .unwrap_or_default();
    Ok(json_response(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{api}$metadata#EntityDefinitions('{}')/Attributes{cast_path}", entity.logical_name),
            "value": value,
        }),
    ))
}

/// `LogicalName='account'` → `account` (for the named key property).
fn quoted_key(key: &str, property: &str) -> Option<String> {
    let (name, value) = key.split_once('=')?;
    (name.trim() == property).then(|| value.trim().trim_matches('\'').to_owned())
}

fn find_entity<'a>(emulator: &'a Emulator, key: &str) -> Result<&'a EntityMeta, DvError> {
    let catalogue = emulator.org.catalogue();
    let found = match quoted_key(key, "LogicalName") {
        Some(name) => catalogue.entity(&name),
        None => catalogue
            .entities()
            .find(|entity| metadata_id(&entity.logical_name) == key.trim().to_ascii_lowercase()),
    };
    found.ok_or_else(|| {
        DvError::new(
            StatusCode::NOT_FOUND,
            odata::OBJECT_DOES_NOT_EXIST,
            format!("Could not find an entity with key {key}"),
        )
    })
}

/// `LogicalName eq 'account'` (optionally several joined by `and`) → [(property, literal)].
fn parse_filter(filter: Option<&str>) -> Result<Vec<(String, String)>, DvError> {
    let Some(filter) = filter else {
        return Ok(Vec::new());
    };
    filter
        .split(" and ")
        .map(|clause| {
            let mut words = clause.trim().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some(property @ ("LogicalName" | "EntitySetName")), Some("eq"), Some(literal))
                    if literal.starts_with('\'')
                        && literal.ends_with('\'')
                        && literal.len() >= 2 =>
                {
                    Ok((
                        property.to_owned(),
                        literal[1..literal.len() - 1].to_owned(),
                    ))
                }
                _ => Err(DvError::bad_request(format!(
                    "The $filter `{clause}` is not supported by the emulator: use LogicalName eq \
                     '<name>' or EntitySetName eq '<name>'"
                ))),
            }
        })
        .collect()
}

/// `$expand=Attributes` or `$expand=Attributes($select=A,B)`: the attribute columns wanted.
fn expand_attributes(call: &Call) -> Result<Option<Option<Vec<String>>>, DvError> {
    let Some(expand) = call.query_param("$expand") else {
        return Ok(None);
    };
    let Some(options) = expand.strip_prefix("Attributes") else {
        return Err(DvError::bad_request(format!(
            "$expand={expand} is not supported on EntityDefinitions; use Attributes"
        )));
    };
    let select = options
        .strip_prefix("($select=")
        .and_then(|rest| rest.strip_suffix(')'))
        .map(|select| {
            select
                .split(',')
                .map(|name| name.trim().to_owned())
                .collect()
        });
    Ok(Some(select))
}

/// A stable MetadataId for a table (`account`) or column (`account.name`).
fn metadata_id(name: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("fetchflow:{name}").as_bytes(),
    )
    .to_string()
}

fn select(map: &mut Map<String, Value>, select: Option<&[String]>) {
    if let Some(select) = select {
        map.retain(|key, _| {
            key == "MetadataId" || key == "@odata.type" || select.iter().any(|name| name == key)
        });
    }
}

fn selected_names(call: &Call) -> Option<Vec<String>> {
    call.query_param("$select").map(|select| {
        select
            .split(',')
            .map(|name| name.trim().to_owned())
            .collect()
    })
}

fn definition(
    entity: &EntityMeta,
    call: &Call,
    expand: Option<&Option<Vec<String>>>,
) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(
        "MetadataId".into(),
        json!(metadata_id(&entity.logical_name)),
    );
    map.insert("LogicalName".into(), json!(entity.logical_name));
    map.insert("SchemaName".into(), json!(entity.logical_name));
    map.insert("EntitySetName".into(), json!(entity.entity_set_name));
    map.insert(
        "LogicalCollectionName".into(),
        json!(entity.entity_set_name),
    );
    map.insert("PrimaryIdAttribute".into(), json!(entity.primary_id));
    map.insert("PrimaryNameAttribute".into(), json!(entity.primary_name));
    map.insert("TableType".into(), json!("Standard"));
    map.insert(
        "OwnershipType".into(),
        json!(if entity.attribute("ownerid").is_some() {
            "UserOwned"
        } else {
            "OrganizationOwned"
        }),
    );
    select(&mut map, selected_names(call).as_deref());
    if let Some(attribute_select) = expand {
        let attributes: Vec<Value> = entity
            .attributes
            .iter()
            .map(|attribute| {
                let mut json = attribute_base(entity, attribute);
                select(&mut json, attribute_select.as_deref());
                Value::Object(json)
            })
            .collect();
        map.insert("Attributes".into(), Value::Array(attributes));
    }
    map
}

/// The `…AttributeMetadata` type name of a column.
fn metadata_type(attribute: &AttributeMeta) -> &'static str {
    match attribute.kind {
        AttributeType::String => "StringAttributeMetadata",
        AttributeType::Memo => "MemoAttributeMetadata",
        AttributeType::Integer => "IntegerAttributeMetadata",
        AttributeType::BigInt => "BigIntAttributeMetadata",
        AttributeType::Decimal => "DecimalAttributeMetadata",
        AttributeType::Double => "DoubleAttributeMetadata",
        AttributeType::Money => "MoneyAttributeMetadata",
        AttributeType::Boolean => "BooleanAttributeMetadata",
        AttributeType::DateTime => "DateTimeAttributeMetadata",
        AttributeType::Uniqueidentifier => "UniqueIdentifierAttributeMetadata",
        AttributeType::Lookup | AttributeType::Owner | AttributeType::Customer => {
            "LookupAttributeMetadata"
        }
        AttributeType::Picklist => "PicklistAttributeMetadata",
        AttributeType::MultiSelectPicklist => "MultiSelectPicklistAttributeMetadata",
        AttributeType::State => "StateAttributeMetadata",
        AttributeType::Status => "StatusAttributeMetadata",
    }
}

fn has_option_set(cast: &str) -> bool {
    matches!(
        cast,
        "PicklistAttributeMetadata"
            | "MultiSelectPicklistAttributeMetadata"
            | "StateAttributeMetadata"
            | "StatusAttributeMetadata"
            | "BooleanAttributeMetadata"
    )
}

fn label(text: &str) -> Value {
    let localized = json!({"Label": text, "LanguageCode": 1033});
    json!({"LocalizedLabels": [localized.clone()], "UserLocalizedLabel": localized})
}

fn attribute_base(entity: &EntityMeta, attribute: &AttributeMeta) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(
        "@odata.type".into(),
        json!(format!(
            "#Microsoft.Dynamics.CRM.{}",
            metadata_type(attribute)
        )),
    );
    map.insert(
        "MetadataId".into(),
        json!(metadata_id(&format!(
            "{}.{}",
            entity.logical_name, attribute.logical_name
        ))),
    );
    map.insert("LogicalName".into(), json!(attribute.logical_name));
    map.insert("SchemaName".into(), json!(attribute.logical_name));
    map.insert("EntityLogicalName".into(), json!(entity.logical_name));
    // Dataverse types a multi-select choice column `Virtual`; its type name says what it is.
    let attribute_type = match attribute.kind {
        AttributeType::MultiSelectPicklist => "Virtual",
        kind => kind.name(),
    };
    map.insert("AttributeType".into(), json!(attribute_type));
    map.insert(
        "AttributeTypeName".into(),
        json!({"Value": format!("{}Type", attribute.kind.name())}),
    );
    map.insert("IsValidForCreate".into(), json!(attribute.valid_for_create));
    map.insert("IsValidForUpdate".into(), json!(attribute.valid_for_update));
    map.insert("IsValidForRead".into(), json!(true));
    map.insert(
        "IsPrimaryId".into(),
        json!(attribute.logical_name == entity.primary_id),
    );
    map.insert(
        "IsPrimaryName".into(),
        json!(attribute.logical_name == entity.primary_name),
    );
    if attribute.kind.is_lookup() {
        map.insert("Targets".into(), json!(attribute.targets));
    }
    if let Some(max_length) = attribute.max_length {
        map.insert("MaxLength".into(), json!(max_length));
    }
    if let Some(min) = attribute.min_value {
        map.insert("MinValue".into(), json!(min));
    }
    if let Some(max) = attribute.max_value {
        map.insert("MaxValue".into(), json!(max));
    }
    if attribute.hierarchical {
        map.insert("IsHierarchical".into(), json!(true));
    }
    map
}

fn attribute_json(
    entity: &EntityMeta,
    attribute: &AttributeMeta,
    call: &Call,
    expand_option_set: bool,
) -> Map<String, Value> {
    let mut map = attribute_base(entity, attribute);
    select(&mut map, selected_names(call).as_deref());
    if expand_option_set {
        map.insert("OptionSet".into(), option_set(entity, attribute));
    }
    map
}

fn option_set(entity: &EntityMeta, attribute: &AttributeMeta) -> Value {
    let name = format!("{}_{}", entity.logical_name, attribute.logical_name);
    if attribute.kind == AttributeType::Boolean {
        return json!({
            "MetadataId": metadata_id(&format!("optionset:{name}")),
            "Name": name,
            "OptionSetType": "Boolean",
            "TrueOption": {"Value": 1, "Label": label("Yes")},
            "FalseOption": {"Value": 0, "Label": label("No")},
        });
    }
    let kind = match attribute.kind {
        AttributeType::State => "State",
        AttributeType::Status => "Status",
        _ => "Picklist",
    };
    let options: Vec<Value> = attribute
        .options
        .iter()
        .map(|option| {
            let mut json = json!({"Value": option.value, "Label": label(&option.label)});
            match attribute.kind {
                AttributeType::State => {
                    if let Some(status) = entity
                        .state(option.value)
                        .and_then(|state| state.default_status())
                    {
                        json["DefaultStatus"] = json!(status);
                    }
                }
                AttributeType::Status => {
                    if let Some(state) = entity.states.iter().find(|state| {
                        state
                            .statuses
                            .iter()
                            .any(|status| status.value == option.value)
                    }) {
                        json["State"] = json!(state.value);
                    }
                }
                _ => {}
            }
            json
        })
        .collect();
    json!({
        "MetadataId": metadata_id(&format!("optionset:{name}")),
        "Name": name,
        "OptionSetType": kind,
        "Options": options,
    })
}
