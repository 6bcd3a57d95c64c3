//! One `condition` → one SQL predicate: every operator of DESIGN 5.3 except the fiscal ones,
//! with the values converted to the column's stored type and bound as parameters.
//! Negative operators also match nulls (reference §4.3): `(NOT p OR column IS NULL)`.

use rusqlite::types::Value;

use crate::fetchxml::{Condition, Operator, ValueNode, normalize_guid};
use crate::metadata::{AttributeMeta, AttributeType};
use crate::org::OrgError;
use crate::org::local::quote;
use crate::org::local::sql::{Compiler, Scope, collate, dates, errors};

/// The hierarchy operators' recursion limit (reference §3.5).
const HIERARCHY_DEPTH: u32 = 100;

/// `eq-userlanguage`: the local org speaks English only.
const ENGLISH: i64 = 1033;

impl<'a> Compiler<'a> {
    pub(super) fn condition(
        &mut self,
        scope: &Scope<'a>,
        condition: &Condition,
    ) -> Result<String, OrgError> {
        let scope = match &condition.entityname {
            Some(entityname) => self.reference(&entityname.value)?,
            None => scope.clone(),
        };
        let attribute = scope.attribute(condition.attribute.as_str())?;
        let column = scope.column(&attribute.logical_name);
        let operator = condition.operator.value;
        let info = operator.info();
        if info.fiscal {
            return Err(errors::not_supported(&format!(
                "operator `{operator}` needs a fiscal calendar, which the local org doesn't have"
            )));
        }
        let negated = info.matches_null;
        let text = attribute.kind.is_string();
        let lhs = collate(&column, text);
        let multi = attribute.kind == AttributeType::MultiSelectPicklist;
        let sql = match operator {
            Operator::Eq | Operator::Ne | Operator::Neq if multi => {
                let values = self.values(attribute, &condition.values)?;
                self.contains(&column, &values, negated)
            }
            Operator::In | Operator::NotIn if multi => {
                let values = self.values(attribute, &condition.values)?;
                self.contains(&column, &values, negated)
            }
            Operator::ContainValues | Operator::NotContainValues => {
                let values = self.values(attribute, &condition.values)?;
                self.contains(&column, &values, negated)
            }
            Operator::Eq
            | Operator::Ne
            | Operator::Neq
            | Operator::Gt
            | Operator::Ge
            | Operator::Lt
            | Operator::Le => {
                let rhs = match &condition.valueof {
                    Some(valueof) => self.valueof(&scope, &valueof.value)?,
                    None => {
                        let value = single(condition)?;
                        self.value(attribute, value)?
                    }
                };
                let symbol = match operator {
                    Operator::Eq => "=",
                    Operator::Ne | Operator::Neq => "<>",
                    Operator::Gt => ">",
                    Operator::Ge => ">=",
                    Operator::Lt => "<",
                    _ => "<=",
                };
                let predicate = format!("{lhs} {symbol} {rhs}");
                or_null(predicate, &column, negated)
            }
            Operator::In | Operator::NotIn => {
                let values = self.values(attribute, &condition.values)?;
                let keyword = if negated { "NOT IN" } else { "IN" };
                or_null(
                    format!("{lhs} {keyword} ({})", values.join(", ")),
                    &column,
                    negated,
                )
            }
            Operator::Between | Operator::NotBetween => {
                let values = self.values(attribute, &condition.values)?;
                let [low, high] = values.as_slice() else {
                    return Err(errors::invalid_argument(&format!(
                        "operator `{operator}` takes two values, not {}",
                        values.len()
                    )));
                };
                let keyword = if negated { "NOT BETWEEN" } else { "BETWEEN" };
                or_null(
                    format!("{lhs} {keyword} {low} AND {high}"),
                    &column,
                    negated,
                )
            }
            Operator::Null => format!("{column} IS NULL"),
            Operator::NotNull => format!("{column} IS NOT NULL"),
            Operator::Like
            | Operator::NotLike
            | Operator::BeginsWith
            | Operator::NotBeginWith
            | Operator::EndsWith
            | Operator::NotEndWith => {
                let value = single(condition)?;
                let pattern = match operator {
                    Operator::BeginsWith | Operator::NotBeginWith => format!("{value}%"),
                    Operator::EndsWith | Operator::NotEndWith => format!("%{value}"),
                    _ => value.to_owned(),
                };
                let prefix = literal_prefix(&pattern);
                let pattern = self.bind(Value::Text(pattern));
                let predicate = format!("ff_like({column}, {pattern})");
                if negated {
                    format!("(NOT {predicate} OR {column} IS NULL)")
                } else if prefix.is_empty() {
                    predicate
                } else {
                    // The range lets an index on the column find the candidates; `ff_like`
                    // decides. Under `ff_ci`, strings starting with the prefix sort between
                    // the prefix and the prefix followed by the highest code point.
                    let low = self.bind(Value::Text(prefix.clone()));
                    let high = self.bind(Value::Text(format!("{prefix}{}", char::MAX)));
                    format!("({lhs} >= {low} AND {lhs} < {high} AND {predicate})")
                }
            }
            Operator::On | Operator::OnOrBefore | Operator::OnOrAfter => {
                let value = single(condition)?;
                let day = dates::day(value)
                    .ok_or_else(|| errors::invalid_value(&format!("`{value}` is not a date")))?;
                let start = dates::midnight(day);
                let end = day.succ_opt().map_or_else(
                    || "'9999-12-31T23:59:60Z'".to_owned(),
                    |next| self.bind(Value::Text(dates::format(dates::midnight(next)))),
                );
                let start = match operator {
                    Operator::OnOrBefore => String::new(),
                    _ => self.bind(Value::Text(dates::format(start))),
                };
                match operator {
                    Operator::On => format!("({column} >= {start} AND {column} < {end})"),
                    Operator::OnOrBefore => format!("{column} < {end}"),
                    _ => format!("{column} >= {start}"),
                }
            }
            Operator::EqUserId | Operator::NeUserId => {
                let caller = self.caller();
                self.user_match(&column, caller, negated)
            }
            Operator::EqBusinessId | Operator::NeBusinessId => {
                let business_unit = self.business_unit_of_caller();
                self.user_match(&column, business_unit, negated)
            }
            Operator::EqUserTeams => self.teams(&column).unwrap_or_else(|| "0".to_owned()),
            Operator::EqUserOrUserTeams
            | Operator::EqUserOrUserHierarchy
            | Operator::EqUserOrUserHierarchyAndTeams => {
                let caller = self.caller();
                let user = self.user_match(&column, caller, false);
                let with_teams = operator != Operator::EqUserOrUserHierarchy;
                match with_teams.then(|| self.teams(&column)).flatten() {
                    Some(teams) => format!("({user} OR {teams})"),
                    None => user,
                }
            }
            Operator::EqUserLanguage => {
                let language = self.bind(Value::Integer(ENGLISH));
                format!("{column} = {language}")
            }
            Operator::Under
            | Operator::EqOrUnder
            | Operator::NotUnder
            | Operator::Above
            | Operator::EqOrAbove => self.hierarchy(&scope, attribute, operator, condition)?,
            _ => self.relative_date(&column, operator, condition)?,
        };
        Ok(sql)
    }

