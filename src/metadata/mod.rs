//! Table and column metadata: the `Catalogue` of entities, their typed columns, option sets and
//! state/status models. Pure data, no I/O; the single source of truth for checks and the local org.

mod builtin;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The data type of a column, as Dataverse names it (`AttributeTypeCode`); serialized by that
/// name (`"Picklist"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AttributeType {
    String,
    Memo,
    Integer,
    BigInt,
    Decimal,
    Double,
    Money,
    Boolean,
    DateTime,
    Uniqueidentifier,
    Lookup,
    Owner,
    Customer,
    Picklist,
    /// Multi-select choice column (`contain-values` / `not-contain-values`).
    MultiSelectPicklist,
    State,
    Status,
}

impl AttributeType {
    /// Integer, big integer, decimal, double or money.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Integer | Self::BigInt | Self::Decimal | Self::Double | Self::Money
        )
    }

    /// Integer or big integer (whole numbers only).
    pub fn is_whole_number(self) -> bool {
        matches!(self, Self::Integer | Self::BigInt)
    }

    /// Single-line text or multi-line text.
    pub fn is_string(self) -> bool {
        matches!(self, Self::String | Self::Memo)
    }

    pub fn is_datetime(self) -> bool {
        self == Self::DateTime
    }

    /// Lookup, owner or customer: a reference to a row of one of `AttributeMeta::targets`.
    pub fn is_lookup(self) -> bool {
        matches!(self, Self::Lookup | Self::Owner | Self::Customer)
    }

    /// Any column whose value is a GUID: primary keys and lookups.
    pub fn is_guid(self) -> bool {
        self == Self::Uniqueidentifier || self.is_lookup()
    }

    /// Columns whose value is an option of an option set (choice, state, status).
    pub fn is_option_set(self) -> bool {
        matches!(
            self,
            Self::Picklist | Self::MultiSelectPicklist | Self::State | Self::Status
        )
    }

    /// The Dataverse `AttributeTypeCode` name, e.g. `Picklist`.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::Memo => "Memo",
            Self::Integer => "Integer",
            Self::BigInt => "BigInt",
            Self::Decimal => "Decimal",
            Self::Double => "Double",
            Self::Money => "Money",
            Self::Boolean => "Boolean",
            Self::DateTime => "DateTime",
            Self::Uniqueidentifier => "Uniqueidentifier",
            Self::Lookup => "Lookup",
            Self::Owner => "Owner",
            Self::Customer => "Customer",
            Self::Picklist => "Picklist",
            Self::MultiSelectPicklist => "MultiSelectPicklist",
            Self::State => "State",
            Self::Status => "Status",
        }
    }
}

impl std::fmt::Display for AttributeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One option of an option set: its integer value and (English) label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionMeta {
    pub value: i32,
    pub label: String,
}

impl OptionMeta {
    pub fn new(value: i32, label: impl Into<String>) -> Self {
        OptionMeta {
            value,
            label: label.into(),
        }
    }
}

/// One column of a table.
///
/// Serialized with defaults for everything but `logical_name` and `kind`, so a custom column
/// can be written as `{"logical_name": "new_score", "kind": "Decimal"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeMeta {
    pub logical_name: String,
    pub kind: AttributeType,
    /// May be set by a `create` action.
    #[serde(default = "yes")]
    pub valid_for_create: bool,
    /// May be set by an `update` action's `set` (statecode/statuscode only via `set_state`).
    #[serde(default = "yes")]
    pub valid_for_update: bool,
    /// Target tables of a lookup, owner or customer column; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Options of a choice, state or status column; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<OptionMeta>,
    /// Maximum length in characters of a string or memo column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// Smallest allowed value of a numeric column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<f64>,
    /// Largest allowed value of a numeric column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<f64>,
    /// The self-referencing lookup that defines the table's hierarchy (`under`, `above`, …).
    #[serde(default, skip_serializing_if = "is_false")]
    pub hierarchical: bool,
}

fn yes() -> bool {
    true
}

fn is_false(value: &bool) -> bool {
    !value
}

impl AttributeMeta {
    /// A column that is valid for create and update, with no constraints.
    pub fn new(logical_name: impl Into<String>, kind: AttributeType) -> Self {
        AttributeMeta {
            logical_name: logical_name.into(),
            kind,
            valid_for_create: true,
            valid_for_update: true,
            targets: Vec::new(),
            options: Vec::new(),
            max_length: None,
            min_value: None,
            max_value: None,
            hierarchical: false,
        }
    }

    /// A single-line text column of at most `max_length` characters.
    pub fn string(logical_name: impl Into<String>, max_length: u32) -> Self {
        Self::new(logical_name, AttributeType::String).with_max_length(max_length)
    }

