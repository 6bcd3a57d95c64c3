//! `SpannedMap`: a YAML mapping that keeps its entries in file order with the position of each key.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_saphyr::Spanned;

/// A mapping whose keys keep their positions, in the order they were written.
/// Duplicate keys never reach it: the YAML parser rejects them.
#[derive(Debug, Clone, PartialEq)]
pub struct SpannedMap<V> {
    pub entries: Vec<(Spanned<String>, V)>,
}

impl<V> Default for SpannedMap<V> {
    fn default() -> Self {
        SpannedMap {
            entries: Vec::new(),
        }
    }
}

impl<V> SpannedMap<V> {
    pub fn iter(&self) -> impl Iterator<Item = (&Spanned<String>, &V)> {
        self.entries.iter().map(|(key, value)| (key, value))
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries
            .iter()
            .find(|(k, _)| k.value == key)
            .map(|(_, value)| value)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(key, _)| key.value.as_str())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SpannedMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = SpannedMap<V>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = access.next_entry::<Spanned<String>, V>()? {
                    entries.push(entry);
                }
                Ok(SpannedMap { entries })
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}