    fn caller(&mut self) -> Option<String> {
        self.environment
            .caller
            .map(|caller| self.bind(Value::Text(caller.to_owned())))
    }

    /// `(SELECT businessunitid FROM systemuser WHERE systemuserid = caller)`, when both exist.
    fn business_unit_of_caller(&mut self) -> Option<String> {
        let user = self.environment.catalogue.entity("systemuser")?;
        user.attribute("businessunitid")?;
        let caller = self.caller()?;
        Some(format!(
            "(SELECT u.\"businessunitid\" FROM {} u WHERE u.{} = {caller})",
            quote(&user.logical_name),
            quote(&user.primary_id)
        ))
    }

    /// Teams of the caller, from a `teammembership` table when the catalogue has one.
    fn teams(&mut self, column: &str) -> Option<String> {
        let membership = self.environment.catalogue.entity("teammembership")?;
        membership.attribute("teamid")?;
        membership.attribute("systemuserid")?;
        let caller = self.caller()?;
        Some(format!(
            "{column} IN (SELECT m.\"teamid\" FROM {} m WHERE m.\"systemuserid\" = {caller})",
            quote(&membership.logical_name)
        ))
    }

    /// `column = target` (or its negation, matching nulls); without a target nothing is equal.
    fn user_match(&self, column: &str, target: Option<String>, negated: bool) -> String {
        match (target, negated) {
            (Some(target), false) => format!("{column} = {target}"),
            (Some(target), true) => {
                format!("({column} IS NULL OR {column} <> COALESCE({target}, ''))")
            }
            (None, false) => "0".to_owned(),
            (None, true) => "1".to_owned(),
        }
    }

