//! `$batch` bodies (reference §3.3): requests as `application/http` parts of a
//! `multipart/mixed` body, no change sets (each request stands alone, so with
//! `Prefer: odata.continue-on-error` every record gets its own answer), and the
//! `batchresponse` read back into one answer per part, change-set responses flattened. Pure.

/// The most requests one `$batch` may hold.
pub(crate) const MAX_BATCH: usize = 1_000;

/// One request inside a `$batch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) method: &'static str,
    /// Absolute path, e.g. `/api/data/v9.2/accounts(<id>)`.
    pub(crate) path: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub(crate) body: Option<String>,
}

/// One answer inside a `batchresponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartAnswer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl PartAnswer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The body of a `$batch` request and its `Content-Type`.
pub(crate) fn build(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = format!("batch_{}", uuid::Uuid::new_v4().simple());
    let mut body = String::new();
    for (index, part) in parts.iter().enumerate() {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\n",
            index + 1
        ));
        body.push_str(&format!("{} {} HTTP/1.1\r\n", part.method, part.path));
        if part.body.is_some() {
            body.push_str("Content-Type: application/json; type=entry\r\n");
        }
        for (name, value) in &part.headers {
            body.push_str(&format!("{name}: {value}\r\n"));
        }
        body.push_str("\r\n");
        if let Some(json) = &part.body {
            body.push_str(json);
            body.push_str("\r\n");
        }
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/mixed; boundary={boundary}"),
        body.into_bytes(),
    )
}

/// The boundary parameter of a multipart `Content-Type`.
fn boundary_of(content_type: &str) -> Option<&str> {
    content_type.split(';').find_map(|parameter| {
        let (name, value) = parameter.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// The answers of a `batchresponse`, in order; change-set responses are flattened. An error
/// when the body is not a complete multipart body (a truncated body never yields fewer
/// answers silently: the closing delimiter must be there).
pub(crate) fn parse(content_type: &str, body: &[u8]) -> Result<Vec<PartAnswer>, String> {
    let boundary = boundary_of(content_type)
        .ok_or_else(|| format!("the $batch response is not multipart ({content_type})"))?;
    let text = std::str::from_utf8(body).map_err(|_| "the $batch response is not UTF-8")?;
    let mut answers = Vec::new();
    parse_into(boundary, text, &mut answers)?;
    Ok(answers)
}

fn parse_into(boundary: &str, text: &str, answers: &mut Vec<PartAnswer>) -> Result<(), String> {
    let delimiter = format!("--{boundary}");
    let closing = format!("--{boundary}--");
    if !text.contains(&closing) {
        return Err("the $batch response is cut short (no closing boundary)".to_string());
    }
    let before_close = &text[..text.find(&closing).unwrap_or(text.len())];
    for chunk in before_close.split(delimiter.as_str()).skip(1) {
        let chunk = chunk
            .strip_prefix("\r\n")
            .or_else(|| chunk.strip_prefix('\n'))
            .unwrap_or(chunk);
        let (headers, content) = split_head(chunk)
            .ok_or("a $batch response part has no blank line after its headers")?;
        let content_type = header_value(headers, "content-type").unwrap_or("");
        if content_type
            .to_ascii_lowercase()
            .starts_with("multipart/mixed")
        {
            let inner = boundary_of(content_type)
                .ok_or("a change-set response has no boundary")?
                .to_string();
            parse_into(&inner, content, answers)?;
            continue;
        }
        answers.push(parse_http(content)?);
    }
    Ok(())
}

/// Headers and the rest, split at the first blank line.
fn split_head(text: &str) -> Option<(&str, &str)> {
    if let Some(index) = text.find("\r\n\r\n") {
        return Some((&text[..index], &text[index + 4..]));
    }
    text.find("\n\n")
        .map(|index| (&text[..index], &text[index + 2..]))
}

fn header_value<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// `HTTP/1.1 204 No Content` + headers + body.
fn parse_http(content: &str) -> Result<PartAnswer, String> {
    let (head, body) = split_head(content).unwrap_or((content.trim_end(), ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("").trim();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("a $batch response part has no status line: `{status_line}`"))?;
    let headers = lines
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            Some((key.trim().to_string(), value.trim().to_string()))
        })
        .collect();
    let body = body.trim_end_matches(['\r', '\n']);
    Ok(PartAnswer {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    })
}
