//! Time zone names: `parse_timezone` accepts IANA names exactly as written and explains
//! everything else (wrong case, abbreviations, UTC offsets, bare city names).

use chrono_tz::{TZ_VARIANTS, Tz};

use crate::diagnostics::{Problem, did_you_mean};

/// Abbreviations people write instead of a zone name, with the region they most likely mean.
/// Some (`EST`, `CET`, `EST5EDT`, ...) are legacy IANA names, but they are rejected too: `EST`
/// is a fixed UTC-05:00 without daylight saving, which is not what "Eastern time" means.
const ABBREVIATIONS: [(&str, &str, &str); 47] = [
    ("EST", "America/New_York", "US Eastern time"),
    ("EDT", "America/New_York", "US Eastern time"),
    ("ET", "America/New_York", "US Eastern time"),
    ("EST5EDT", "America/New_York", "US Eastern time"),
    (
        "CST",
        "America/Chicago",
        "US Central time (`Asia/Shanghai` for China)",
    ),
    ("CDT", "America/Chicago", "US Central time"),
    ("CT", "America/Chicago", "US Central time"),
    ("CST6CDT", "America/Chicago", "US Central time"),
    (
        "MST",
        "America/Denver",
        "US Mountain time (`America/Phoenix` for Arizona)",
    ),
    ("MDT", "America/Denver", "US Mountain time"),
    ("MT", "America/Denver", "US Mountain time"),
    ("MST7MDT", "America/Denver", "US Mountain time"),
    ("PST", "America/Los_Angeles", "US Pacific time"),
    ("PDT", "America/Los_Angeles", "US Pacific time"),
    ("PT", "America/Los_Angeles", "US Pacific time"),
    ("PST8PDT", "America/Los_Angeles", "US Pacific time"),
    ("AKST", "America/Anchorage", "Alaska time"),
    ("AKDT", "America/Anchorage", "Alaska time"),
    ("HST", "Pacific/Honolulu", "Hawaii time"),
    ("BST", "Europe/London", "UK time"),
    (
        "IST",
        "Asia/Kolkata",
        "India time (`Europe/Dublin` for Ireland)",
    ),
    (
        "CET",
        "Europe/Berlin",
        "Central European time (or `Europe/Paris`, `Europe/Madrid`, ...)",
    ),
    (
        "CEST",
        "Europe/Berlin",
        "Central European time (or `Europe/Paris`, `Europe/Madrid`, ...)",
    ),
    ("MET", "Europe/Berlin", "Central European time"),
    ("MEST", "Europe/Berlin", "Central European time"),
    (
        "EET",
        "Europe/Athens",
        "Eastern European time (or `Europe/Helsinki`, ...)",
    ),
    (
        "EEST",
        "Europe/Athens",
        "Eastern European time (or `Europe/Helsinki`, ...)",
    ),
    ("WET", "Europe/Lisbon", "Western European time"),
    ("WEST", "Europe/Lisbon", "Western European time"),
    ("MSK", "Europe/Moscow", "Moscow time"),
    ("JST", "Asia/Tokyo", "Japan time"),
    ("KST", "Asia/Seoul", "Korea time"),
    ("HKT", "Asia/Hong_Kong", "Hong Kong time"),
    ("SGT", "Asia/Singapore", "Singapore time"),
    ("PHT", "Asia/Manila", "Philippine time"),
    (
        "AEST",
        "Australia/Sydney",
        "Australian Eastern time (`Australia/Brisbane` for Queensland)",
    ),
    ("AEDT", "Australia/Sydney", "Australian Eastern time"),
    (
        "ACST",
        "Australia/Adelaide",
        "Australian Central time (`Australia/Darwin` for the Northern Territory)",
    ),
    ("ACDT", "Australia/Adelaide", "Australian Central time"),
    ("AWST", "Australia/Perth", "Australian Western time"),
    ("NZST", "Pacific/Auckland", "New Zealand time"),
    ("NZDT", "Pacific/Auckland", "New Zealand time"),
    ("BRT", "America/Sao_Paulo", "Brasília time"),
    ("ART", "America/Argentina/Buenos_Aires", "Argentina time"),
    ("SAST", "Africa/Johannesburg", "South Africa time"),
    ("WAT", "Africa/Lagos", "West Africa time"),
    ("EAT", "Africa/Nairobi", "East Africa time"),
];

const EXAMPLES: &str =
    "use an IANA time zone name such as `Europe/London`, `America/New_York` or `UTC`";

