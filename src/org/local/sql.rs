//! FetchXML → SQL for the local org (placeholder).
