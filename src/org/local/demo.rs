//! Deterministic demo data for the local org: business units, system users, teams, and
//! `accounts` accounts with proportional contacts, leads, tasks and opportunities.
//!
//! Same size, same rows: every value comes from a small seeded PRNG (SplitMix64) keyed by the
//! entity and the row's index, and dates are spread over the three years before a fixed epoch
//! ([`EPOCH`]), never the wall clock. Ids are random-looking version-4 GUIDs from the same
//! generator, except the ones the example workflows name, which are fixed:
//! - system users `5e000000-0000-4000-8000-0000000000NN` (user 1 to 99; later users
//!   `5e000000-0001-4000-8000-…`); user 7 is disabled and owns open leads (lead-reassignment);
//! - teams `5e000000-0000-4000-8000-0000000001NN` (team 101 is "West Sales");
//! - business units `5e000000-0000-4000-8000-0000000002NN` (201 is the root).
//!
//! Every user belongs to one team (and users 1 to 10 also to "Key Accounts") through
//! `teammembership`, when the catalogue has that table.
//!
//! About 10% of accounts are in the `West` territory (`address1_stateorprovince`), 2% have an
//! `ACME-` account number, 90% are active.
//!
//! Speed (a million accounts within a minute): one transaction, secondary indexes dropped before
//! and built after the load, rows inserted in primary-key order (ids are generated first and
//! sorted), prepared statements with raw binds, and reused text buffers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rusqlite::types::Null;
use rusqlite::{Connection, Statement, ToSql};

use crate::metadata::Catalogue;
use crate::org::OrgError;
use crate::org::local::rows::write_guid;
use crate::org::local::{LocalOrg, schema, sqlite};

/// How much demo data to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSize {
    /// Accounts; contacts, leads, tasks, opportunities and users follow in proportion.
    pub accounts: usize,
}

/// What `populate` created.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DemoReport {
    /// Rows created, all entities together.
    pub rows: usize,
    /// Rows created per entity.
    pub entities: BTreeMap<String, usize>,
    pub elapsed: Duration,
}

/// The fixed "now" of the demo data: 2026-11-01T00:00:00Z. Dates lie in the three years before.
pub(crate) const EPOCH: i64 = 1_793_491_200;
const THREE_YEARS: u64 = 3 * 365 * 86_400;
const SEED: u64 = 0x00f3_7c4f_1000_0001;

/// Accounts beyond this are refused (the ids and counters are 32-bit).
const MAX_ACCOUNTS: usize = 10_000_000;

const REGIONS: [&str; 4] = ["West", "East", "Central", "South"];
const TEAMS: [&str; 8] = [
    "West Sales",
    "East Sales",
    "Central Sales",
    "South Sales",
    "Key Accounts",
    "Customer Success",
    "Inside Sales",
    "Partner Channel",
];

/// Fills an empty org with demo data in one transaction.
pub(crate) fn populate(org: &LocalOrg, size: DemoSize) -> Result<DemoReport, OrgError> {
    let started = Instant::now();
    if size.accounts > MAX_ACCOUNTS {
        return Err(demo_error(format!(
            "at most {MAX_ACCOUNTS} demo accounts, not {}",
            size.accounts
        )));
    }
    check_catalogue(org.catalogue())?;
    let mut connection = org.connection();
    let existing: i64 = connection
        .query_row(
            "SELECT (SELECT count(*) FROM systemuser) + (SELECT count(*) FROM account)",
            [],
            |row| row.get(0),
        )
        .map_err(sqlite)?;
    if existing > 0 {
        return Err(demo_error(
            "demo data goes into an empty org; this one already has users or accounts".into(),
        ));
    }
    let journal: String = connection
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .map_err(sqlite)?;
    let wal = journal.eq_ignore_ascii_case("wal");
    // A rollback journal writes a fresh table's pages once; WAL would write them twice.
    if wal {
        set_journal(&connection, "DELETE")?;
    }
    connection
        .execute_batch("PRAGMA cache_size = -262144; PRAGMA threads = 2;")
        .map_err(sqlite)?;
    let result = (|| {
        let transaction = connection.transaction().map_err(sqlite)?;
        let entities = ["account", "contact", "lead", "task", "opportunity"];
        for entity in entities {
            if let Some(meta) = org.catalogue().entity(entity) {
                for sql in schema::drop_index_sql(meta) {
                    transaction.execute_batch(&sql).map_err(sqlite)?;
                }
            }
        }
        let memberships = org
            .catalogue()
            .entity("teammembership")
            .is_some_and(|meta| {
                ["systemuserid", "teamid"]
                    .iter()
                    .all(|column| meta.attribute(column).is_some())
            });
        let counts = Generator::new(size.accounts, memberships).run(&transaction)?;
        for entity in entities {
            if let Some(meta) = org.catalogue().entity(entity) {
                for sql in schema::index_sql(meta) {
                    transaction.execute_batch(&sql).map_err(sqlite)?;
                }
            }
        }
        // Full statistics (sampled ones read only the first index entries and take 90%-active
        // `statecode` for a selective column): the planner then pages by primary key instead
        // of sorting every active row.
        transaction.execute_batch("ANALYZE").map_err(sqlite)?;
        transaction.commit().map_err(sqlite)?;
        Ok(counts)
    })();
    let restored = connection
        .execute_batch("PRAGMA cache_size = -32768; PRAGMA threads = 0;")
        .map_err(sqlite);
    if wal {
        set_journal(&connection, "WAL")?;
    }
    let counts = result?;
    restored?;
    let rows = counts.values().sum();
    Ok(DemoReport {
        rows,
        entities: counts,
        elapsed: started.elapsed(),
    })
}

fn set_journal(connection: &Connection, mode: &str) -> Result<(), OrgError> {
    connection
        .pragma_update_and_check(None, "journal_mode", mode, |row| row.get::<_, String>(0))
        .map(drop)
        .map_err(sqlite)
}

fn demo_error(message: String) -> OrgError {
    OrgError::new("DemoData", -1, message)
}

