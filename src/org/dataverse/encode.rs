//! The encodings of the Web API that are easy to get subtly wrong: form bodies, and the
//! `<fetch>` element rewritten for the next page (reference §2.3: the cookie, URL-decoded
//! twice by `odata::parse_paging_cookie_annotation`, goes XML-encoded into the `paging-cookie`
//! attribute; the whole FetchXML is then URL-encoded again). Pure.

use crate::org::odata::url_encode;

/// An `application/x-www-form-urlencoded` body.
pub(crate) fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", url_encode(name), url_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// What the root `<fetch>` element says about the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchShape {
    /// The `<entity name>`: its entity set is the request's path.
    pub(crate) entity: String,
}

/// The FetchXML with `page`, `count` and `paging-cookie` set on `<fetch>` (each only when
/// `Some`; an existing attribute of the same name is replaced), and the query's entity.
/// The rest of the text is kept byte for byte.
pub(crate) fn with_paging(
    fetchxml: &str,
    page: Option<u32>,
    count: Option<u32>,
    cookie: Option<&str>,
) -> Result<(String, FetchShape), String> {
    let document = roxmltree::Document::parse(fetchxml)
        .map_err(|error| format!("the FetchXML is not well-formed: {error}"))?;
    let fetch = document.root_element();
    if fetch.tag_name().name() != "fetch" {
        return Err("the FetchXML's root element is not <fetch>".to_string());
    }
    let entity = fetch
        .children()
        .find(|child| child.is_element() && child.tag_name().name() == "entity")
        .and_then(|entity| entity.attribute("name"))
        .ok_or("the FetchXML has no <entity name=\"...\">")?
        .to_string();
    let overrides: Vec<(&str, String)> = [
        page.map(|page| ("page", page.to_string())),
        count.map(|count| ("count", count.to_string())),
        cookie.map(|cookie| ("paging-cookie", cookie.to_string())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if overrides.is_empty() {
        return Ok((fetchxml.to_string(), FetchShape { entity }));
    }
    let range = fetch.range();
    let end_of_start_tag = start_tag_end(&fetchxml[range.start..])
        .map(|end| range.start + end)
        .ok_or("the <fetch> start tag is not closed")?;
    let self_closing = fetchxml[..end_of_start_tag].ends_with("/>");
    let mut tag = String::from("<fetch");
    for attribute in fetch.attributes() {
        if overrides.iter().any(|(name, _)| *name == attribute.name()) {
            continue;
        }
        tag.push_str(&format!(
            " {}=\"{}\"",
            attribute.name(),
            crate::org::odata::xml_escape(attribute.value())
        ));
    }
    for (name, value) in &overrides {
        tag.push_str(&format!(
            " {name}=\"{}\"",
            crate::org::odata::xml_escape(value)
        ));
    }
    tag.push_str(if self_closing { "/>" } else { ">" });
    let rewritten = format!(
        "{}{tag}{}",
        &fetchxml[..range.start],
        &fetchxml[end_of_start_tag..]
    );
    Ok((rewritten, FetchShape { entity }))
}

/// The byte just after the `>` that closes the start tag at the beginning of `text`, skipping
/// `>` inside quoted attribute values.
fn start_tag_end(text: &str) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (index, byte) in text.bytes().enumerate() {
        match (quote, byte) {
            (Some(open), _) if byte == open => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(byte),
            (None, b'>') => return Some(index + 1),
            (None, _) => {}
        }
    }
    None
}