    /// `EXISTS` one of the values in the JSON array of a multi-select column.
    fn contains(&self, column: &str, values: &[String], negated: bool) -> String {
        let exists = format!(
            "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({column}) THEN {column} ELSE '[]' END) AS j WHERE j.value IN ({}))",
            values.join(", ")
        );
        if negated {
            format!("({column} IS NULL OR NOT {exists})")
        } else {
            exists
        }
    }

    /// The other column of a `valueof`: `column` of the same table or `alias.column`.
    fn valueof(&self, scope: &Scope<'a>, valueof: &str) -> Result<String, OrgError> {
        let (target, name) = match valueof.split_once('.') {
            Some((alias, name)) => (self.reference(alias)?, name),
            None => (scope.clone(), valueof),
        };
        let attribute = target.attribute(name)?;
        Ok(collate(
            &target.column(&attribute.logical_name),
            attribute.kind.is_string(),
        ))
    }

    fn values(
        &mut self,
        attribute: &AttributeMeta,
        values: &[ValueNode],
    ) -> Result<Vec<String>, OrgError> {
        values
            .iter()
            .map(|value| self.value(attribute, &value.value))
            .collect()
    }

    /// Converts a literal to the column's stored type and binds it.
    fn value(&mut self, attribute: &AttributeMeta, text: &str) -> Result<String, OrgError> {
        let value = convert(attribute, text)?;
        Ok(self.bind(value))
    }

    fn hierarchy(
        &mut self,
        scope: &Scope<'a>,
        attribute: &AttributeMeta,
        operator: Operator,
        condition: &Condition,
    ) -> Result<String, OrgError> {
        let meta = scope.meta;
        let Some(parent) = meta.hierarchy_attribute() else {
            return Err(errors::error(
                "QueryBuilderInvalidConditionOperator",
                errors::QUERY_BUILDER_INVALID_CONDITION_OPERATOR,
                "Unsupported condition operator.",
                &format!(
                    "`{}` has no hierarchical relationship for operator `{operator}`",
                    meta.logical_name
                ),
            ));
        };
        let value = single(condition)?;
        let anchor = convert(attribute, value)?;
        let anchor = self.bind(anchor);
        let column = scope.column(&attribute.logical_name);
        let table = quote(&meta.logical_name);
        let id = quote(&meta.primary_id);
        let parent = quote(&parent.logical_name);
        let below = format!(
            "WITH RECURSIVE h(id, depth) AS (SELECT c.{id}, 1 FROM {table} c WHERE c.{parent} = {anchor} \
             UNION SELECT c.{id}, h.depth + 1 FROM {table} c JOIN h ON c.{parent} = h.id WHERE h.depth < {HIERARCHY_DEPTH}) \
             SELECT id FROM h"
        );
        let above = format!(
            "WITH RECURSIVE h(id, depth) AS (SELECT c.{parent}, 1 FROM {table} c WHERE c.{id} = {anchor} \
             UNION SELECT c.{parent}, h.depth + 1 FROM {table} c JOIN h ON c.{id} = h.id WHERE h.depth < {HIERARCHY_DEPTH}) \
             SELECT id FROM h WHERE id IS NOT NULL"
        );
        Ok(match operator {
            Operator::Under => format!("{column} IN ({below})"),
            Operator::EqOrUnder => format!("({column} = {anchor} OR {column} IN ({below}))"),
            Operator::NotUnder => format!("({column} IS NULL OR {column} NOT IN ({below}))"),
            Operator::Above => format!("{column} IN ({above})"),
            _ => format!("({column} = {anchor} OR {column} IN ({above}))"),
        })
    }