/// The columns the generator writes; a custom catalogue that lacks one cannot hold demo data.
const COLUMNS: &[(&str, &[&str])] = &[
    (
        "businessunit",
        &[
            "businessunitid",
            "name",
            "parentbusinessunitid",
            "createdon",
            "modifiedon",
        ],
    ),
    (
        "systemuser",
        &[
            "systemuserid",
            "firstname",
            "lastname",
            "fullname",
            "internalemailaddress",
            "title",
            "isdisabled",
            "businessunitid",
            "createdon",
            "modifiedon",
        ],
    ),
    (
        "team",
        &[
            "teamid",
            "name",
            "businessunitid",
            "createdon",
            "modifiedon",
        ],
    ),
    (
        "account",
        &[
            "accountid",
            "name",
            "accountnumber",
            "numberofemployees",
            "revenue",
            "industrycode",
            "statecode",
            "statuscode",
            "creditonhold",
            "createdon",
            "modifiedon",
            "owningbusinessunit",
            "address1_city",
            "address1_stateorprovince",
            "description",
            "parentaccountid",
            "primarycontactid",
            "ownerid",
            "ownerid@target",
        ],
    ),
    (
        "contact",
        &[
            "contactid",
            "firstname",
            "lastname",
            "fullname",
            "emailaddress1",
            "jobtitle",
            "annualincome",
            "numberofchildren",
            "parentcustomerid",
            "parentcustomerid@target",
            "statecode",
            "statuscode",
            "gendercode",
            "donotemail",
            "createdon",
            "modifiedon",
            "owningbusinessunit",
            "ownerid",
            "ownerid@target",
        ],
    ),
    (
        "lead",
        &[
            "leadid",
            "subject",
            "firstname",
            "lastname",
            "fullname",
            "companyname",
            "estimatedvalue",
            "budgetamount",
            "leadqualitycode",
            "statecode",
            "statuscode",
            "address1_stateorprovince",
            "description",
            "createdon",
            "modifiedon",
            "owningbusinessunit",
            "parentaccountid",
            "ownerid",
            "ownerid@target",
        ],
    ),
    (
        "task",
        &[
            "activityid",
            "subject",
            "description",
            "regardingobjectid",
            "regardingobjectid@target",
            "scheduledend",
            "statecode",
            "statuscode",
            "ownerid",
            "ownerid@target",
            "createdon",
            "modifiedon",
            "owningbusinessunit",
        ],
    ),
    (
        "opportunity",
        &[
            "opportunityid",
            "name",
            "estimatedvalue",
            "actualvalue",
            "estimatedclosedate",
            "closeprobability",
            "parentaccountid",
            "parentcontactid",
            "customerid",
            "customerid@target",
            "statecode",
            "statuscode",
            "ownerid",
            "ownerid@target",
            "createdon",
            "modifiedon",
            "owningbusinessunit",
            "description",
        ],
    ),
];

fn check_catalogue(catalogue: &Catalogue) -> Result<(), OrgError> {
    for (entity, columns) in COLUMNS {
        let Some(meta) = catalogue.entity(entity) else {
            return Err(demo_error(format!(
                "demo data needs the built-in table `{entity}`, which this org lacks"
            )));
        };
        for column in *columns {
            let name = column.strip_suffix("@target").unwrap_or(column);
            if meta.attribute(name).is_none() {
                return Err(demo_error(format!(
                    "demo data needs the built-in column `{entity}.{name}`, which this org lacks"
                )));
            }
        }
    }
    Ok(())
}

fn insert_statement<'c>(
    connection: &'c Connection,
    entity: &str,
) -> Result<Statement<'c>, OrgError> {
    let columns = COLUMNS
        .iter()
        .find(|(name, _)| *name == entity)
        .map(|(_, columns)| *columns)
        .unwrap_or_default();
    let names: Vec<String> = columns
        .iter()
        .map(|column| crate::org::local::quote(column))
        .collect();
    let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("?{n}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        crate::org::local::quote(entity),
        names.join(", "),
        placeholders.join(", ")
    );
    connection.prepare(&sql).map_err(sqlite)
}

/// SplitMix64: tiny, fast, and good enough for demo data.
#[derive(Debug, Clone)]
struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// The generator of one row: independent of every other row, so rows can be made in any
    /// order (the generator inserts them in primary-key order).
    fn for_row(tag: u64, index: u64) -> Self {
        Rng(mix(
            SEED ^ mix(tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index)
        ))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn percent(&mut self, chance: u64) -> bool {
        self.below(100) < chance
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Log-uniform between `low` and `high`: many small values, a few large ones.
    fn log_uniform(&mut self, low: f64, high: f64) -> f64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (low.ln() + unit * (high.ln() - low.ln())).exp()
    }

    fn guid(&mut self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next().to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        bytes
    }
}

/// Per-entity tags of the row generators.
mod tag {
    pub(super) const ACCOUNT_ID: u64 = 1;
    pub(super) const ACCOUNT: u64 = 2;
    pub(super) const CONTACT_COUNT: u64 = 3;
    pub(super) const CONTACT_ID: u64 = 4;
    pub(super) const CONTACT: u64 = 5;
    pub(super) const LEAD_ID: u64 = 6;
    pub(super) const LEAD: u64 = 7;
    pub(super) const TASK_ID: u64 = 8;
    pub(super) const TASK: u64 = 9;
    pub(super) const OPPORTUNITY_ID: u64 = 10;
    pub(super) const OPPORTUNITY: u64 = 11;
    pub(super) const USER: u64 = 12;
    pub(super) const MEMBERSHIP: u64 = 13;
}

/// A GUID as text in a stack buffer.
struct GuidText([u8; 36]);

impl GuidText {
    fn new(bytes: &[u8; 16]) -> Self {
        let mut text = GuidText([0; 36]);
        write_guid(bytes, &mut text.0);
        text
    }