    /// A lookup column to the given tables.
    pub fn lookup<'a>(
        logical_name: impl Into<String>,
        targets: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Self::new(logical_name, AttributeType::Lookup).with_targets(targets)
    }

    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.valid_for_create = false;
        self.valid_for_update = false;
        self
    }

    /// Settable on create, never by update (e.g. a primary key).
    #[must_use]
    pub fn create_only(mut self) -> Self {
        self.valid_for_create = true;
        self.valid_for_update = false;
        self
    }

    #[must_use]
    pub fn with_targets<'a>(mut self, targets: impl IntoIterator<Item = &'a str>) -> Self {
        self.targets = targets.into_iter().map(str::to_owned).collect();
        self
    }

    #[must_use]
    pub fn with_options<'a>(mut self, options: impl IntoIterator<Item = (i32, &'a str)>) -> Self {
        self.options = options
            .into_iter()
            .map(|(value, label)| OptionMeta::new(value, label))
            .collect();
        self
    }

    #[must_use]
    pub fn with_max_length(mut self, max_length: u32) -> Self {
        self.max_length = Some(max_length);
        self
    }

    #[must_use]
    pub fn with_range(mut self, min_value: f64, max_value: f64) -> Self {
        self.min_value = Some(min_value);
        self.max_value = Some(max_value);
        self
    }

    #[must_use]
    pub fn hierarchical(mut self) -> Self {
        self.hierarchical = true;
        self
    }

    /// The option with this value, for choice, state and status columns.
    pub fn option(&self, value: i32) -> Option<&OptionMeta> {
        self.options.iter().find(|option| option.value == value)
    }

    /// "1 (Hot), 2 (Warm), 3 (Cold)": the options for help texts.
    pub fn describe_options(&self) -> String {
        self.options
            .iter()
            .map(|option| format!("{} ({})", option.value, option.label))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One state (`statecode` value) of a table and the status reasons valid in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMeta {
    pub value: i32,
    pub label: String,
    /// The valid `statuscode` values in this state; the first is the default.
    pub statuses: Vec<OptionMeta>,
}

impl StateMeta {
    pub fn default_status(&self) -> Option<i32> {
        self.statuses.first().map(|status| status.value)
    }
}

/// One table: names, key columns, ordered columns and its state/status model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityMeta {
    pub logical_name: String,
    /// The Web API entity set (plural) name, e.g. `accounts`.
    pub entity_set_name: String,
    /// The primary key column, e.g. `accountid` (task: `activityid`).
    pub primary_id: String,
    /// The primary name column, e.g. `name` (task: `subject`).
    pub primary_name: String,
    /// Columns in declaration order.
    #[serde(default)]
    pub attributes: Vec<AttributeMeta>,
    /// Valid `statecode` values with their status reasons; empty when the table has no state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<StateMeta>,
}

impl EntityMeta {
    /// A table with only its primary key column.
    pub fn new(
        logical_name: impl Into<String>,
        entity_set_name: impl Into<String>,
        primary_id: impl Into<String>,
        primary_name: impl Into<String>,
    ) -> Self {
        let primary_id = primary_id.into();
        EntityMeta {
            logical_name: logical_name.into(),
            entity_set_name: entity_set_name.into(),
            attributes: vec![
                AttributeMeta::new(primary_id.clone(), AttributeType::Uniqueidentifier)
                    .create_only(),
            ],
            primary_id,
            primary_name: primary_name.into(),
            states: Vec::new(),
        }
    }

    pub fn attribute(&self, name: &str) -> Option<&AttributeMeta> {
        self.attributes
            .iter()
            .find(|attribute| attribute.logical_name == name)
    }

    pub fn attribute_mut(&mut self, name: &str) -> Option<&mut AttributeMeta> {
        self.attributes
            .iter_mut()
            .find(|attribute| attribute.logical_name == name)
    }

    pub fn attribute_names(&self) -> impl Iterator<Item = &str> {
        self.attributes
            .iter()
            .map(|attribute| attribute.logical_name.as_str())
    }

    /// Adds a column, or replaces the column of the same name (keeping its position).
    pub fn add_attribute(&mut self, attribute: AttributeMeta) {
        match self.attribute_mut(&attribute.logical_name) {
            Some(existing) => *existing = attribute,
            None => self.attributes.push(attribute),
        }
    }

    /// The self-referencing lookup that defines the hierarchy, if the table has one.
    pub fn hierarchy_attribute(&self) -> Option<&AttributeMeta> {
        self.attributes
            .iter()
            .find(|attribute| attribute.hierarchical)
    }

    pub fn state(&self, statecode: i32) -> Option<&StateMeta> {
        self.states.iter().find(|state| state.value == statecode)
    }