    fn relative_date(
        &mut self,
        column: &str,
        operator: Operator,
        condition: &Condition,
    ) -> Result<String, OrgError> {
        let x = match condition.values.first() {
            Some(value) => value.value.trim().parse::<i64>().map_err(|_| {
                errors::invalid_value(&format!(
                    "operator `{operator}` needs a positive integer, not `{}`",
                    value.value
                ))
            })?,
            None => 1,
        };
        let window = dates::window(operator, x, self.environment.now).ok_or_else(|| {
            errors::error(
                "QueryBuilderInvalidConditionOperator",
                errors::QUERY_BUILDER_INVALID_CONDITION_OPERATOR,
                "Unsupported condition operator.",
                &format!("operator `{operator}`"),
            )
        })?;
        if window.empty {
            return Ok("0".to_owned());
        }
        let mut parts = vec![format!("{column} IS NOT NULL")];
        if let Some(start) = window.start {
            let start = self.bind(Value::Text(dates::format(start)));
            parts.push(format!("{column} >= {start}"));
        }
        if let Some(end) = window.end {
            let end = self.bind(Value::Text(dates::format(end)));
            let symbol = if window.end_inclusive { "<=" } else { "<" };
            parts.push(format!("{column} {symbol} {end}"));
        }
        Ok(format!("({})", parts.join(" AND ")))
    }
}

/// The literal text a LIKE pattern starts with (up to its first wildcard or bracket).
fn literal_prefix(pattern: &str) -> String {
    pattern
        .chars()
        .take_while(|c| !matches!(c, '%' | '_' | '['))
        .collect()
}

/// `(predicate OR column IS NULL)` for negative operators.
fn or_null(predicate: String, column: &str, negated: bool) -> String {
    if negated {
        format!("({predicate} OR {column} IS NULL)")
    } else {
        predicate
    }
}

fn single(condition: &Condition) -> Result<&str, OrgError> {
    match condition.values.as_slice() {
        [value] => Ok(&value.value),
        values => Err(errors::invalid_argument(&format!(
            "operator `{}` requires 1 value, not {}",
            condition.operator.value,
            values.len()
        ))),
    }
}

/// A literal in the stored form of the column's type (storage conventions of `org::local`).
pub(crate) fn convert(attribute: &AttributeMeta, text: &str) -> Result<Value, OrgError> {
    let trimmed = text.trim();
    let invalid = |expected: &str| {
        errors::invalid_value(&format!(
            "`{text}` is not {expected} for `{}` ({})",
            attribute.logical_name, attribute.kind
        ))
    };
    Ok(match attribute.kind {
        AttributeType::String | AttributeType::Memo => Value::Text(text.to_owned()),
        AttributeType::Integer
        | AttributeType::BigInt
        | AttributeType::Picklist
        | AttributeType::State
        | AttributeType::Status
        | AttributeType::MultiSelectPicklist => Value::Integer(
            trimmed
                .parse::<i64>()
                .map_err(|_| invalid("a whole number"))?,
        ),
        AttributeType::Decimal | AttributeType::Double | AttributeType::Money => {
            match trimmed.parse::<f64>() {
                Ok(number) if number.is_finite() => Value::Real(number),
                _ => return Err(invalid("a number")),
            }
        }
        AttributeType::Boolean => match trimmed {
            "1" | "true" => Value::Integer(1),
            "0" | "false" => Value::Integer(0),
            _ => return Err(invalid("a boolean (1, 0, true, false)")),
        },
        AttributeType::DateTime => Value::Text(dates::format(
            dates::parse(trimmed).ok_or_else(|| invalid("a date"))?,
        )),
        AttributeType::Uniqueidentifier
        | AttributeType::Lookup
        | AttributeType::Owner
        | AttributeType::Customer => {
            Value::Text(normalize_guid(trimmed).ok_or_else(|| invalid("a GUID"))?)
        }
    })
}