/// Parses an IANA time zone name, exactly as the database spells it.
///
/// Problems (code `timezone-unknown`) cover the whole name and suggest a fix: the right case
/// (`europe/london` → `Europe/London`), a region for an abbreviation (`EST` →
/// `America/New_York`), an `Etc/GMT` zone for a UTC offset, the zone of a bare city name
/// (`Paris` → `Europe/Paris`), or the closest name.
pub fn parse_timezone(name: &str) -> Result<Tz, Problem> {
    let problem = |message: String, help: String| {
        Problem::error("timezone-unknown", 0, name.len(), message).with_help(help)
    };
    let trimmed = name.trim();
    if let Some((abbreviation, region, meaning)) = ABBREVIATIONS
        .iter()
        .find(|(abbreviation, _, _)| abbreviation.eq_ignore_ascii_case(trimmed))
    {
        return Err(problem(
            format!("time zone `{name}` is an abbreviation, not a region"),
            format!(
                "did you mean `{region}`? it is {meaning} and follows its daylight-saving rules; `{abbreviation}` does not"
            ),
        ));
    }
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    let names = || TZ_VARIANTS.iter().map(|tz| tz.name());
    let normalized = trimmed.replace(' ', "_");
    if let Some(exact) = names().find(|candidate| candidate.eq_ignore_ascii_case(&normalized)) {
        return Err(problem(
            format!("unknown time zone `{name}`"),
            format!("did you mean `{exact}`? time zone names are case-sensitive"),
        ));
    }
    if let Some(help) = offset_help(trimmed) {
        return Err(problem(
            format!("time zone `{name}` is a UTC offset, not a region"),
            help,
        ));
    }
    let city = names().find(|candidate| {
        candidate
            .rsplit('/')
            .next()
            .is_some_and(|last| candidate.contains('/') && last.eq_ignore_ascii_case(&normalized))
    });
    let suggestion = city.or_else(|| did_you_mean(trimmed, names()));
    let help = match suggestion {
        Some(candidate) => format!("did you mean `{candidate}`?"),
        None => EXAMPLES.to_owned(),
    };
    Err(problem(format!("unknown time zone `{name}`"), help))
}

/// Help for `UTC+2`, `GMT-05:00`, `+01:00`: the `Etc/GMT` zone (whose sign is inverted), or a
/// region name when daylight saving matters.
fn offset_help(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let rest = ["UTC", "GMT", ""]
        .iter()
        .find_map(|prefix| upper.strip_prefix(prefix))?;
    let (sign, digits) = match rest.as_bytes().first()? {
        b'+' => ('+', &rest[1..]),
        b'-' => ('-', &rest[1..]),
        _ => return None,
    };
    let (hours, minutes) = digits.split_once(':').unwrap_or((digits, "00"));
    let hours = hours.parse::<u32>().ok()?;
    let minutes = minutes.parse::<u32>().ok()?;
    let region = "a region name such as `Europe/Paris` follows daylight saving";
    if minutes != 0 || hours > 14 {
        return Some(format!("{region}; {EXAMPLES}"));
    }
    if hours == 0 {
        return Some(format!("use `UTC` for UTC+00:00; {region}"));
    }
    let inverted = if sign == '+' { '-' } else { '+' };
    Some(format!(
        "{region}; for a fixed UTC{sign}{hours:02}:00 use `Etc/GMT{inverted}{hours}` (the Etc sign is inverted)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problem for `name`: (message, help).
    fn problem(name: &str) -> (String, String) {
        let problem = parse_timezone(name).expect_err(name);
        assert_eq!(
            (problem.code, problem.offset, problem.len),
            ("timezone-unknown", 0, name.len())
        );
        (problem.message, problem.help.unwrap_or_default())
    }

    #[test]
    fn accepts_iana_names() {
        assert_eq!(
            parse_timezone("Europe/London"),
            Ok(chrono_tz::Europe::London)
        );
        assert_eq!(
            parse_timezone("America/New_York"),
            Ok(chrono_tz::America::New_York)
        );
        assert_eq!(parse_timezone("UTC"), Ok(chrono_tz::UTC));
        assert_eq!(parse_timezone("Etc/GMT-1"), Ok(chrono_tz::Etc::GMTMinus1));
        assert_eq!(
            parse_timezone("America/Argentina/Buenos_Aires"),
            Ok(chrono_tz::America::Argentina::Buenos_Aires)
        );
    }

    #[test]
    fn wrong_case_suggests_the_spelling() {
        let (message, help) = problem("europe/london");
        assert_eq!(message, "unknown time zone `europe/london`");
        assert_eq!(
            help,
            "did you mean `Europe/London`? time zone names are case-sensitive"
        );
        assert!(
            problem("America/New York")
                .1
                .starts_with("did you mean `America/New_York`?")
        );
        assert!(problem("utc").1.starts_with("did you mean `UTC`?"));
    }

    #[test]
    fn abbreviations_suggest_a_region() {
        let (message, help) = problem("EST");
        assert_eq!(message, "time zone `EST` is an abbreviation, not a region");
        assert!(
            help.starts_with("did you mean `America/New_York`?"),
            "{help}"
        );
        assert!(
            problem("PDT")
                .1
                .starts_with("did you mean `America/Los_Angeles`?")
        );
        assert!(
            problem("bst")
                .1
                .starts_with("did you mean `Europe/London`?")
        );
        assert!(
            problem("CET")
                .1
                .starts_with("did you mean `Europe/Berlin`?")
        );
    }

    #[test]
    fn offsets_suggest_etc_zones() {
        let (message, help) = problem("UTC+2");
        assert_eq!(message, "time zone `UTC+2` is a UTC offset, not a region");
        assert!(help.contains("`Etc/GMT-2`"), "{help}");
        assert!(problem("GMT-05:00").1.contains("`Etc/GMT+5`"));
        assert!(problem("+00:00").1.contains("use `UTC`"));
    }

    #[test]
    fn city_names_and_typos() {
        assert_eq!(problem("London").1, "did you mean `Europe/London`?");
        assert_eq!(problem("new york").1, "did you mean `America/New_York`?");
        assert_eq!(problem("Europe/Londn").1, "did you mean `Europe/London`?");
        assert_eq!(problem("Mars/Olympus_Mons").1, EXAMPLES);
        assert_eq!(problem("").1, EXAMPLES);
    }
}