    /// Sets the state model and fills the options of the `statecode` and `statuscode` columns
    /// (adding those columns when missing).
    pub fn set_states(&mut self, states: Vec<StateMeta>) {
        let state_options: Vec<OptionMeta> = states
            .iter()
            .map(|state| OptionMeta::new(state.value, state.label.clone()))
            .collect();
        let status_options: Vec<OptionMeta> = states
            .iter()
            .flat_map(|state| state.statuses.iter().cloned())
            .collect();
        let mut statecode = AttributeMeta::new("statecode", AttributeType::State).read_only();
        statecode.options = state_options;
        let mut statuscode = AttributeMeta::new("statuscode", AttributeType::Status);
        statuscode.valid_for_update = false;
        statuscode.options = status_options;
        self.add_attribute(statecode);
        self.add_attribute(statuscode);
        self.states = states;
    }

    /// Whether `statuscode` is a valid status reason of `statecode` for this table.
    pub fn valid_status(&self, statecode: i32, statuscode: i32) -> Result<(), String> {
        if self.states.is_empty() {
            return Err(format!("{} has no state", self.logical_name));
        }
        let Some(state) = self.state(statecode) else {
            let valid = self
                .states
                .iter()
                .map(|state| format!("{} ({})", state.value, state.label))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(format!(
                "{statecode} is not a statecode of {}; valid values: {valid}",
                self.logical_name
            ));
        };
        if state
            .statuses
            .iter()
            .any(|status| status.value == statuscode)
        {
            return Ok(());
        }
        let valid = state
            .statuses
            .iter()
            .map(|status| format!("{} ({})", status.value, status.label))
            .collect::<Vec<_>>()
            .join(", ");
        Err(format!(
            "{statuscode} is not a statuscode of {} in state {statecode} ({}); valid values: {valid}",
            self.logical_name, state.label
        ))
    }
}

/// All known tables, by logical name. Serialized as a list of tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<EntityMeta>", into = "Vec<EntityMeta>")]
pub struct Catalogue {
    entities: BTreeMap<String, EntityMeta>,
}

impl Catalogue {
    /// An empty catalogue.
    pub fn new() -> Self {
        Self::default()
    }

    /// The standard tables of DESIGN 5.1: account, contact, lead, systemuser, team,
    /// businessunit, task and opportunity.
    pub fn builtin() -> Self {
        let mut catalogue = Catalogue::new();
        for entity in builtin::entities() {
            catalogue.add_entity(entity);
        }
        catalogue
    }

    pub fn entity(&self, name: &str) -> Option<&EntityMeta> {
        self.entities.get(name)
    }

    pub fn entity_mut(&mut self, name: &str) -> Option<&mut EntityMeta> {
        self.entities.get_mut(name)
    }

    /// The entity whose Web API entity set is `set_name` (e.g. `accounts`).
    pub fn entity_by_set_name(&self, set_name: &str) -> Option<&EntityMeta> {
        self.entities
            .values()
            .find(|entity| entity.entity_set_name == set_name)
    }

    /// Logical names in alphabetical order.
    pub fn entity_names(&self) -> impl Iterator<Item = &str> {
        self.entities.keys().map(String::as_str)
    }

    pub fn entities(&self) -> impl Iterator<Item = &EntityMeta> {
        self.entities.values()
    }

    /// Adds a table, returning the table it replaces. Completes it first: the primary key
    /// column is added when missing, and the `statecode`/`statuscode` columns and options are
    /// derived from `states` when the table has states but no `statecode` options.
    pub fn add_entity(&mut self, mut entity: EntityMeta) -> Option<EntityMeta> {
        if entity.attribute(&entity.primary_id).is_none() {
            let primary_id =
                AttributeMeta::new(entity.primary_id.clone(), AttributeType::Uniqueidentifier)
                    .create_only();
            entity.attributes.insert(0, primary_id);
        }
        let statecode_has_options = entity
            .attribute("statecode")
            .is_some_and(|statecode| !statecode.options.is_empty());
        if !entity.states.is_empty() && !statecode_has_options {
            let states = std::mem::take(&mut entity.states);
            entity.set_states(states);
        }
        self.entities.insert(entity.logical_name.clone(), entity)
    }

    /// Adds every table of `other`, replacing tables of the same name.
    pub fn extend(&mut self, other: Catalogue) {
        for entity in other.entities.into_values() {
            self.add_entity(entity);
        }
    }
}

impl From<Vec<EntityMeta>> for Catalogue {
    fn from(entities: Vec<EntityMeta>) -> Self {
        let mut catalogue = Catalogue::new();
        for entity in entities {
            catalogue.add_entity(entity);
        }
        catalogue
    }
}

impl From<Catalogue> for Vec<EntityMeta> {
    fn from(catalogue: Catalogue) -> Self {
        catalogue.entities.into_values().collect()
    }
}

#[cfg(test)]
mod tests;