    fn as_str(&self) -> &str {
        // Only ASCII hex digits and dashes are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time, in a stack buffer.
struct TimeText([u8; 20]);

impl TimeText {
    fn new(seconds: i64) -> Self {
        let days = seconds.div_euclid(86_400);
        let of_day = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let mut text = TimeText(*b"0000-00-00T00:00:00Z");
        let mut put = |at: usize, value: i64, width: usize| {
            let mut value = value;
            for offset in (0..width).rev() {
                text.0[at + offset] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, year, 4);
        put(5, month, 2);
        put(8, day, 2);
        put(11, of_day / 3600, 2);
        put(14, of_day / 60 % 60, 2);
        put(17, of_day % 60, 2);
        text
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Howard Hinnant's days-from-civil inverse: (year, month, day) of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Fixed ids of users, teams and business units (see the module doc).
fn user_id(number: usize) -> String {
    if number < 100 {
        format!("5e000000-0000-4000-8000-{number:012}")
    } else {
        format!("5e000000-0001-4000-8000-{number:012}")
    }
}

fn team_id(number: usize) -> String {
    format!("5e000000-0000-4000-8000-{:012}", 100 + number)
}

fn business_unit_id(number: usize) -> String {
    format!("5e000000-0000-4000-8000-{:012}", 200 + number)
}

/// An owner: a user (most rows) or a team, with its business unit.
struct Owner {
    id: String,
    entity: &'static str,
    business_unit: String,
}

struct Generator {
    accounts: usize,
    /// Whether the catalogue has `teammembership` (users' teams, for `eq-userteams`).
    memberships: bool,
    users: Vec<Owner>,
    teams: Vec<Owner>,
    account_ids: Vec<[u8; 16]>,
    /// Contacts of account `i` are `first_contact[i]..first_contact[i + 1]`.
    first_contact: Vec<u32>,
    contact_ids: Vec<[u8; 16]>,
    lead_ids: Vec<[u8; 16]>,
    opportunity_ids: Vec<[u8; 16]>,
    text: String,
    other: String,
}

/// Ids of `count` rows of one entity and the order to insert them in (by id).
fn ids(tag: u64, count: usize) -> (Vec<[u8; 16]>, Vec<u32>) {
    let ids: Vec<[u8; 16]> = (0..count as u64)
        .map(|index| Rng::for_row(tag, index).guid())
        .collect();
    let mut order: Vec<u32> = (0..count as u32).collect();
    order.sort_unstable_by_key(|&index| ids[index as usize]);
    (ids, order)
}

fn bind(statement: &mut Statement<'_>, index: usize, value: &dyn ToSql) -> Result<(), OrgError> {
    statement.raw_bind_parameter(index, value).map_err(sqlite)
}

/// Binds an optional value: NULL when absent.
fn bind_opt<T: ToSql>(
    statement: &mut Statement<'_>,
    index: usize,
    value: Option<T>,
) -> Result<(), OrgError> {
    match value {
        Some(value) => bind(statement, index, &value),
        None => bind(statement, index, &Null),
    }
}

fn execute(statement: &mut Statement<'_>) -> Result<(), OrgError> {
    statement.raw_execute().map(drop).map_err(sqlite)
}

/// A creation time in the three years before the epoch and a later modification time.
fn created_modified(rng: &mut Rng) -> (i64, i64) {
    let created = EPOCH - rng.below(THREE_YEARS) as i64;
    let modified = created + rng.below((EPOCH - created) as u64 + 1) as i64;
    (created, modified)
}

impl Generator {
    fn new(accounts: usize, memberships: bool) -> Self {
        let user_count = (accounts / 1000).max(10);
        let team_count = (user_count / 10).clamp(TEAMS.len(), 99);
        let users = (1..=user_count)
            .map(|number| Owner {
                id: user_id(number),
                entity: "systemuser",
                business_unit: business_unit_id(2 + (number - 1) % REGIONS.len()),
            })
            .collect();
        let teams = (1..=team_count)
            .map(|number| Owner {
                id: team_id(number),
                entity: "team",
                business_unit: business_unit_id(2 + (number - 1) % REGIONS.len()),
            })
            .collect();
        Generator {
            accounts,
            memberships,
            users,
            teams,
            account_ids: Vec::new(),
            first_contact: Vec::new(),
            contact_ids: Vec::new(),
            lead_ids: Vec::new(),
            opportunity_ids: Vec::new(),
            text: String::with_capacity(256),
            other: String::with_capacity(256),
        }
    }

    fn run(mut self, connection: &Connection) -> Result<BTreeMap<String, usize>, OrgError> {
        let mut counts = BTreeMap::new();
        counts.insert("businessunit".to_string(), self.business_units(connection)?);
        counts.insert("systemuser".to_string(), self.system_users(connection)?);
        counts.insert("team".to_string(), self.team_rows(connection)?);
        if self.memberships {
            counts.insert(
                "teammembership".to_string(),
                self.team_memberships(connection)?,
            );
        }

        let (account_ids, account_order) = ids(tag::ACCOUNT_ID, self.accounts);
        self.account_ids = account_ids;
        self.first_contact = Vec::with_capacity(self.accounts + 1);
        let mut total = 0u32;
        for index in 0..self.accounts as u64 {
            self.first_contact.push(total);
            total += [0, 1, 1, 2][Rng::for_row(tag::CONTACT_COUNT, index).below(4) as usize];
        }
        self.first_contact.push(total);
        let (contact_ids, contact_order) = ids(tag::CONTACT_ID, total as usize);
        self.contact_ids = contact_ids;
        let (lead_ids, lead_order) = ids(tag::LEAD_ID, self.accounts / 2);
        self.lead_ids = lead_ids;
        let (opportunity_ids, opportunity_order) = ids(tag::OPPORTUNITY_ID, self.accounts / 4);
        self.opportunity_ids = opportunity_ids;

        counts.insert(
            "account".to_string(),
            self.account_rows(connection, &account_order)?,
        );
        drop(account_order);
        counts.insert(
            "contact".to_string(),
            self.contact_rows(connection, &contact_order)?,
        );
        drop(contact_order);
        counts.insert("lead".to_string(), self.lead_rows(connection, &lead_order)?);
        drop(lead_order);
        counts.insert(
            "opportunity".to_string(),
            self.opportunity_rows(connection, &opportunity_order)?,
        );
        drop(opportunity_order);
        counts.insert("task".to_string(), self.task_rows(connection)?);
        Ok(counts)
    }

    fn owner(&self, rng: &mut Rng, team_percent: u64) -> &Owner {
        if rng.percent(team_percent) {
            &self.teams[rng.below(self.teams.len() as u64) as usize]
        } else {
            &self.users[rng.below(self.users.len() as u64) as usize]
        }
    }

    fn business_units(&mut self, connection: &Connection) -> Result<usize, OrgError> {
        let mut insert = insert_statement(connection, "businessunit")?;
        let root = business_unit_id(1);
        let created = TimeText::new(EPOCH - THREE_YEARS as i64 - 86_400);
        let mut rows = vec![(root.clone(), "Contoso".to_string(), None)];
        for (index, region) in REGIONS.iter().enumerate() {
            rows.push((
                business_unit_id(2 + index),
                format!("Contoso {region}"),
                Some(root.clone()),
            ));
        }
        for (id, name, parent) in &rows {
            bind(&mut insert, 1, id)?;
            bind(&mut insert, 2, name)?;
            bind_opt(&mut insert, 3, parent.as_deref())?;
            bind(&mut insert, 4, &created.as_str())?;
            bind(&mut insert, 5, &created.as_str())?;
            execute(&mut insert)?;
        }
        Ok(rows.len())
    }

    fn system_users(&mut self, connection: &Connection) -> Result<usize, OrgError> {
        let mut insert = insert_statement(connection, "systemuser")?;
        for (index, user) in self.users.iter().enumerate() {
            let mut rng = Rng::for_row(tag::USER, index as u64);
            let first = rng.pick(FIRST_NAMES);
            let last = rng.pick(LAST_NAMES);
            self.text.clear();
            let _ = write!(self.text, "{first} {last}");
            self.other.clear();
            let _ = write!(
                self.other,
                "{}.{}{}@contoso.example",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase(),
                index + 1
            );
            let (created, modified) = created_modified(&mut rng);
            // User 7 left the company (see workflows/lead-reassignment.yaml).
            let disabled = index + 1 == 7 || (index >= 10 && rng.percent(5));
            bind(&mut insert, 1, &user.id)?;
            bind(&mut insert, 2, &first)?;
            bind(&mut insert, 3, &last)?;
            bind(&mut insert, 4, &self.text.as_str())?;
            bind(&mut insert, 5, &self.other.as_str())?;
            bind(&mut insert, 6, &rng.pick(TITLES))?;
            bind(&mut insert, 7, &disabled)?;
            bind(&mut insert, 8, &user.business_unit)?;
            bind(&mut insert, 9, &TimeText::new(created).as_str())?;
            bind(&mut insert, 10, &TimeText::new(modified).as_str())?;
            execute(&mut insert)?;
        }
        Ok(self.users.len())
    }

    fn team_rows(&mut self, connection: &Connection) -> Result<usize, OrgError> {
        let mut insert = insert_statement(connection, "team")?;
        let created = TimeText::new(EPOCH - THREE_YEARS as i64);
        for (index, team) in self.teams.iter().enumerate() {
            self.text.clear();
            match TEAMS.get(index) {
                Some(name) => self.text.push_str(name),
                None => {
                    let _ = write!(self.text, "Sales Pod {}", index + 1);
                }
            }
            bind(&mut insert, 1, &team.id)?;
            bind(&mut insert, 2, &self.text.as_str())?;
            bind(&mut insert, 3, &team.business_unit)?;
            bind(&mut insert, 4, &created.as_str())?;
            bind(&mut insert, 5, &created.as_str())?;
            execute(&mut insert)?;
        }
        Ok(self.teams.len())
    }

    /// Every user is in one team (round robin); users 1 to 10 are also in "Key Accounts".
    fn team_memberships(&mut self, connection: &Connection) -> Result<usize, OrgError> {
        let mut insert = connection
            .prepare(
                "INSERT INTO teammembership (teammembershipid, systemuserid, teamid) \
                 VALUES (?1, ?2, ?3)",
            )
            .map_err(sqlite)?;
        let key_accounts = TEAMS
            .iter()
            .position(|name| *name == "Key Accounts")
            .unwrap_or(0);
        let mut count = 0;
        for (index, user) in self.users.iter().enumerate() {
            let mut teams = vec![index % self.teams.len()];
            if index < 10 && teams[0] != key_accounts {
                teams.push(key_accounts);
            }
            for team in teams {
                let id = GuidText::new(&Rng::for_row(tag::MEMBERSHIP, count as u64).guid());
                bind(&mut insert, 1, &id.as_str())?;
                bind(&mut insert, 2, &user.id)?;
                bind(&mut insert, 3, &self.teams[team].id)?;
                execute(&mut insert)?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// A territory or a US state, and a city.
    fn place(rng: &mut Rng) -> (&'static str, &'static str) {
        let (city, state) = rng.pick(CITIES);
        let roll = rng.below(100);
        let territory = match roll {
            0..10 => "West",
            10..15 => "East",
            15..20 => "Central",
            20..23 => "Northwest",
            _ => state,
        };
        (city, territory)
    }

    fn company_name(rng: &mut Rng, out: &mut String) {
        out.clear();
        let _ = write!(
            out,
            "{} {} {}",
            rng.pick(COMPANY_FIRST),
            rng.pick(COMPANY_SECOND),
            rng.pick(COMPANY_SUFFIX)
        );
    }

    fn account_rows(&mut self, connection: &Connection, order: &[u32]) -> Result<usize, OrgError> {
        let mut insert = insert_statement(connection, "account")?;
        let mut number = String::with_capacity(24);
        for &index in order {
            let index = index as usize;
            let mut rng = Rng::for_row(tag::ACCOUNT, index as u64);
            let id = GuidText::new(&self.account_ids[index]);
            Self::company_name(&mut rng, &mut self.text);
            number.clear();
            let prefix = if rng.percent(2) {
                "ACME"
            } else {
                rng.pick(ACCOUNT_PREFIXES)
            };
            let _ = write!(number, "{prefix}-{:07}", index + 1);
            let employees =
                (!rng.percent(5)).then(|| rng.log_uniform(1.0, 200_000.0).round() as i64);
            let revenue = (!rng.percent(5))
                .then(|| (rng.log_uniform(30_000.0, 5_000_000_000.0) / 1000.0).round() * 1000.0);
            let industry = (!rng.percent(10)).then(|| 1 + rng.below(33) as i64);
            let active = !rng.percent(10);
            let credit_hold = rng.percent(5);
            let (created, modified) = created_modified(&mut rng);
            let (city, state) = Self::place(&mut rng);
            let description = rng.percent(25).then(|| rng.pick(ACCOUNT_NOTES));
            let parent = (index > 0 && rng.percent(10))
                .then(|| GuidText::new(&self.account_ids[rng.below(index as u64) as usize]));
            let first = self.first_contact[index] as usize;
            let primary = (self.first_contact[index + 1] as usize > first && rng.percent(85))
                .then(|| GuidText::new(&self.contact_ids[first]));
            let owner = self.owner(&mut rng, 10);
            bind(&mut insert, 1, &id.as_str())?;
            bind(&mut insert, 2, &self.text.as_str())?;
            bind(&mut insert, 3, &number.as_str())?;
            bind_opt(&mut insert, 4, employees)?;
            bind_opt(&mut insert, 5, revenue)?;
            bind_opt(&mut insert, 6, industry)?;
            bind(&mut insert, 7, &i64::from(!active))?;
            bind(&mut insert, 8, &if active { 1i64 } else { 2 })?;
            bind(&mut insert, 9, &credit_hold)?;
            bind(&mut insert, 10, &TimeText::new(created).as_str())?;
            bind(&mut insert, 11, &TimeText::new(modified).as_str())?;
            bind(&mut insert, 12, &owner.business_unit)?;
            bind(&mut insert, 13, &city)?;
            bind(&mut insert, 14, &state)?;
            bind_opt(&mut insert, 15, description)?;
            bind_opt(&mut insert, 16, parent.as_ref().map(GuidText::as_str))?;
            bind_opt(&mut insert, 17, primary.as_ref().map(GuidText::as_str))?;
            bind(&mut insert, 18, &owner.id)?;
            bind(&mut insert, 19, &owner.entity)?;
            execute(&mut insert)?;
        }
        Ok(order.len())
    }

    fn contact_rows(&mut self, connection: &Connection, order: &[u32]) -> Result<usize, OrgError> {
        let mut insert = insert_statement(connection, "contact")?;
        for &index in order {
            let index = index as usize;
            let mut rng = Rng::for_row(tag::CONTACT, index as u64);
            let id = GuidText::new(&self.contact_ids[index]);
            // The account whose contacts range holds this index.
            let account = self
                .first_contact
                .partition_point(|&first| first as usize <= index)
                - 1;
            let account = GuidText::new(&self.account_ids[account]);
            let first = rng.pick(FIRST_NAMES);
            let last = rng.pick(LAST_NAMES);
            self.text.clear();
            let _ = write!(self.text, "{first} {last}");
            self.other.clear();
            let _ = write!(
                self.other,
                "{}.{}@{}",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase(),
                rng.pick(DOMAINS)
            );
            let income = (!rng.percent(30))
                .then(|| (rng.log_uniform(25_000.0, 400_000.0) / 100.0).round() * 100.0);
            let children = (!rng.percent(40)).then(|| rng.below(5) as i64);
            let active = !rng.percent(8);
            let gender = (!rng.percent(10)).then(|| 1 + rng.below(2) as i64);
            let do_not_email = rng.percent(10);
            let (created, modified) = created_modified(&mut rng);
            let owner = self.owner(&mut rng, 5);
            bind(&mut insert, 1, &id.as_str())?;
            bind(&mut insert, 2, &first)?;
            bind(&mut insert, 3, &last)?;
            bind(&mut insert, 4, &self.text.as_str())?;
            bind(&mut insert, 5, &self.other.as_str())?;
            bind(&mut insert, 6, &rng.pick(TITLES))?;
            bind_opt(&mut insert, 7, income)?;
            bind_opt(&mut insert, 8, children)?;
            bind(&mut insert, 9, &account.as_str())?;
            bind(&mut insert, 10, &"account")?;
            bind(&mut insert, 11, &i64::from(!active))?;
            bind(&mut insert, 12, &if active { 1i64 } else { 2 })?;
            bind_opt(&mut insert, 13, gender)?;
            bind(&mut insert, 14, &do_not_email)?;
            bind(&mut insert, 15, &TimeText::new(created).as_str())?;
            bind(&mut insert, 16, &TimeText::new(modified).as_str())?;
            bind(&mut insert, 17, &owner.business_unit)?;
            bind(&mut insert, 18, &owner.id)?;
            bind(&mut insert, 19, &owner.entity)?;
            execute(&mut insert)?;
        }
        Ok(order.len())
    }

    fn lead_rows(&mut self, connection: &Connection, order: &[u32]) -> Result<usize, OrgError> {
        let mut insert = insert_statement(connection, "lead")?;
        let mut company = String::with_capacity(64);
        for &index in order {
            let index = index as usize;
            let mut rng = Rng::for_row(tag::LEAD, index as u64);
            let id = GuidText::new(&self.lead_ids[index]);
            let first = rng.pick(FIRST_NAMES);
            let last = rng.pick(LAST_NAMES);
            self.text.clear();
            let _ = write!(self.text, "{first} {last}");
            Self::company_name(&mut rng, &mut company);
            self.other.clear();
            let _ = write!(self.other, "{} ({company})", rng.pick(LEAD_SUBJECTS));
            let estimated = (!rng.percent(20))
                .then(|| (rng.log_uniform(1_000.0, 2_000_000.0) / 100.0).round() * 100.0);
            let budget = (!rng.percent(40))
                .then(|| (rng.log_uniform(1_000.0, 3_000_000.0) / 100.0).round() * 100.0);
            let quality = (!rng.percent(10)).then(|| 1 + rng.below(3) as i64);
            let (state, status) = match rng.below(100) {
                0..60 => (0i64, 1 + rng.below(2) as i64),
                60..80 => (1, 3),
                _ => (2, 4 + rng.below(4) as i64),
            };
            let (_, territory) = Self::place(&mut rng);
            let description = rng.percent(20).then(|| rng.pick(LEAD_NOTES));
            let (created, modified) = created_modified(&mut rng);
            let parent = (self.accounts > 0 && rng.percent(30)).then(|| {
                GuidText::new(&self.account_ids[rng.below(self.accounts as u64) as usize])
            });
            let owner = self.owner(&mut rng, 5);
            bind(&mut insert, 1, &id.as_str())?;
            bind(&mut insert, 2, &self.other.as_str())?;
            bind(&mut insert, 3, &first)?;
            bind(&mut insert, 4, &last)?;
            bind(&mut insert, 5, &self.text.as_str())?;
            bind(&mut insert, 6, &company.as_str())?;
            bind_opt(&mut insert, 7, estimated)?;
            bind_opt(&mut insert, 8, budget)?;
            bind_opt(&mut insert, 9, quality)?;
            bind(&mut insert, 10, &state)?;
            bind(&mut insert, 11, &status)?;
            bind(&mut insert, 12, &territory)?;
            bind_opt(&mut insert, 13, description)?;
            bind(&mut insert, 14, &TimeText::new(created).as_str())?;
            bind(&mut insert, 15, &TimeText::new(modified).as_str())?;
            bind(&mut insert, 16, &owner.business_unit)?;
            bind_opt(&mut insert, 17, parent.as_ref().map(GuidText::as_str))?;
            bind(&mut insert, 18, &owner.id)?;
            bind(&mut insert, 19, &owner.entity)?;
            execute(&mut insert)?;
        }
        Ok(order.len())
    }

    fn opportunity_rows(
        &mut self,
        connection: &Connection,
        order: &[u32],
    ) -> Result<usize, OrgError> {
        let mut insert = insert_statement(connection, "opportunity")?;
        for &index in order {
            let index = index as usize;
            let mut rng = Rng::for_row(tag::OPPORTUNITY, index as u64);
            let id = GuidText::new(&self.opportunity_ids[index]);
            let account_index = rng.below(self.accounts as u64) as usize;
            let account = GuidText::new(&self.account_ids[account_index]);
            let first = self.first_contact[account_index] as usize;
            let contact = (self.first_contact[account_index + 1] as usize > first
                && rng.percent(60))
            .then(|| GuidText::new(&self.contact_ids[first]));
            self.text.clear();
            let _ = write!(self.text, "{} {}", 1 + rng.below(500), rng.pick(PRODUCTS));
            let estimated = (rng.log_uniform(2_000.0, 5_000_000.0) / 100.0).round() * 100.0;
            let (state, status, probability) = match rng.below(100) {
                0..60 => (0i64, 1 + rng.below(2) as i64, 10 + rng.below(80) as i64),
                60..80 => (1, 3, 100),
                _ => (2, 4 + rng.below(2) as i64, 0),
            };
            let actual =
                (state == 1).then(|| (estimated * (0.7 + rng.below(60) as f64 / 100.0)).round());
            let (created, modified) = created_modified(&mut rng);
            let close = created + 86_400 * (14 + rng.below(180) as i64);
            let description = rng.percent(10).then(|| rng.pick(ACCOUNT_NOTES));
            let owner = self.owner(&mut rng, 10);
            bind(&mut insert, 1, &id.as_str())?;
            bind(&mut insert, 2, &self.text.as_str())?;
            bind(&mut insert, 3, &estimated)?;
            bind_opt(&mut insert, 4, actual)?;
            bind(&mut insert, 5, &TimeText::new(close).as_str())?;
            bind(&mut insert, 6, &probability)?;
            bind(&mut insert, 7, &account.as_str())?;
            bind_opt(&mut insert, 8, contact.as_ref().map(GuidText::as_str))?;
            bind(&mut insert, 9, &account.as_str())?;
            bind(&mut insert, 10, &"account")?;
            bind(&mut insert, 11, &state)?;
            bind(&mut insert, 12, &status)?;
            bind(&mut insert, 13, &owner.id)?;
            bind(&mut insert, 14, &owner.entity)?;
            bind(&mut insert, 15, &TimeText::new(created).as_str())?;
            bind(&mut insert, 16, &TimeText::new(modified).as_str())?;
            bind(&mut insert, 17, &owner.business_unit)?;
            bind_opt(&mut insert, 18, description)?;
            execute(&mut insert)?;
        }
        Ok(order.len())
    }

    fn task_rows(&mut self, connection: &Connection) -> Result<usize, OrgError> {
        let (task_ids, order) = ids(tag::TASK_ID, self.accounts);
        let mut insert = insert_statement(connection, "task")?;
        for &index in &order {
            let index = index as usize;
            let mut rng = Rng::for_row(tag::TASK, index as u64);
            let id = GuidText::new(&task_ids[index]);
            let roll = rng.below(100);
            let (target, regarding) = match roll {
                0..25 if !self.contact_ids.is_empty() => (
                    "contact",
                    self.contact_ids[rng.below(self.contact_ids.len() as u64) as usize],
                ),
                25..37 if !self.lead_ids.is_empty() => (
                    "lead",
                    self.lead_ids[rng.below(self.lead_ids.len() as u64) as usize],
                ),
                37..45 if !self.opportunity_ids.is_empty() => (
                    "opportunity",
                    self.opportunity_ids[rng.below(self.opportunity_ids.len() as u64) as usize],
                ),
                _ => (
                    "account",
                    self.account_ids[rng.below(self.accounts as u64) as usize],
                ),
            };
            let regarding = GuidText::new(&regarding);
            self.text.clear();
            let _ = write!(self.text, "{}", rng.pick(TASK_SUBJECTS));
            let description = rng.percent(20).then(|| rng.pick(TASK_NOTES));
            let (created, modified) = created_modified(&mut rng);
            let due = created + 86_400 * (1 + rng.below(30) as i64);
            let (state, status) = match rng.below(100) {
                0..50 => (1i64, 5i64),
                50..90 => (0, rng.pick(&[2i64, 3, 4, 7])),
                _ => (2, 6),
            };
            let owner = self.owner(&mut rng, 10);
            bind(&mut insert, 1, &id.as_str())?;
            bind(&mut insert, 2, &self.text.as_str())?;
            bind_opt(&mut insert, 3, description)?;
            bind(&mut insert, 4, &regarding.as_str())?;
            bind(&mut insert, 5, &target)?;
            bind(&mut insert, 6, &TimeText::new(due).as_str())?;
            bind(&mut insert, 7, &state)?;
            bind(&mut insert, 8, &status)?;
            bind(&mut insert, 9, &owner.id)?;
            bind(&mut insert, 10, &owner.entity)?;
            bind(&mut insert, 11, &TimeText::new(created).as_str())?;
            bind(&mut insert, 12, &TimeText::new(modified).as_str())?;
            bind(&mut insert, 13, &owner.business_unit)?;
            execute(&mut insert)?;
        }
        Ok(order.len())
    }
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Alex", "Amara", "Ana", "Andre", "Aiko", "Ben", "Bianca", "Carlos", "Chen", "Chloe",
    "Daniel", "Deepa", "Diego", "Elena", "Emma", "Erik", "Fatima", "Felix", "Grace", "Hana",
    "Hugo", "Ines", "Isaac", "Jamal", "Jana", "Jonas", "Julia", "Kai", "Karin", "Laura", "Leo",
    "Lina", "Lucas", "Maya", "Mateo", "Mei", "Mia", "Nadia", "Noah", "Olga", "Omar", "Pablo",
    "Priya", "Rafael", "Rosa", "Sam", "Sara", "Sofia", "Tariq", "Theo", "Uma", "Victor", "Wei",
    "Yara", "Yusuf", "Zoe", "Åsa", "Zoë", "José",
];

const LAST_NAMES: &[&str] = &[
    "Adams", "Ahmed", "Alvarez", "Anderson", "Bauer", "Becker", "Brown", "Castro", "Chen", "Cohen",
    "Davis", "Dubois", "Fischer", "Garcia", "Gupta", "Hansen", "Hughes", "Ito", "Jensen",
    "Johnson", "Kim", "Kowalski", "Larsen", "Lee", "Lopez", "Martin", "Meyer", "Miller", "Moreau",
    "Müller", "Nakamura", "Nguyen", "Novak", "O'Brien", "Patel", "Perez", "Rossi", "Santos",
    "Schmidt", "Silva", "Singh", "Smith", "Suzuki", "Taylor", "Thompson", "Wagner", "Walker",
    "Wang", "Weber", "Wilson", "Yamamoto", "Zhang", "Øberg", "Çelik",
];

const TITLES: &[&str] = &[
    "Account Manager",
    "Sales Representative",
    "Purchasing Manager",
    "CFO",
    "CEO",
    "IT Director",
    "Operations Manager",
    "Procurement Lead",
    "Office Manager",
    "Marketing Director",
    "Engineer",
    "Consultant",
];

const COMPANY_FIRST: &[&str] = &[
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Wingtip",
    "Litware",
    "Adventure",
    "Blue",
    "Coho",
    "Alpine",
    "Proseware",
    "Woodgrove",
    "Trey",
    "Lucerne",
    "Margie's",
    "Fourth",
    "Humongous",
    "Graphic",
    "Southridge",
    "Wide World",
    "Relecloud",
    "Bellows",
    "Datum",
    "Consolidated",
    "Lamna",
    "Nod",
    "Olympic",
    "Pinnacle",
    "Redwood",
    "Summit",
    "Silver",
    "Evergreen",
    "Crescent",
    "Granite",
    "Harbor",
    "Ironwood",
    "Juniper",
    "Keystone",
    "Maple",
    "Meridian",
];

const COMPANY_SECOND: &[&str] = &[
    "Traders",
    "Logistics",
    "Systems",
    "Foods",
    "Motors",
    "Energy",
    "Pharma",
    "Textiles",
    "Software",
    "Bank",
    "Insurance",
    "Airlines",
    "Retail",
    "Construction",
    "Media",
    "Labs",
    "Outfitters",
    "Winery",
    "Consulting",
    "Health",
    "Robotics",
    "Shipping",
    "Studios",
    "Analytics",
    "Farms",
    "Electric",
    "Hotels",
    "Publishing",
    "Networks",
    "Supply",
];

const COMPANY_SUFFIX: &[&str] = &[
    "Inc.", "Ltd", "LLC", "GmbH", "Corp.", "Group", "Co.", "plc", "AG", "S.A.", "Partners",
    "Holdings",
];

const ACCOUNT_PREFIXES: &[&str] = &[
    "CUST", "NWND", "FABR", "CONT", "TAIL", "WOOD", "LITW", "ADVW",
];

const CITIES: &[(&str, &str)] = &[
    ("Seattle", "Washington"),
    ("Redmond", "Washington"),
    ("Portland", "Oregon"),
    ("San Francisco", "California"),
    ("Los Angeles", "California"),
    ("San Diego", "California"),
    ("Phoenix", "Arizona"),
    ("Denver", "Colorado"),
    ("Salt Lake City", "Utah"),
    ("Dallas", "Texas"),
    ("Austin", "Texas"),
    ("Houston", "Texas"),
    ("Chicago", "Illinois"),
    ("Minneapolis", "Minnesota"),
    ("Detroit", "Michigan"),
    ("Columbus", "Ohio"),
    ("Atlanta", "Georgia"),
    ("Miami", "Florida"),
    ("Orlando", "Florida"),
    ("Charlotte", "North Carolina"),
    ("Nashville", "Tennessee"),
    ("New York", "New York"),
    ("Buffalo", "New York"),
    ("Boston", "Massachusetts"),
    ("Philadelphia", "Pennsylvania"),
    ("Pittsburgh", "Pennsylvania"),
    ("Baltimore", "Maryland"),
    ("Newark", "New Jersey"),
    ("Anchorage", "Alaska"),
    ("Honolulu", "Hawaii"),
    ("San Juan", "Puerto Rico"),
    ("Albuquerque", "New Mexico"),
];

const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example",
    "contoso.example",
    "fabrikam.example",
];

const ACCOUNT_NOTES: &[&str] = &[
    "Long-standing customer; prefers quarterly invoicing.",
    "Expanding into new regions next year.",
    "Key decision maker changed recently.",
    "Interested in the premium support plan.",
    "Pays on time; credit limit reviewed annually.",
    "Referred by a partner.",
    "Requires purchase orders for every order.",
];

const LEAD_SUBJECTS: &[&str] = &[
    "Interested in our products",
    "Requested a demo",
    "Downloaded the whitepaper",
    "Trade show contact",
    "Asked for a quote",
    "Webinar attendee",
    "Referral from a customer",
];

const LEAD_NOTES: &[&str] = &[
    "Budget approved for next quarter.",
    "Evaluating two competitors.",
    "Call back after the holidays.",
    "Wants pricing for 50+ seats.",
];

const PRODUCTS: &[&str] = &[
    "laptops",
    "support hours",
    "licences",
    "printers",
    "servers",
    "training seats",
    "cloud credits",
    "service contracts",
];

const TASK_SUBJECTS: &[&str] = &[
    "Call back",
    "Send proposal",
    "Follow up on the quote",
    "Schedule a demo",
    "Quarterly check-in",
    "Prepare the contract",
    "Confirm delivery date",
    "Collect feedback",
    "Update billing details",
];

const TASK_NOTES: &[&str] = &[
    "Customer asked for a call in the morning.",
    "Attach the latest price list.",
    "Check stock before confirming.",
    "Loop in the account manager.",
];

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::metadata::Catalogue;

    fn export_hash(org: &LocalOrg) -> String {
        let mut hasher = Sha256::new();
        for entity in org.catalogue().entity_names() {
            let mut out = Vec::new();
            org.export_to(entity, &mut out).unwrap();
            hasher.update(&out);
        }
        format!("{:x}", hasher.finalize())
    }

    fn demo(accounts: usize) -> (LocalOrg, DemoReport) {
        let org = LocalOrg::in_memory(Catalogue::builtin()).unwrap();
        let report = org.populate_demo(DemoSize { accounts }).unwrap();
        (org, report)
    }

    #[test]
    fn the_same_size_gives_the_same_rows() {
        let (first, report) = demo(500);
        let (second, _) = demo(500);
        assert_eq!(export_hash(&first), export_hash(&second));
        assert_eq!(report.entities["account"], 500);
        assert_eq!(report.entities["systemuser"], 10);
        assert_eq!(report.entities["task"], 500);
        assert_eq!(report.entities["lead"], 250);
        assert_eq!(report.entities["opportunity"], 125);
        let contacts = report.entities["contact"];
        assert!((400..600).contains(&contacts), "{contacts}");
        assert_eq!(report.rows, report.entities.values().sum::<usize>());
        let (third, _) = demo(501);
        assert_ne!(export_hash(&first), export_hash(&third));
    }

    fn scalar(org: &LocalOrg, sql: &str) -> i64 {
        org.connection()
            .query_row(sql, [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn the_example_workflows_find_what_they_look_for() {
        let (org, _) = demo(2000);
        for (entity, key, id) in [
            (
                "systemuser",
                "systemuserid",
                "5e000000-0000-4000-8000-000000000002",
            ),
            (
                "systemuser",
                "systemuserid",
                "5e000000-0000-4000-8000-000000000007",
            ),
            ("team", "teamid", "5e000000-0000-4000-8000-000000000101"),
            (
                "businessunit",
                "businessunitid",
                "5e000000-0000-4000-8000-000000000201",
            ),
        ] {
            let found = scalar(
                &org,
                &format!("SELECT count(*) FROM {entity} WHERE {key} = '{id}'"),
            );
            assert_eq!(found, 1, "{entity} {id}");
        }
        let west = scalar(
            &org,
            "SELECT count(*) FROM account WHERE address1_stateorprovince = 'West' AND statecode = 0",
        );
        assert!(
            (100..260).contains(&west),
            "{west} active West accounts of 2000"
        );
        let open_leads_of_user_7 = scalar(
            &org,
            "SELECT count(*) FROM lead WHERE statecode = 0 AND ownerid = '5e000000-0000-4000-8000-000000000007'",
        );
        assert!(open_leads_of_user_7 > 10, "{open_leads_of_user_7}");
        let acme_on_hold = scalar(
            &org,
            "SELECT count(*) FROM account WHERE accountnumber LIKE 'ACME-%' AND creditonhold = 1",
        );
        assert!(acme_on_hold < 500, "{acme_on_hold}");
        let old_completed_tasks = scalar(
            &org,
            "SELECT count(*) FROM task WHERE statecode = 1 AND modifiedon < '2026-08-01T00:00:00Z'",
        );
        assert!(old_completed_tasks > 100, "{old_completed_tasks}");
        let big_accounts = scalar(
            &org,
            "SELECT count(*) FROM account a JOIN contact c ON c.contactid = a.primarycontactid \
             WHERE a.numberofemployees >= 500 AND a.statecode = 0 AND c.statecode = 0",
        );
        assert!(big_accounts > 50, "{big_accounts}");
        let children = scalar(
            &org,
            "SELECT count(*) FROM account WHERE parentaccountid IS NOT NULL",
        );
        assert!((100..300).contains(&children), "{children}");
        let dangling = scalar(
            &org,
            "SELECT count(*) FROM task t WHERE \"regardingobjectid@target\" = 'account' AND NOT EXISTS \
             (SELECT 1 FROM account a WHERE a.accountid = t.regardingobjectid)",
        );
        assert_eq!(dangling, 0);
        let dangling_contacts = scalar(
            &org,
            "SELECT count(*) FROM account a WHERE primarycontactid IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM contact c WHERE c.contactid = a.primarycontactid AND c.parentcustomerid = a.accountid)",
        );
        assert_eq!(dangling_contacts, 0);
        let key_account_teams = scalar(
            &org,
            "SELECT count(*) FROM teammembership WHERE systemuserid = \
             '5e000000-0000-4000-8000-000000000001'",
        );
        assert_eq!(key_account_teams, 2);
        let inactive_users = scalar(
            &org,
            "SELECT isdisabled FROM systemuser WHERE systemuserid = '5e000000-0000-4000-8000-000000000007'",
        );
        assert_eq!(inactive_users, 1);
    }

    #[test]
    fn every_demo_row_passes_import_checks() {
        let (org, _) = demo(300);
        let copy = LocalOrg::in_memory(Catalogue::builtin()).unwrap();
        let mut all = crate::org::local::RowSet::new();
        for entity in org.catalogue().entity_names() {
            all.extend(org.export(entity).unwrap());
        }
        copy.import(&all).unwrap();
        assert_eq!(export_hash(&org), export_hash(&copy));
    }

    #[test]
    fn demo_data_needs_an_empty_org() {
        let (org, _) = demo(10);
        let error = org.populate_demo(DemoSize { accounts: 10 }).unwrap_err();
        assert!(error.message.contains("empty org"), "{error}");
    }

    #[test]
    fn timestamps_format_like_chrono() {
        for seconds in [
            0,
            EPOCH,
            EPOCH - THREE_YEARS as i64,
            951_782_400,
            4_102_444_799,
        ] {
            let expected = chrono::DateTime::from_timestamp(seconds, 0)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            assert_eq!(TimeText::new(seconds).as_str(), expected);
        }
    }
}
